//! The router of the query API.

use std::sync::Arc;

use axum::routing::get;
use axum::{Router, middleware};
use prometheus_client::registry::Registry;
use sluice_runtime::keys::KeyStore;
use sluice_runtime::ops::{self, HttpMetrics, Readiness};

use crate::events::list_events;

#[derive(Clone)]
pub struct AppState {
    pub clickhouse: clickhouse::Client,
    pub keys: KeyStore,
    pub http_metrics: HttpMetrics,
    pub readiness: Readiness,
    pub registry: Arc<Registry>,
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/events", get(list_events))
        .route_layer(middleware::from_fn_with_state(
            state.http_metrics.clone(),
            HttpMetrics::track,
        ))
        .with_state(state.clone());
    api.merge(ops::router(state.readiness, state.registry))
}
