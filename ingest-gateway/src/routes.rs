//! The HTTP API: native ingest (`/v1/events`, `/v1/events/batch`), the
//! Segment-compatible surface (with analytics.js's and Jitsu's paths), CORS
//! for browsers, and the operations endpoints.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use axum::{Json, Router, middleware};
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sluice_runtime::auth::presented_key;
use sluice_runtime::keys::{AuthError, KeyRecord, KeyStore, KeyWriter, Scope};
use sluice_runtime::ops::{self, HttpMetrics, Readiness};
use sluice_schemas::Limits;

use crate::admin;
use crate::admission::{Admission, InFlightBudget, within_budget};
use crate::batch_body::{NativeBatchReader, SegmentBatchReader};
use crate::body::{Accept, json_refusal, parse_json, parse_json_object_with, read_body};
use crate::client::{TrustedProxies, user_agent};
use crate::config::IngestSettings;
use crate::cors::{CorsPolicy, cors};
use crate::error::{ApiError, Result, set_budget_headers};
use crate::ingest::{self, Batch, Submission};
use crate::metrics::GatewayMetrics;
use crate::publish::EventPublisher;
use crate::rate_limit::{Budget, RateLimits};
use crate::segment::{self, BatchDefaults, Call};

/// Everything a handler needs, shared across requests.
#[derive(Clone)]
pub struct AppState {
    pub publisher: Arc<EventPublisher>,
    pub keys: KeyStore,
    pub key_writer: Arc<KeyWriter>,
    /// The bootstrap admin token, when configured.
    pub admin_token: Option<Arc<str>>,
    pub limits: Arc<Limits>,
    pub ingest: Arc<IngestSettings>,
    pub proxies: Arc<TrustedProxies>,
    pub cors: Arc<CorsPolicy>,
    pub rate_limits: Arc<RateLimits>,
    pub metrics: GatewayMetrics,
    pub http_metrics: HttpMetrics,
    pub readiness: Readiness,
    pub registry: Arc<prometheus_client::registry::Registry>,
}

/// Segment's single calls: the call, its name, and analytics.js's
/// one-letter name for it.
pub const SEGMENT_CALLS: [(Call, &str, &str); 6] = [
    (Call::Track, "track", "t"),
    (Call::Identify, "identify", "i"),
    (Call::Page, "page", "p"),
    (Call::Screen, "screen", "s"),
    (Call::Group, "group", "g"),
    (Call::Alias, "alias", "a"),
];

/// Where a Segment batch is taken: Segment's batch and import paths, and
/// analytics.js's one-letter one.
pub const SEGMENT_BATCH_PATHS: [&str; 3] = ["/v1/batch", "/v1/import", "/v1/b"];

/// Where a Segment single call is taken: Segment's path, analytics.js's
/// one-letter one, and Jitsu's two (browser and server-to-server).
pub fn segment_call_paths(name: &str, short: &str) -> [String; 4] {
    [
        format!("/v1/{name}"),
        format!("/v1/{short}"),
        format!("/api/s/{name}"),
        format!("/api/s/s2s/{name}"),
    ]
}

pub fn router(state: AppState) -> Router {
    let one = state.ingest.max_event_bytes;
    let many = state.ingest.max_batch_bytes;
    let budget = InFlightBudget::new(state.ingest.max_in_flight_bytes);
    let limited = |route: MethodRouter<AppState>, route_limit| {
        let admission = Admission {
            budget: budget.clone(),
            route_limit,
        };
        route
            .layer(DefaultBodyLimit::max(route_limit))
            .layer(middleware::from_fn_with_state(admission, within_budget))
    };
    let mut ingest = Router::new()
        .route("/v1/events", limited(post(ingest_one), one))
        .route("/v1/events/batch", limited(post(ingest_batch), many));
    for path in SEGMENT_BATCH_PATHS {
        ingest = ingest.route(path, limited(post(segment_batch), many));
    }
    for (call, name, short) in SEGMENT_CALLS {
        for path in segment_call_paths(name, short) {
            let handler =
                move |state, peer, headers, body| segment_call(call, state, peer, headers, body);
            ingest = ingest.route(&path, limited(post(handler), one));
        }
    }
    // Outside the body budget: a preflight is answered before it is counted.
    // The 405 fallback is set first, so that CORS wraps it too (a preflight
    // is an OPTIONS, which these routes do not otherwise take).
    let ingest = ingest
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state.cors.clone(), cors));
    let api = ingest
        .merge(admin::router())
        .route_layer(middleware::from_fn_with_state(
            state.http_metrics.clone(),
            HttpMetrics::track,
        ))
        .with_state(state.clone());
    api.merge(ops::router(state.readiness, state.registry))
        .merge(crate::openapi::router())
        // Unknown paths and methods get the error body too (axum's own
        // answers are empty); axum still adds `Allow` to the 405.
        .fallback(|uri: Uri| async move { ApiError::NotFound(format!("route {}", uri.path())) })
        .method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(uri.path().to_owned())
}

/// Checks a presented key; failures are counted per client IP, and an IP
/// over its failed-auth limit gets 429.
pub fn authorize(
    state: &AppState,
    presented: Option<String>,
    client_ip: IpAddr,
    scope: Scope,
) -> Result<Arc<KeyRecord>> {
    let outcome = match presented {
        Some(key) => state.keys.authorize(&key, scope),
        None => Err(AuthError::Missing),
    };
    outcome.map_err(|error| {
        if matches!(
            error,
            AuthError::Missing | AuthError::Unknown | AuthError::Revoked
        ) && let Err(limited) = state.rate_limits.failed_auth(client_ip)
        {
            state.metrics.rate_limited(limited.limit);
            return ApiError::RateLimited(limited);
        }
        ApiError::Auth(error)
    })
}

/// Takes a request and its events from the key's budget.
fn admit(state: &AppState, key: &KeyRecord, events: usize) -> Result<Option<Budget>> {
    let events = u32::try_from(events).unwrap_or(u32::MAX);
    state.rate_limits.admit(key, events).map_err(|limited| {
        state.metrics.rate_limited(limited.limit);
        ApiError::RateLimited(limited)
    })
}

/// The request's origin: the client IP (trusted proxies already applied)
/// and the user agent.
fn submission(key: &KeyRecord, client_ip: IpAddr, headers: &HeaderMap) -> Submission {
    Submission::new(&key.project_id, client_ip.to_string(), user_agent(headers))
}

fn respond(status: StatusCode, body: impl Serialize, budget: Option<Budget>) -> Response {
    with_budget((status, Json(body)).into_response(), budget)
}

/// Like [`respond`], for a body already written as JSON.
fn respond_json(status: StatusCode, json: Vec<u8>, budget: Option<Budget>) -> Response {
    let content_type = [(header::CONTENT_TYPE, "application/json")];
    with_budget((status, content_type, json).into_response(), budget)
}

fn with_budget(mut response: Response, budget: Option<Budget>) -> Response {
    if let Some(budget) = budget {
        set_budget_headers(response.headers_mut(), budget);
    }
    response
}

/// Counts request-level refusals by reason, then answers with them.
fn counted(state: &AppState, result: Result<Response>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => {
            state.metrics.request_rejected(error.reason());
            error.into_response()
        }
    }
}

/// `POST /v1/events`: one event; 202 with its `event_id` once the broker has it.
async fn ingest_one(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let client_ip = state.proxies.client_ip(peer.ip(), &headers);
        let key = authorize(&state, presented_key(&headers), client_ip, Scope::Ingest)?;
        let body = read_body(&headers, body, Accept::Json, state.ingest.max_event_bytes)?;
        let event: &RawValue = parse_json(&body)?;
        let budget = admit(&state, &key, 1)?;
        let submission = submission(&key, client_ip, &headers);
        let mut batch = Batch::with_capacity(1);
        batch.push(0, submission.validate(event.get(), &state));
        let outcome = single(ingest::publish(&state, &mut batch).await)?;
        Ok(respond(
            StatusCode::ACCEPTED,
            json!({"event_id": outcome}),
            budget,
        ))
    };
    counted(&state, result.await)
}

/// The one event of a single-event request: its id, or its errors.
fn single(published: Result<ingest::Outcome<'_>>) -> Result<String> {
    match published {
        Ok(mut outcome) => Ok(outcome
            .accepted
            .pop()
            .map(|accepted| accepted.event_id.into_owned())
            .unwrap_or_default()),
        Err(ApiError::InvalidBatch(mut rejected)) => Err(ApiError::InvalidEvent(
            rejected.pop().map(|r| r.errors).unwrap_or_default(),
        )),
        Err(other) => Err(other),
    }
}

/// `POST /v1/events/batch`: `{"events": [...]}`. 202 when every event was
/// accepted, 207 when some were refused (the body says which and why), 400
/// when none was valid.
async fn ingest_batch(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let client_ip = state.proxies.client_ip(peer.ip(), &headers);
        let key = authorize(&state, presented_key(&headers), client_ip, Scope::Ingest)?;
        let body = read_body(&headers, body, Accept::Json, state.ingest.max_batch_bytes)?;
        let reader = NativeBatchReader(state.ingest.max_batch_events);
        let events = parse_json_object_with(&body, reader)?.events;
        check_batch_size(&state, events.len)?;
        let budget = admit(&state, &key, events.len)?;
        let submission = submission(&key, client_ip, &headers);
        let mut batch = Batch::with_capacity(events.len);
        let limit = state.ingest.max_event_bytes;
        for (index, event) in events.kept.iter().enumerate() {
            match event.json_len() {
                size if size > limit => batch.reject(index, "$", too_large(size, limit)),
                _ => batch.push(index, submission.validate_raw(event, &state)),
            }
        }
        let outcome = ingest::publish(&state, &mut batch).await?;
        let status = if outcome.rejected.is_empty() {
            StatusCode::ACCEPTED
        } else {
            StatusCode::MULTI_STATUS
        };
        Ok(respond_json(status, outcome.to_json(""), budget))
    };
    counted(&state, result.await)
}

fn check_batch_size(state: &AppState, events: usize) -> Result<()> {
    if events == 0 {
        return Err(ApiError::InvalidRequest(
            "the batch holds no events".to_owned(),
        ));
    }
    if events > state.ingest.max_batch_events {
        return Err(ApiError::TooManyEvents(state.ingest.max_batch_events));
    }
    Ok(())
}

/// One event of a batch as JSON text, if it is within the event size limit.
fn sized_event<'a>(state: &AppState, raw: &'a RawValue) -> std::result::Result<&'a str, String> {
    let limit = state.ingest.max_event_bytes;
    let size = raw.get().len();
    if size > limit {
        return Err(too_large(size, limit));
    }
    Ok(raw.get())
}

fn too_large(size: usize, limit: usize) -> String {
    format!("the event is {size} bytes; the limit is {limit}")
}

/// The key of a Segment request: the `Authorization` header (basic auth with
/// the write key as user name, or bearer), else Jitsu's `X-Write-Key`
/// header, else the body's `writeKey`.
fn segment_key(headers: &HeaderMap, write_key: Option<&str>) -> Option<String> {
    presented_key(headers)
        .or_else(|| jitsu_key(headers))
        .or_else(|| write_key.map(str::to_owned))
}

/// Jitsu's `X-Write-Key: ID:SECRET` (its SDK refuses keys without the
/// colon): the secret is the Sluice key, the id is free (e.g. the key's
/// `key_id`). A value without a colon is the key itself.
fn jitsu_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-write-key")?.to_str().ok()?.trim();
    let key = value.split_once(':').map_or(value, |(_, secret)| secret);
    Some(key.to_owned()).filter(|key| !key.is_empty())
}

/// `POST /v1/track` and the other single Segment calls: 200
/// `{"success": true}` once the broker has the event.
async fn segment_call(
    call: Call,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let client_ip = state.proxies.client_ip(peer.ip(), &headers);
        let body = read_body(
            &headers,
            body,
            Accept::SdkJson,
            state.ingest.max_event_bytes,
        )?;
        let message: Value = parse_json(&body)?;
        let write_key = message.get("writeKey").and_then(Value::as_str);
        let key = authorize(
            &state,
            segment_key(&headers, write_key),
            client_ip,
            Scope::Ingest,
        )?;
        let budget = admit(&state, &key, 1)?;
        let submission = submission(&key, client_ip, &headers);
        let mut batch = Batch::with_capacity(1);
        batch.push(
            0,
            segment_event(
                &submission,
                &state,
                &message,
                Some(call),
                &BatchDefaults::default(),
            ),
        );
        let event_id = single(ingest::publish(&state, &mut batch).await)?;
        Ok(respond(
            StatusCode::OK,
            json!({"success": true, "event_id": event_id}),
            budget,
        ))
    };
    counted(&state, result.await)
}

fn segment_event(
    submission: &Submission,
    state: &AppState,
    message: &Value,
    call: Option<Call>,
    defaults: &BatchDefaults<'_>,
) -> std::result::Result<sluice_schemas::EventRef<'static>, Vec<sluice_schemas::FieldError>> {
    let event = segment::to_event(message, call, defaults, submission.received_at_ms)?;
    submission
        .validate_value(&event, state)
        .map_err(segment::segment_field_errors)
}

/// `POST /v1/batch` (and `/v1/import`): `{"batch": [...]}`, as Segment's
/// server SDKs send it. 200 `{"success": true, ...}` when any message was
/// accepted, listing refused ones; 400 when none was valid.
async fn segment_batch(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let client_ip = state.proxies.client_ip(peer.ip(), &headers);
        // Authenticate before reading a large body when the header allows it.
        let early_key = match presented_key(&headers) {
            Some(presented) => Some(authorize(
                &state,
                Some(presented),
                client_ip,
                Scope::Ingest,
            )?),
            None => None,
        };
        let body = read_body(
            &headers,
            body,
            Accept::SdkJson,
            state.ingest.max_batch_bytes,
        )?;
        let reader = SegmentBatchReader(state.ingest.max_batch_events);
        let request = parse_json_object_with(&body, reader)?;
        let key = match early_key {
            Some(key) => key,
            None => authorize(&state, request.write_key.clone(), client_ip, Scope::Ingest)?,
        };
        check_batch_size(&state, request.batch.len)?;
        let budget = admit(&state, &key, request.batch.len)?;
        let submission = submission(&key, client_ip, &headers);
        let defaults = BatchDefaults {
            context: request.context.as_ref(),
            sent_at: request.sent_at.as_ref(),
        };
        let mut batch = Batch::with_capacity(request.batch.len);
        for (index, raw) in request.batch.kept.iter().enumerate() {
            let message = sized_event(&state, raw)
                .map_err(|reason| ("$".to_owned(), reason))
                .and_then(|text| {
                    serde_json::from_str::<Value>(text).map_err(|error| json_refusal(text, &error))
                });
            match message {
                Ok(message) => batch.push(
                    index,
                    segment_event(&submission, &state, &message, None, &defaults),
                ),
                Err((field, reason)) => batch.reject(index, &field, reason),
            }
        }
        let outcome = ingest::publish(&state, &mut batch).await?;
        // Segment's `{"success": true}`, with what became of each message.
        let answer = outcome.to_json(r#""success":true,"#);
        Ok(respond_json(StatusCode::OK, answer, budget))
    };
    counted(&state, result.await)
}
