//! The HTTP API: `POST /v1/events`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router, middleware};
use bytes::Bytes;
use serde_json::{Value, json};
use sluice_runtime::auth::ApiKeys;
use sluice_runtime::ops::{self, HttpMetrics, Readiness};
use sluice_schemas::time_format::now_ms;
use sluice_schemas::validate::parse_event;
use sluice_schemas::{Limits, Origin};

use crate::error::{ApiError, Result};
use crate::metrics::GatewayMetrics;
use crate::publish::{EventPublisher, PublishError};

/// Everything a handler needs, shared across requests.
#[derive(Clone)]
pub struct AppState {
    pub publisher: Arc<EventPublisher>,
    pub api_keys: ApiKeys,
    pub limits: Arc<Limits>,
    pub max_event_bytes: usize,
    pub metrics: GatewayMetrics,
    pub http_metrics: HttpMetrics,
    pub readiness: Readiness,
    pub registry: Arc<prometheus_client::registry::Registry>,
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/events", post(ingest_one))
        .layer(DefaultBodyLimit::max(state.max_event_bytes))
        .route_layer(middleware::from_fn_with_state(
            state.http_metrics.clone(),
            HttpMetrics::track,
        ))
        .with_state(state.clone());
    api.merge(ops::router(state.readiness, state.registry))
}

/// `POST /v1/events`: one event; 202 with its `event_id` once the broker has it.
async fn ingest_one(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>)> {
    let project_id = state.api_keys.project_for(&headers).ok_or_else(|| {
        state.metrics.reject("unauthorized");
        ApiError::Unauthorized
    })?;
    let value = read_json(&state, &headers, body)?;
    let origin = Origin {
        project_id: Some(project_id),
        received_at_ms: now_ms(),
        client_ip: Some(&peer.ip().to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|agent| agent.to_str().ok()),
        fallback_event_id: uuid::Uuid::now_v7().to_string(),
    };
    let event = parse_event(&value, origin, &state.limits).map_err(|errors| {
        state.metrics.reject("invalid_event");
        ApiError::InvalidEvent(errors)
    })?;

    let started = Instant::now();
    match state.publisher.publish(&event).await {
        Ok(()) => {
            state
                .metrics
                .produce_latency
                .observe(started.elapsed().as_secs_f64());
            state.metrics.accepted.inc();
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"event_id": event.event_id})),
            ))
        }
        Err(PublishError::QueueFull) => {
            state.metrics.reject("overloaded");
            Err(ApiError::Overloaded)
        }
        Err(PublishError::NotAcknowledged(cause)) => {
            tracing::error!(cause = %cause, event_id = %event.event_id, "broker did not acknowledge");
            state.metrics.reject("broker_unavailable");
            Err(ApiError::BrokerUnavailable)
        }
    }
}

/// Checks the content type and size and parses the body as JSON.
fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let mime = value.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json")
        });
    if !is_json {
        state.metrics.reject("unsupported_media_type");
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            state.metrics.reject("payload_too_large");
            ApiError::PayloadTooLarge(state.max_event_bytes)
        } else {
            state.metrics.reject("unreadable_body");
            ApiError::UnreadableBody(rejection.body_text())
        }
    })?;
    serde_json::from_slice(&body).map_err(|error| {
        state.metrics.reject("invalid_json");
        ApiError::InvalidJson(error.to_string())
    })
}
