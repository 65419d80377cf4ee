//! The ingest gateway: the front door for producers that speak HTTP.
//!
//! A request is authenticated by its API key (which names the project and
//! must carry the `ingest` scope), rate-limited per key, and its events are
//! validated and enriched one by one, encoded as Avro and produced to the
//! events topic with `acks=all` and idempotence. The gateway answers only
//! after the broker has acknowledged every accepted event of the request, and
//! 503 with `Retry-After` when it cannot get that acknowledgement.
//!
//! - [`config`]: settings (`--help`).
//! - [`routes`]: the router and the ingest handlers (native and Segment).
//! - [`state`]: `AppState`, what every handler shares.
//! - [`auth`]: the API key of a request (ingest, Segment, admin), as extractors.
//! - [`admission`]: the budget of body bytes in flight (503 past it).
//! - [`body`]: media type, gzip and size limits of request bodies.
//! - [`client`]: client IP (trusted proxies) and user agent.
//! - [`cors`]: CORS on the ingest routes, for browser SDKs.
//! - [`ingest`]: per-event validation, publishing, and partial acceptance.
//! - [`event_results`]: what became of each event (acknowledged, rejected).
//! - [`segment`]: Segment messages mapped onto Sluice events, and their paths.
//! - [`admin`]: creating, listing and revoking API keys.
//! - [`rate_limit`]: per-key and per-IP limits.
//! - [`publish`]: the Kafka producer.
//! - [`producer_callbacks`]: its statistics and delivery reports.
//! - [`broker`]: topics at startup, and the `kafka` readiness check.
//! - [`acks`]: the broker's acks, counted per request (one wake-up each).
//! - [`error`]: `ApiError`, one status and body per failure.
//! - [`metrics`]: the gateway's Prometheus metrics.
//! - [`openapi`]: the OpenAPI document behind `/openapi.json` and `/docs`.

pub mod acks;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod batch_body;
pub mod body;
pub mod broker;
pub mod client;
pub mod config;
pub mod cors;
pub mod error;
pub mod event_results;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod producer_callbacks;
pub mod publish;
pub mod rate_limit;
pub mod routes;
pub mod segment;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use prometheus_client::registry::Registry;
use sluice_runtime::access::Access;
use sluice_runtime::http::{serve_http, with_common_layers};
use sluice_runtime::kafka::KAFKA_CHECK;
use sluice_runtime::key_admin::KeyAdmin;
use sluice_runtime::keys::KeyWriter;
use sluice_runtime::ops::{HttpMetrics, Readiness};
use sluice_runtime::supervise::Supervisor;
use sluice_schemas::Limits;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use client::TrustedProxies;
pub use config::GatewayConfig;
use cors::CorsPolicy;
use metrics::GatewayMetrics;
use publish::EventPublisher;
use rate_limit::RateLimits;
use routes::router;
use state::AppState;

/// How long shutdown waits for queued events to be acknowledged.
const FLUSH_DEADLINE: Duration = Duration::from_secs(10);
/// Shortest bootstrap admin token accepted.
const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// Runs the gateway on `listener` until `shutdown` is cancelled, then drains
/// requests in flight and flushes the producer. It serves at once, even
/// while the broker is down: until it answers, ingest gets 503 and
/// readiness says why.
pub async fn serve(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let admin_token = config.api.admin_token.trim();
    if !admin_token.is_empty() && admin_token.len() < MIN_ADMIN_TOKEN_BYTES {
        bail!("--admin-token must have at least {MIN_ADMIN_TOKEN_BYTES} characters");
    }
    let proxies = TrustedProxies::parse(&config.ingest.trusted_proxies)?;
    let cors = CorsPolicy::parse(&config.ingest.cors_origins)?;
    let readiness = Readiness::default();
    readiness.register(KAFKA_CHECK);
    let kafka = &config.kafka;

    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let publisher = Arc::new(EventPublisher::new(kafka, &config.ingest, &metrics)?);
    // A misconfiguration the broker reveals (a refused password, an
    // untrusted certificate) ends the watch, and the gateway with it.
    let supervisor = Supervisor::new(shutdown.clone());
    let access = Access::start(
        kafka,
        &config.api,
        &readiness,
        &supervisor,
        &shutdown.child_token(),
    )?;
    supervisor.spawn(
        "broker watch",
        broker::watch(
            publisher.clone(),
            kafka.clone(),
            readiness.clone(),
            shutdown.child_token(),
        ),
    );
    let rate_limits = Arc::new(RateLimits::new(config.rate_limits.clone()));
    let limits = rate_limits.clone();
    let forgetting = shutdown.child_token();
    supervisor.spawn("idle rate limits", async move {
        forget_idle_limits(limits, forgetting).await;
        Ok(())
    });
    let state = AppState {
        publisher: publisher.clone(),
        key_admin: KeyAdmin::new(&access, KeyWriter::new(kafka)?),
        access,
        limits: Arc::new(Limits::default()),
        ingest: Arc::new(config.ingest.clone()),
        proxies: Arc::new(proxies),
        cors: Arc::new(cors),
        rate_limits,
        metrics,
        http_metrics: HttpMetrics::register(&mut registry),
        readiness,
        registry: Arc::new(registry),
    };
    let app = with_common_layers(router(state), config.api.request_timeout());
    tracing::info!(address = %listener.local_addr()?, topic = %kafka.events_topic, "ingest gateway listening");
    serve_http(
        listener,
        app,
        shutdown.clone(),
        config.process.lifecycle.http_drain(),
    )
    .await?;
    let flushing = publisher.clone();
    tokio::task::spawn_blocking(move || flushing.flush(FLUSH_DEADLINE)).await?;
    supervisor.outcome()?;
    tracing::info!("ingest gateway stopped");
    Ok(())
}

async fn forget_idle_limits(limits: Arc<RateLimits>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => limits.forget_idle(),
        }
    }
}
