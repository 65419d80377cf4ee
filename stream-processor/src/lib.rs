//! The stream processor: events topic in; raw events, windowed rollups and
//! checkpoints into ClickHouse, exactly once in effect; live window updates out.
//!
//! Processors share the events topic's partitions through a Kafka consumer
//! group. Each decodes values ([`decode`]: Avro from the gateway, Avro or JSON
//! from direct producers), sends what it cannot read to the dead-letter topic
//! with the reason in headers ([`dlq`]), drops client retries of an event id
//! ([`dedup`]), aggregates one-minute event-time windows per project, type,
//! source and status ([`windows`], with the model in `sluice_schemas::rollup`),
//! each split further by the value of every rolled-up property
//! (`--rollup-properties`, into `property_rollups`), and writes raw events,
//! closed windows and corrections in batches ([`sink`]).
//!
//! # Exactly once in effect
//! Kafka transactions are not relied on (not every Kafka-compatible broker has
//! them). Instead, everything the processor writes is a function of the
//! message sequence of a partition, and its position is kept in the sink:
//! 1. **Deterministic rows.** A raw event row depends only on its message. A
//!    window's watermark is computed from the messages (event and received
//!    times, and watermark markers, see 3), so the same messages close the
//!    same windows into the same rollup rows, each keyed by (window key,
//!    source partition, offset of its first event). Late events become
//!    correction rows keyed the same way. The tables are ReplacingMergeTrees
//!    on those keys, read with `FINAL`: a replayed row replaces its copy.
//! 2. **Checkpoints in the sink.** A flush inserts raw events, then rollup
//!    rows, then per partition a checkpoint (next offset, watermark, the open
//!    windows' aggregates) into `processor_checkpoints`, and only then commits
//!    the Kafka offset ([`checkpoint`], [`pipeline`]). Whoever takes a
//!    partition over (after a crash, a restart or a rebalance) resumes from
//!    the checkpoint with the exact state it holds, skipping messages below it
//!    that Kafka may still hand out. A crash before the checkpoint replays the
//!    batch from the previous one, writing identical rows. Graceful shutdown
//!    and revocation flush and checkpoint; nothing is written early, so
//!    handing a partition over never splits a window differently.
//! 3. **Idle partitions** close their windows through watermark markers that
//!    the processor writes into the partition itself ([`marker`]): the
//!    wall-clock decision becomes a message, so a replay meets it at the same
//!    offset.
//! 4. **Client retries** of an event id count once when received within the
//!    dedup horizon (`--dedup-horizon-ms`, default 10 minutes) of the first
//!    copy, in raw events and rollups alike ([`dedup`]); the set of recent ids
//!    is rebuilt from `events` when a partition is taken over.
//!
//! Replaying a partition from offset 0 under a new consumer group therefore
//! rewrites the same rows and changes no query result. The cost of the
//! guarantee: a checkpoint row per partition per flush, and a partition's
//! first message after a takeover waits for its checkpoint and recent ids.
//!
//! # Recovering by itself
//! A processor that holds less than its share of the partitions rejoins the
//! group, and readiness fails, naming the cause, while the group leaves a
//! partition unread, inserts keep failing, the broker does not answer, or
//! the broker lost messages below a checkpoint ([`coverage`], [`pipeline`];
//! docs/failure-modes.md).
//!
//! - [`config`]: settings (`--help`).
//! - [`context`]: librdkafka callbacks (assignments and revocations).
//! - [`coverage`]: the group seen from outside: lag, share, stalls.
//! - [`live`]: window updates on the live topic.
//! - [`retention`]: dropping day partitions past the retention.
//! - [`metrics`]: Prometheus metrics.

pub mod checkpoint;
/// Decoding is shared with every consumer of the events topic.
pub use sluice_schemas::decode;
pub mod config;
pub mod context;
pub mod coverage;
pub mod dedup;
pub mod dlq;
pub mod live;
pub mod marker;
pub mod metrics;
pub mod pipeline;
pub mod retention;
pub mod sink;
pub mod windows;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use sluice_runtime::clickhouse::{CLICKHOUSE_CHECK, Connection, ServerFeatures, ensure_schema};
use sluice_runtime::http::serve_http;
use sluice_runtime::kafka::{KAFKA_CHECK, ensure_topics};
use sluice_runtime::ops::{self, Patience, Readiness};
use sluice_runtime::supervise::Supervisor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::ProcessorConfig;
use coverage::{CoverageWatch, HeldPartitions};
use live::LivePublisher;
use metrics::ProcessorMetrics;
use pipeline::Pipeline;
use sink::EventSink;

/// Runs the processor until `shutdown`, serving health and metrics on `listener`.
pub async fn serve(
    config: ProcessorConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let readiness = Readiness::default();
    readiness.register(KAFKA_CHECK);
    readiness.register(CLICKHOUSE_CHECK);
    let mut registry = Registry::default();
    let metrics = ProcessorMetrics::register(&mut registry);
    let ops_shutdown = CancellationToken::new();
    let ops_server = tokio::spawn(serve_http(
        listener,
        ops::router(readiness.clone(), Arc::new(registry)),
        ops_shutdown.clone(),
        // Health and metrics only: nothing worth waiting for.
        std::time::Duration::from_secs(1),
    ));

    // Settings that are wrong stop the processor before it waits for anything.
    let clickhouse = Connection::open(&config.clickhouse)?;
    let kafka = &config.kafka;
    let mut topics = vec![kafka.events_topic.as_str(), kafka.dlq_topic.as_str()];
    if !kafka.live_topic.is_empty() {
        topics.push(&kafka.live_topic);
    }
    // A broker or ClickHouse that is down at startup is waited for, with
    // readiness saying which and why.
    let waiting_for = |check| Patience::Reporting(readiness.clone(), check);
    ensure_topics(kafka, &topics, waiting_for(KAFKA_CHECK), &shutdown).await?;
    let features = ensure_schema(&clickhouse, waiting_for(CLICKHOUSE_CHECK), &shutdown).await?;

    let cluster = clickhouse.cluster().cloned();
    let (clickhouse, database) = clickhouse.client(features);
    let clickhouse = reading_own_writes(clickhouse, features, cluster.is_some());
    let supervisor = Supervisor::new(shutdown.clone());
    if config.processor.retention_days > 0 {
        let task = retention::run(
            clickhouse.clone(),
            database,
            cluster,
            config.processor.retention_days,
            shutdown.clone(),
        );
        supervisor.spawn("retention", async move {
            task.await;
            Ok(())
        });
    }
    let held = HeldPartitions::default();
    let coverage = CoverageWatch::new(
        kafka,
        &config.processor,
        held.clone(),
        readiness.clone(),
        metrics.clone(),
    )?;
    let rejoin = coverage.rejoin();
    coverage.spawn(&supervisor, shutdown.clone())?;
    let pipeline = Pipeline::new(
        kafka,
        config.processor.clone(),
        EventSink::new(clickhouse),
        metrics.clone(),
        readiness.clone(),
        held,
    )?;
    let live = LivePublisher::new(pipeline.producer(), &kafka.live_topic, metrics);
    tracing::info!(topic = %kafka.events_topic, group = %config.processor.consumer_group, "stream processor running");
    pipeline.run(shutdown, live, rejoin).await;
    supervisor.outcome()?;

    ops_shutdown.cancel();
    ops_server.await??;
    Ok(())
}

/// The processor's client, set so that a partition's new owner reads the
/// checkpoint its previous owner wrote, not an older copy on a lagging
/// replica. A stale read would not break exactly-once (the new owner would
/// replay from there, writing identical rows), but it would replay for
/// nothing. The processor's reads are rare (a checkpoint per partition
/// taken over, retention's partition list), so they may cost more.
/// - ClickHouse Cloud sends each HTTP request to any replica:
///   `select_sequential_consistency` makes it sync with Keeper first.
/// - On a cluster of Replicated tables, every processor writes to and reads
///   from the first live replica of each shard (`load_balancing =
///   in_order`); only while that replica is down may a takeover read an
///   older checkpoint from another.
fn reading_own_writes(
    client: clickhouse::Client,
    features: ServerFeatures,
    on_cluster: bool,
) -> clickhouse::Client {
    if features.shared_merge_tree {
        client.with_setting("select_sequential_consistency", "1")
    } else if on_cluster {
        client.with_setting("load_balancing", "in_order")
    } else {
        client
    }
}
