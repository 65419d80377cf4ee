//! The router of the query API, its shared state, and the key check every
//! endpoint starts with.

use std::sync::Arc;

use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use axum::{Router, middleware};
use prometheus_client::registry::Registry;
use sluice_runtime::auth::presented_key;
use sluice_runtime::clickhouse::CLICKHOUSE_CHECK;
use sluice_runtime::keys::{KeyStore, Scope};
use sluice_runtime::ops::{self, HttpMetrics, Readiness};
use tokio_util::sync::CancellationToken;

use crate::config::QuerySettings;
use crate::error::{ApiError, Result};
use crate::events::list_events;
use crate::export::{export_events, export_metrics};
use crate::live::feed::LiveFeed;
use crate::live::live_socket;
use crate::metrics::get_metrics;
use crate::openapi;

#[derive(Clone)]
pub struct AppState {
    pub clickhouse: clickhouse::Client,
    pub keys: KeyStore,
    pub settings: QuerySettings,
    pub live: LiveFeed,
    pub shutdown: CancellationToken,
    pub http_metrics: HttpMetrics,
    pub readiness: Readiness,
    pub registry: Arc<Registry>,
}

/// The project of the request's key, which needs the `read` scope. Every
/// query binds it: no request can read another project's rows. Then, when
/// ClickHouse does not answer ([`CLICKHOUSE_CHECK`]), the request gets 503
/// at once instead of waiting for its time limit.
pub fn authorize(state: &AppState, headers: &HeaderMap) -> Result<String> {
    let key = state
        .keys
        .authorize(&presented_key(headers).unwrap_or_default(), Scope::Read)?;
    if !state.readiness.passes(CLICKHOUSE_CHECK) {
        return Err(ApiError::StorageDown);
    }
    Ok(key.project_id.clone())
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/events", get(list_events))
        .route("/v1/metrics", get(get_metrics))
        .route("/v1/export/events", get(export_events))
        .route("/v1/export/metrics", get(export_metrics))
        .route("/v1/live", get(live_socket))
        .route_layer(middleware::from_fn_with_state(
            state.http_metrics.clone(),
            HttpMetrics::track,
        ))
        .with_state(state.clone());
    api.merge(ops::router(state.readiness, state.registry))
        .merge(sluice_runtime::docs::router(openapi::spec()))
        .fallback(|uri: Uri| async move { ApiError::NotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}
