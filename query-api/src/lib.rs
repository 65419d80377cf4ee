//! The query API: what analysts and dashboards read.
//!
//! Every request names its project through its API key (which needs the
//! `read` scope; keys come from the keys topic) and sees only that project's
//! rows. Reads use `FINAL` on the `events` table so that replayed or
//! retried copies of an event never count twice.
//!
//! - [`config`]: settings (`--help`).
//! - [`routes`]: the router and shared state.
//! - [`events`]: `GET /v1/events`.
//! - [`error`]: `ApiError`, one status and body per failure.

pub mod config;
pub mod error;
pub mod events;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sluice_runtime::clickhouse::{client, ensure_schema};
use sluice_runtime::http::{serve_http, with_common_layers};
use sluice_runtime::kafka::ensure_keys_topic;
use sluice_runtime::keys::KeyStore;
use sluice_runtime::ops::{HttpMetrics, Readiness};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::QueryConfig;
use routes::{AppState, router};

const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the query API on `listener` until `shutdown`.
pub async fn serve(
    config: QueryConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let readiness = Readiness::default();
    ensure_keys_topic(&config.kafka, STARTUP_DEADLINE, &shutdown).await?;
    let keys = KeyStore::tail(&config.kafka, &readiness, shutdown.child_token())?;
    readiness.register("clickhouse");
    let features = ensure_schema(&config.clickhouse, STARTUP_DEADLINE, &shutdown).await?;
    readiness.set("clickhouse", true);
    let (clickhouse, _) = client(&config.clickhouse, features)?;

    let mut registry = Registry::default();
    let state = AppState {
        clickhouse,
        keys,
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
