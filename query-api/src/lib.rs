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
//! - [`routes`]: the router; [`state`]: what handlers share.
//! - [`auth`]: the key every request carries, as extractors checked first.
//! - [`params`], [`filters`]: query strings, the shared filters, SQL with binds.
//! - [`events`]: `GET /v1/events`, keyset-paginated.
//! - [`metrics`]: `GET /v1/metrics`, planned over rollups and raw events.
//! - [`export`]: `GET /v1/export/{events,metrics}`, streamed files.
//! - [`live`]: `GET /v1/live`, WebSocket pushes from the live topic.
//! - [`status`]: `GET /v1/status` and `/v1/admin/status`: freshness, lag,
//!   watermarks, late and dead-lettered counts, services' readiness.
//! - [`snapshot`]: reading raw events with `FINAL` only where copies may be.
//! - [`openapi`]: the OpenAPI document behind `/openapi.json` and `/docs`.
//! - [`dashboard`]: the dashboard at `/`, its assets compiled in.
//! - [`error`]: `ApiError`, one status and body per failure.

pub mod accounts;
pub mod auth;
pub mod config;
pub mod dashboard;
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
pub mod state;
pub mod status;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Request;
use prometheus_client::registry::Registry;
use sluice_runtime::access::{Access, AccessWriter};
use sluice_runtime::clickhouse::{
    CLICKHOUSE_CHECK, Connection, await_schema, watch as watch_clickhouse,
};
use sluice_runtime::http::{serve_http, with_common_layers};
use sluice_runtime::kafka::{KAFKA_CHECK, ensure_keys_topic, ensure_topics};
use sluice_runtime::key_admin::KeyAdmin;
use sluice_runtime::keys::KeyWriter;
use sluice_runtime::ops::{self, HttpMetrics, Patience, Readiness};
use sluice_runtime::supervise::Supervisor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::QueryConfig;
use error::ApiError;
use live::feed::LiveFeed;
use routes::{AppState, router};
use status::StatusSources;
use status::broker::BrokerView;
use status::peers::Peers;
use tower::ServiceExt;

/// The readiness check that passes once the API's routes serve.
pub const ROUTES_CHECK: &str = "routes";

/// Runs the query API on `listener` until `shutdown`. It serves at once:
/// while the keys topic, the live topic or ClickHouse's tables are not there
/// yet, `/health/ready` says which and why, and every API route answers 503
/// `starting`; a setting that is wrong (a ClickHouse password, a
/// certificate) ends it with an error naming the setting.
pub async fn serve(
    config: QueryConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let readiness = Readiness::default();
    readiness.register(KAFKA_CHECK);
    readiness.register(CLICKHOUSE_CHECK);
    // Ready only once the routes are in place: the other checks may all
    // pass a moment before they are.
    readiness.fail(ROUTES_CHECK, "the API opens once every other check passes");
    let connection = Connection::open(&config.clickhouse)?;
    let peers = Peers::parse(&config.query.status_peers, "--status-peers")?;
    let destinations_url = accounts::webhooks::destinations_url(&config.query.destinations_url)?;
    let mut registry = Registry::default();
    let http_metrics = HttpMetrics::register(&mut registry);
    let registry = Arc::new(registry);

    let app = Arc::new(OnceLock::new());
    let starting =
        ops::router(readiness.clone(), registry.clone()).fallback(|| async { ApiError::Starting });
    let switch = with_common_layers(switch(app.clone(), starting), config.api.request_timeout());
    tracing::info!(address = %listener.local_addr()?, "query API listening");
    let serving = shutdown.child_token();
    let server = tokio::spawn(serve_http(
        listener,
        switch,
        serving.clone(),
        config.process.lifecycle.http_drain(),
    ));

    let supervisor = Supervisor::new(shutdown.clone());
    let started = start(
        &config,
        connection,
        peers,
        &readiness,
        &supervisor,
        &shutdown,
    )
    .await;
    let state = match started {
        Ok((clickhouse, access, live, status)) => AppState {
            clickhouse,
            key_admin: KeyAdmin::new(&access, KeyWriter::new(&config.kafka)?),
            access_writer: Arc::new(AccessWriter::new(&config.kafka)?),
            access,
            login_limits: Arc::default(),
            destinations_url,
            http: reqwest::Client::builder()
                .timeout(config.api.request_timeout())
                .build()?,
            settings: config.query.clone(),
            live,
            shutdown: shutdown.clone(),
            http_metrics,
            readiness,
            registry,
            status,
        },
        Err(error) => {
            serving.cancel();
            let _ = server.await;
            return Err(error);
        }
    };
    let ready = state.readiness.clone();
    let _ = app.set(router(state));
    ready.pass(ROUTES_CHECK);
    tracing::info!("query API ready");
    server.await??;
    supervisor.outcome()?;
    tracing::info!("query API stopped");
    Ok(())
}

/// Waits for what the API reads, as readiness reports: the keys topic, the
/// live topic, and ClickHouse with the processor's tables.
async fn start(
    config: &QueryConfig,
    connection: Connection,
    peers: Peers,
    readiness: &Readiness,
    supervisor: &Supervisor,
    shutdown: &CancellationToken,
) -> anyhow::Result<(clickhouse::Client, Access, LiveFeed, StatusSources)> {
    let waiting_for = |check| Patience::Reporting(readiness.clone(), check);
    ensure_keys_topic(&config.kafka, waiting_for(KAFKA_CHECK), shutdown).await?;
    let access = Access::start(
        &config.kafka,
        &config.api,
        readiness,
        supervisor,
        &shutdown.child_token(),
    )?;
    if !config.kafka.live_topic.is_empty() {
        let live_topic = [config.kafka.live_topic.as_str()];
        ensure_topics(
            &config.kafka,
            &live_topic,
            waiting_for(KAFKA_CHECK),
            shutdown,
        )
        .await?;
    }
    let live = LiveFeed::tail(&config.kafka, readiness, supervisor, shutdown.child_token())?;
    let status = StatusSources {
        broker: BrokerView::new(&config.kafka)?,
        processor_group: config.query.processor_group.clone(),
        peers,
    };
    // The processor creates the tables; this API's user may only read them.
    let features = await_schema(&connection, waiting_for(CLICKHOUSE_CHECK), shutdown).await?;
    let (clickhouse, _) = connection.client(features);
    let watch = watch_clickhouse(connection, readiness.clone(), shutdown.child_token());
    supervisor.spawn("ClickHouse watch", async move {
        watch.await;
        Ok(())
    });
    Ok((clickhouse, access, live, status))
}

/// `starting` until `app` is set, then `app`, for every request.
fn switch(app: Arc<OnceLock<Router>>, starting: Router) -> Router {
    Router::new().fallback_service(tower::service_fn(move |request: Request| {
        let router = app.get().unwrap_or(&starting).clone();
        async move { router.oneshot(request).await }
    }))
}
