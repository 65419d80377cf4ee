//! The HTTP API: native ingest (`/v1/events`, `/v1/events/batch`), the
//! Segment-compatible surface (with analytics.js's and Jitsu's paths), CORS
//! for browsers, and the operations endpoints.

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use axum::{Json, Router, middleware};
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sluice_runtime::ops::{self, HttpMetrics};

use crate::admin;
use crate::admission::{Admission, InFlightBudget, within_budget};
use crate::auth::{IngestKey, SegmentCallKey, SegmentKey};
use crate::batch_body::{NativeBatchReader, SegmentBatchReader};
use crate::body::{Accept, json_refusal, parse_json, parse_json_object_with, read_body};
use crate::client::user_agent;
use crate::cors::cors;
use crate::error::{ApiError, Result, set_budget_headers};
use crate::ingest::{self, Batch, Submission};
use crate::rate_limit::Budget;
use crate::segment::{self, BatchDefaults, Call};
use crate::state::AppState;

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
    for path in segment::BATCH_PATHS {
        ingest = ingest.route(path, limited(post(segment_batch), many));
    }
    for (call, name, short) in segment::CALLS {
        for path in segment::call_paths(name, short) {
            let handler =
                move |state, key, headers, body| segment_call(call, state, key, headers, body);
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

/// A request admitted by its key's rate limits: who sent its events, and
/// what is left of the key's budget (for the answer's headers).
struct Admitted {
    submission: Submission,
    budget: Option<Budget>,
}

/// Takes a request and its `events` from the key's budget.
fn admit(
    state: &AppState,
    key: &IngestKey,
    headers: &HeaderMap,
    events: usize,
) -> Result<Admitted> {
    let events = u32::try_from(events).unwrap_or(u32::MAX);
    let budget = state
        .rate_limits
        .admit(&key.record, events)
        .map_err(|limited| {
            state.metrics.rate_limited(limited.limit);
            ApiError::RateLimited(limited)
        })?;
    let submission = Submission::new(
        &key.record.project_id,
        key.client_ip.to_string(),
        user_agent(headers),
    );
    Ok(Admitted { submission, budget })
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
    key: IngestKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body = read_body(&headers, body, Accept::Json, state.ingest.max_event_bytes)?;
        let event: &RawValue = parse_json(&body)?;
        let admitted = admit(&state, &key, &headers, 1)?;
        let mut batch = Batch::with_capacity(1);
        batch.push(0, admitted.submission.validate(event.get(), &state));
        let outcome = single(ingest::publish(&state, &mut batch).await)?;
        Ok(respond(
            StatusCode::ACCEPTED,
            json!({"event_id": outcome}),
            admitted.budget,
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
    key: IngestKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body = read_body(&headers, body, Accept::Json, state.ingest.max_batch_bytes)?;
        let reader = NativeBatchReader(state.ingest.max_batch_events);
        let events = parse_json_object_with(&body, reader)?.events;
        check_batch_size(&state, events.len)?;
        let admitted = admit(&state, &key, &headers, events.len)?;
        let mut batch = Batch::with_capacity(events.len);
        let limit = state.ingest.max_event_bytes;
        for (index, event) in events.kept.iter().enumerate() {
            match event.json_len() {
                size if size > limit => batch.reject(index, "$", too_large(size, limit)),
                _ => batch.push(index, admitted.submission.validate_raw(event, &state)),
            }
        }
        let outcome = ingest::publish(&state, &mut batch).await?;
        let status = if outcome.rejected.is_empty() {
            StatusCode::ACCEPTED
        } else {
            StatusCode::MULTI_STATUS
        };
        Ok(respond_json(status, outcome.to_json(""), admitted.budget))
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

/// `POST /v1/track` and the other single Segment calls: 200
/// `{"success": true}` once the broker has the event.
async fn segment_call(
    call: Call,
    State(state): State<AppState>,
    SegmentCallKey(key): SegmentCallKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body = read_body(
            &headers,
            body,
            Accept::SdkJson,
            state.ingest.max_event_bytes,
        )?;
        let message: Value = parse_json(&body)?;
        let write_key = message.get("writeKey").and_then(Value::as_str);
        let key = key.resolve(&state, write_key)?;
        let admitted = admit(&state, &key, &headers, 1)?;
        let mut batch = Batch::with_capacity(1);
        batch.push(
            0,
            segment_event(
                &admitted.submission,
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
            admitted.budget,
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
    key: SegmentKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body = read_body(
            &headers,
            body,
            Accept::SdkJson,
            state.ingest.max_batch_bytes,
        )?;
        let reader = SegmentBatchReader(state.ingest.max_batch_events);
        let request = parse_json_object_with(&body, reader)?;
        let key = key.resolve(&state, request.write_key.as_deref())?;
        check_batch_size(&state, request.batch.len)?;
        let admitted = admit(&state, &key, &headers, request.batch.len)?;
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
                    segment_event(&admitted.submission, &state, &message, None, &defaults),
                ),
                Err((field, reason)) => batch.reject(index, &field, reason),
            }
        }
        let outcome = ingest::publish(&state, &mut batch).await?;
        // Segment's `{"success": true}`, with what became of each message.
        let answer = outcome.to_json(r#""success":true,"#);
        Ok(respond_json(StatusCode::OK, answer, admitted.budget))
    };
    counted(&state, result.await)
}
