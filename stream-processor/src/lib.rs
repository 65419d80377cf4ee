//! The stream processor: events topic in, ClickHouse out, exactly once in effect.
//!
//! Processors share the events topic's partitions through a Kafka consumer
//! group. Each decodes values ([`decode`]: Avro from the gateway, Avro or JSON
//! from direct producers), sends what it cannot read to the dead-letter topic
//! with the reason in headers ([`dlq`]), and writes events to ClickHouse in
//! batches ([`sink`]).
//!
//! # Exactly once in effect
//! Kafka transactions are not relied on (not every Kafka-compatible broker has
//! them). Instead:
//! 1. offsets are committed only after the batch holding every message below
//!    them is in ClickHouse ([`pipeline`]): a crash replays, never skips;
//! 2. a row depends only on its message, so a replay writes identical rows;
//! 3. `events` is a ReplacingMergeTree keyed by (project, type, time,
//!    event_id), which keeps one row per event; readers query it with `FINAL`.
//!
//! - [`config`]: settings (`--help`).
//! - [`metrics`]: Prometheus metrics.

pub mod config;
pub mod decode;
pub mod dlq;
pub mod metrics;
pub mod pipeline;
pub mod sink;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sluice_runtime::clickhouse::{client, ensure_schema};
use sluice_runtime::http::serve_http;
use sluice_runtime::kafka::ensure_topics;
use sluice_runtime::ops::{self, Readiness};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::ProcessorConfig;
use metrics::ProcessorMetrics;
use pipeline::Pipeline;
use sink::EventSink;

const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the processor until `shutdown`, serving health and metrics on `listener`.
pub async fn serve(
    config: ProcessorConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let readiness = Readiness::default();
    readiness.register("kafka");
    readiness.register("clickhouse");
    let mut registry = Registry::default();
    let metrics = ProcessorMetrics::register(&mut registry);
    let ops_shutdown = CancellationToken::new();
    let ops_server = tokio::spawn(serve_http(
        listener,
        ops::router(readiness.clone(), Arc::new(registry)),
        ops_shutdown.clone(),
    ));

    let kafka = &config.kafka;
    ensure_topics(
        kafka,
        &[&kafka.events_topic, &kafka.dlq_topic],
        STARTUP_DEADLINE,
        &shutdown,
    )
    .await?;
    readiness.set("kafka", true);
    let features = ensure_schema(&config.clickhouse, STARTUP_DEADLINE, &shutdown).await?;
    readiness.set("clickhouse", true);

    let (clickhouse, _) = client(&config.clickhouse, features)?;
    let pipeline = Pipeline::new(
        kafka,
        config.processor.clone(),
        EventSink::new(clickhouse),
        metrics,
    )?;
    tracing::info!(topic = %kafka.events_topic, group = %config.processor.consumer_group, "stream processor running");
    pipeline.run(shutdown).await;

    ops_shutdown.cancel();
    ops_server.await??;
    Ok(())
}
