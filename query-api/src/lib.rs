//! The query API: what analysts and dashboards read.
//!
//! Every request names its project through its API key (which needs the
//! `read` scope; keys come from the keys topic) and sees only that project's
//! rows: the project id is bound into every query. Raw events are read with
//! `FINAL` wherever a day may still hold replayed or retried copies, so they
//! never count twice; metrics come from rollups where they cover the
//! question, else from raw events.
//!
//! - [`config`]: settings (`--help`).
//! - [`routes`]: the router, shared state and the key check.
//! - [`params`], [`filters`]: query strings, the shared filters, SQL with binds.
//! - [`events`]: `GET /v1/events`, keyset-paginated.
//! - [`metrics`]: `GET /v1/metrics`, planned over rollups and raw events.
//! - [`export`]: `GET /v1/export/{events,metrics}`, streamed files.
//! - [`live`]: `GET /v1/live`, WebSocket pushes from the live topic.
//! - [`snapshot`]: reading raw events with `FINAL` only where copies may be.
//! - [`openapi`]: the OpenAPI document behind `/openapi.json` and `/docs`.
//! - [`error`]: `ApiError`, one status and body per failure.

pub mod config;
pub mod error;
pub mod events;
pub mod export;
pub mod filters;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod routes;
pub mod snapshot;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sluice_runtime::clickhouse::{
    CLICKHOUSE_CHECK, Connection, await_schema, watch as watch_clickhouse,
};
use sluice_runtime::http::{serve_http, with_common_layers};
use sluice_runtime::kafka::{ensure_keys_topic, ensure_topics};
use sluice_runtime::keys::KeyStore;
use sluice_runtime::ops::{HttpMetrics, Patience, Readiness};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::QueryConfig;
use live::feed::LiveFeed;
use routes::{AppState, router};

const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the query API on `listener` until `shutdown`.
pub async fn serve(
    config: QueryConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let readiness = Readiness::default();
    // Settings that are wrong stop the API before it waits for anything.
    let connection = Connection::open(&config.clickhouse)?;
    ensure_keys_topic(&config.kafka, Patience::AtMost(STARTUP_DEADLINE), &shutdown).await?;
    let keys = KeyStore::tail(&config.kafka, &readiness, shutdown.child_token())?;
    if !config.kafka.live_topic.is_empty() {
        let live_topic = [config.kafka.live_topic.as_str()];
        ensure_topics(
            &config.kafka,
            &live_topic,
            Patience::AtMost(STARTUP_DEADLINE),
            &shutdown,
        )
        .await?;
    }
    let live = LiveFeed::tail(&config.kafka, &readiness, shutdown.child_token())?;
    readiness.register(CLICKHOUSE_CHECK);
    // The processor creates the tables; this API's user may only read them.
    let features = await_schema(&connection, Patience::AtMost(STARTUP_DEADLINE), &shutdown).await?;
    readiness.pass(CLICKHOUSE_CHECK);
    let (clickhouse, _) = connection.client(features);
    tokio::spawn(watch_clickhouse(
        connection,
        readiness.clone(),
        shutdown.child_token(),
    ));

    let mut registry = Registry::default();
    let state = AppState {
        clickhouse,
        keys,
        settings: config.query.clone(),
        live,
        shutdown: shutdown.clone(),
        http_metrics: HttpMetrics::register(&mut registry),
        readiness,
        registry: Arc::new(registry),
    };
    let app = with_common_layers(router(state), config.api.request_timeout());
    tracing::info!(address = %listener.local_addr()?, "query API listening");
    serve_http(listener, app, shutdown).await?;
    tracing::info!("query API stopped");
    Ok(())
}
