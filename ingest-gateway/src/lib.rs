//! The ingest gateway: the front door for producers that speak HTTP.
//!
//! A request is authenticated by its API key (which names the project),
//! validated and enriched by `sluice_schemas::validate`, encoded as Avro and
//! produced to the events topic with `acks=all` and idempotence. The gateway
//! answers 202 only after the broker has acknowledged the event, and 503 with
//! `Retry-After` when it cannot get that acknowledgement.
//!
//! - [`config`]: settings (`--help`).
//! - [`routes`]: the router and handlers.
//! - [`publish`]: the Kafka producer.
//! - [`error`]: `ApiError`, one status and body per failure.
//! - [`metrics`]: the gateway's Prometheus metrics.

pub mod config;
pub mod error;
pub mod metrics;
pub mod publish;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sluice_runtime::auth::ApiKeys;
use sluice_runtime::http::{serve_http, with_common_layers};
use sluice_runtime::kafka::ensure_topics;
use sluice_runtime::ops::{HttpMetrics, Readiness};
use sluice_schemas::Limits;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::GatewayConfig;
use metrics::GatewayMetrics;
use publish::EventPublisher;
use routes::{AppState, router};

/// How long the gateway waits for the broker at startup.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// How long shutdown waits for queued events to be acknowledged.
const FLUSH_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the gateway on `listener` until `shutdown` is cancelled, then drains
/// requests in flight and flushes the producer.
pub async fn serve(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let api_keys = ApiKeys::parse(&config.api.api_keys)?;
    let readiness = Readiness::default();
    readiness.register("kafka");
    let kafka = &config.kafka;
    ensure_topics(
        kafka,
        &[&kafka.events_topic, &kafka.dlq_topic],
        STARTUP_DEADLINE,
        &shutdown,
    )
    .await?;
    readiness.set("kafka", true);

    let publisher = Arc::new(EventPublisher::new(kafka, &config.ingest)?);
    let mut registry = Registry::default();
    let state = AppState {
        publisher: publisher.clone(),
        api_keys,
        limits: Arc::new(Limits::default()),
        max_event_bytes: config.ingest.max_event_bytes,
        metrics: GatewayMetrics::register(&mut registry),
        http_metrics: HttpMetrics::register(&mut registry),
        readiness,
        registry: Arc::new(registry),
    };
    let app = with_common_layers(router(state), config.api.request_timeout());
    tracing::info!(address = %listener.local_addr()?, topic = %kafka.events_topic, "ingest gateway listening");
    serve_http(listener, app, shutdown).await?;
    publisher.flush(FLUSH_DEADLINE);
    tracing::info!("ingest gateway stopped");
    Ok(())
}
