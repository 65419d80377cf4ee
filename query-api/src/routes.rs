//! The router of the query API.

use axum::http::Uri;
use axum::routing::get;
use axum::{Router, middleware};
use sluice_runtime::ops::{self, HttpMetrics};

use crate::accounts;
use crate::dashboard;
use crate::error::ApiError;
use crate::events::list_events;
use crate::export::{export_events, export_metrics};
use crate::live::live_socket;
use crate::metrics::get_metrics;
use crate::openapi;
pub use crate::state::AppState;
use crate::status::{admin_status, project_status};

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/events", get(list_events))
        .route("/v1/metrics", get(get_metrics))
        .route("/v1/export/events", get(export_events))
        .route("/v1/export/metrics", get(export_metrics))
        .route("/v1/live", get(live_socket))
        .route("/v1/status", get(project_status))
        .route("/v1/admin/status", get(admin_status))
        .merge(accounts::router())
        .route_layer(middleware::from_fn_with_state(
            state.http_metrics.clone(),
            HttpMetrics::track,
        ))
        .with_state(state.clone());
    api.merge(ops::router(state.readiness, state.registry))
        .merge(sluice_runtime::docs::router(openapi::spec()))
        .merge(dashboard::router())
        .fallback(|uri: Uri| async move { ApiError::NotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}
