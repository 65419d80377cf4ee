//! The destinations service: every event that a project's webhook rules
//! match becomes a signed HTTP delivery to that webhook, retried with
//! backoff, dead-lettered after the last attempt, and isolated per
//! destination so one slow receiver never delays another (or ClickHouse
//! ingestion: this service reads the events topic in its own consumer group).
//!
//! Pure parts, each with its tests:
//! - [`rules`]: the rule model, its checks, matching and deterministic sampling.
//! - [`signing`]: Standard Webhooks signatures and secrets.
//! - [`backoff`]: retry delays with jitter, `Retry-After`, which answers are retried.
//! - [`breaker`]: the circuit breaker of one destination.
//! - [`offsets`]: which source offsets may be committed.
//! - [`targets`]: which URLs a webhook may point at (SSRF).
//! - [`batch`]: batch mode: the batch's body and id, and how a worker gathers one.

pub mod backoff;
pub mod batch;
pub mod breaker;
pub mod offsets;
pub mod rules;
pub mod signing;
pub mod targets;

pub mod api;
pub mod config;
pub mod consume;
pub mod deliveries_log;
pub mod delivery;
pub mod dispatch;
pub mod error;
pub mod metrics;
pub mod sender;
pub mod spool;
pub mod takeover;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sluice_runtime::access::Access;
use sluice_runtime::clickhouse::{CLICKHOUSE_CHECK, Connection, ensure_schema};
use sluice_runtime::http::{serve_http, with_common_layers};
use sluice_runtime::kafka::{KAFKA_CHECK, ensure_keys_topic, ensure_record_topic, ensure_topics};
use sluice_runtime::ops::{self, HttpMetrics, Patience, Readiness};
use sluice_runtime::record_topic::{RecordStore, RecordWriter};
use sluice_runtime::supervise::Supervisor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::DestinationsConfig;

use crate::api::AppState;
use crate::consume::ConsumeContext;
use crate::deliveries_log::DeliveryLog;
use crate::dispatch::{DispatchLimits, DispatchParts, Dispatcher};
use crate::metrics::DestinationMetrics;
use crate::sender::Sender;
use crate::spool::Spool;
use crate::targets::TargetPolicy;
use crate::webhook::WebhookRecord;

/// Runs the service until `shutdown`: the management API, health and
/// metrics on `listener`, the consumers in the background.
pub async fn serve(
    config: DestinationsConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let settings = &config.destinations;
    let policy = TargetPolicy {
        allowed: settings.allowed_ranges()?,
    };
    let clickhouse = Connection::open(&config.clickhouse)?;
    let readiness = Readiness::default();
    readiness.register(KAFKA_CHECK);
    readiness.register(CLICKHOUSE_CHECK);
    let mut registry = Registry::default();
    let metrics = DestinationMetrics::register(&mut registry);
    let http_metrics = HttpMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    let supervisor = Supervisor::new(shutdown.clone());
    let kafka = &config.kafka;

    let waiting_for = |check| Patience::Reporting(readiness.clone(), check);
    let topics = [
        kafka.events_topic.as_str(),
        settings.retry_topic.as_str(),
        settings.dead_letter_topic.as_str(),
    ];
    ensure_topics(kafka, &topics, waiting_for(KAFKA_CHECK), &shutdown).await?;
    ensure_keys_topic(kafka, waiting_for(KAFKA_CHECK), &shutdown).await?;
    ensure_record_topic(
        kafka,
        &settings.webhooks_topic,
        waiting_for(KAFKA_CHECK),
        &shutdown,
    )
    .await?;
    let features = ensure_schema(&clickhouse, waiting_for(CLICKHOUSE_CHECK), &shutdown).await?;
    // After the topics exist: a broker may create a topic that a reader
    // asks about first, with settings not Sluice's.
    let access = Access::start(kafka, &config.api, &readiness, &supervisor, &shutdown)?;
    let webhooks: RecordStore<WebhookRecord> = RecordStore::tail(
        kafka,
        &settings.webhooks_topic,
        &readiness,
        &supervisor,
        shutdown.clone(),
    )?;
    let (client, _) = clickhouse.client(features);

    let workers = CancellationToken::new();
    let (log, log_writer) = DeliveryLog::start(client.clone(), metrics.clone(), workers.clone());
    let log_task = tokio::spawn(log_writer);
    let sender = Sender::new(policy.clone())?;
    let spool = Spool::new(
        kafka,
        &settings.retry_topic,
        &settings.dead_letter_topic,
        workers.clone(),
    )?;
    let dispatcher = Dispatcher::new(DispatchParts {
        webhooks: webhooks.clone(),
        sender: sender.clone(),
        spool: spool.clone(),
        log,
        metrics: metrics.clone(),
        limits: DispatchLimits {
            queue_capacity: settings.queue_capacity,
            concurrency: settings.concurrency,
            backoff: settings.backoff(),
            breaker_threshold: settings.breaker_threshold,
            breaker_pause: Duration::from_millis(settings.breaker_pause_ms),
            breaker_max_pause: Duration::from_millis(settings.breaker_pause_max_ms),
        },
        shutdown: workers.clone(),
    });
    let context = Arc::new(ConsumeContext {
        kafka: kafka.clone(),
        group: settings.consumer_group.clone(),
        commit_interval: Duration::from_millis(settings.commit_interval_ms.max(10)),
        stall_timeout: Duration::from_millis(settings.stall_timeout_ms),
        longest_wait: Duration::from_millis(settings.backoff_max_ms),
        supervisor: supervisor.clone(),
        dispatcher: dispatcher.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    });
    // Supervised: a consumer that cannot start or fails stops the service,
    // naming why, rather than leaving it up and delivering nothing.
    let events = supervisor.spawn_awaited(
        "events consumer",
        consume::events(context.clone(), webhooks.clone()),
    );
    let retries = supervisor.spawn_awaited(
        "retries consumer",
        consume::retries(
            context,
            settings.retry_topic.clone(),
            settings.max_scheduled_retries,
        ),
    );

    let state = AppState {
        access,
        webhooks,
        writer: Arc::new(RecordWriter::new(kafka, &settings.webhooks_topic)?),
        policy: Arc::new(policy),
        sender,
        spool,
        dispatcher: dispatcher.clone(),
        clickhouse: client,
        default_timeout_ms: settings.default_timeout_ms,
        default_max_attempts: settings.default_max_attempts,
    };
    let app = api::router(state)
        .route_layer(axum::middleware::from_fn_with_state(
            http_metrics,
            HttpMetrics::track,
        ))
        .merge(ops::router(readiness, registry));
    let app = with_common_layers(app, config.api.request_timeout());
    tracing::info!(topic = %kafka.events_topic, group = %settings.consumer_group, "destinations running");
    let http = tokio::spawn(serve_http(
        listener,
        app,
        shutdown.clone(),
        config.process.lifecycle.http_drain(),
    ));

    shutdown.cancelled().await;
    // The consumers stop reading and commit what is settled; attempts in
    // flight get half the drain, then the workers stop.
    let _ = events.await;
    let _ = retries.await;
    dispatcher
        .drain(config.process.lifecycle.http_drain())
        .await;
    workers.cancel();
    let _ = log_task.await;
    http.await??;
    supervisor.outcome()
}
