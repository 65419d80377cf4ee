//! The management API: webhooks and their rules, test deliveries, the
//! deliveries log and redelivery. A key with the `webhooks` scope manages
//! its own project's webhooks; the bootstrap admin token or an `admin` key
//! manages any project's (naming it). Writes go to the webhooks topic, and
//! each answer waits until this instance's store shows the write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice_runtime::access::{Access, Need, PROJECT_HEADER};
use sluice_runtime::keys::Scope;
use sluice_runtime::record_topic::{RecordStore, RecordWriter};
use sluice_schemas::rules::project_id as check_project_id;
use sluice_schemas::time_format::{DAY_MS, format_rfc3339_ms, now_ms};

use crate::batch::{self, BatchConfig};
use crate::deliveries_log::{self, DeliveryQuery};
use crate::delivery::Delivery;
use crate::dispatch::Dispatcher;
use crate::error::{ApiError, Result};
use crate::rules::{Rule, check_rules};
use crate::sender::Sender;
use crate::signing::generate_secret;
use crate::spool::Spool;
use crate::targets::TargetPolicy;
use crate::webhook::{WebhookRecord, new_webhook_id};

const READ_YOUR_WRITE: Duration = Duration::from_secs(10);
const MAX_HEADERS: usize = 20;
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_ATTEMPTS: u32 = 50;
/// Most deliveries one redelivery request sends again.
const MAX_REDELIVERIES: u32 = 10_000;
/// Headers a webhook may not set: the signature's, and the request's framing.
const RESERVED_HEADERS: [&str; 6] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
];

#[derive(Clone)]
pub struct AppState {
    /// Keys, users and the bootstrap admin token.
    pub access: Access,
    pub webhooks: RecordStore<WebhookRecord>,
    pub writer: Arc<RecordWriter<WebhookRecord>>,
    pub policy: Arc<TargetPolicy>,
    pub sender: Sender,
    pub spool: Spool,
    pub dispatcher: Dispatcher,
    pub clickhouse: clickhouse::Client,
    pub default_timeout_ms: u64,
    pub default_max_attempts: u32,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route("/v1/webhooks/{id}", get(show).patch(update).delete(remove))
        .route("/v1/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/v1/webhooks/{id}/test", post(test_delivery))
        .route("/v1/webhooks/{id}/deliveries", get(deliveries))
        .route("/v1/webhooks/{id}/redeliver", post(redeliver))
        .with_state(state)
}

/// Who asks: one project's manager (a `webhooks` key, or a developer or
/// admin of the project), or an admin of all.
#[derive(Debug)]
pub struct Manager {
    /// `None` for an admin.
    project: Option<String>,
}

impl FromRequestParts<AppState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if state.access.admin(parts).is_ok() {
            // An admin of all projects may still name one (`X-Sluice-Project`,
            // as the dashboard does), and then manages that one only.
            let named = parts
                .headers
                .get(PROJECT_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            return Ok(Self { project: named });
        }
        let grant = state.access.project(parts, Need::Scope(Scope::Webhooks))?;
        Ok(Self {
            project: Some(grant.project_id),
        })
    }
}

impl Manager {
    /// The project a new webhook belongs to: the key's, or the one an admin names.
    fn project_for(&self, named: Option<String>) -> Result<String> {
        match (&self.project, named) {
            (Some(own), None) => Ok(own.clone()),
            (Some(own), Some(named)) if *own == named => Ok(named),
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "project_id",
                "a webhooks key manages its own project only",
            )),
            (None, Some(named)) => {
                check_project_id(&named)
                    .map_err(|reason| ApiError::invalid("project_id", reason))?;
                Ok(named)
            }
            (None, None) => Err(ApiError::invalid(
                "project_id",
                "an admin must name the project",
            )),
        }
    }

    /// The webhook `id` if this manager may see it (else 404, as if absent).
    fn webhook(&self, state: &AppState, id: &str) -> Result<Arc<WebhookRecord>> {
        state
            .webhooks
            .get(id)
            .filter(|webhook| webhook.is_live())
            .filter(|webhook| {
                self.project
                    .as_ref()
                    .is_none_or(|p| *p == webhook.project_id)
            })
            .ok_or_else(|| ApiError::NotFound(id.to_owned()))
    }
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T> {
    sluice_runtime::http::json_object(body).map_err(ApiError::InvalidJson)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFields {
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    rules: Option<Vec<Rule>>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    enabled: Option<bool>,
    /// `{"max_events": N, "max_wait_ms": T}` turns batch mode on, `null`
    /// turns it off; absent leaves it as it is.
    #[serde(default, deserialize_with = "present")]
    batch: Option<Option<Value>>,
}

/// A field that may be set to `null`: `Some(None)`, unlike absent (`None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<Value>>, D::Error> {
    Option::<Value>::deserialize(deserializer).map(Some)
}

/// Applies and checks `fields` on `webhook`.
async fn apply_fields(
    state: &AppState,
    webhook: &mut WebhookRecord,
    fields: WebhookFields,
) -> Result<()> {
    if let Some(url) = fields.url {
        state
            .policy
            .check(&url)
            .await
            .map_err(|reason| ApiError::invalid("url", reason))?;
        webhook.url = url;
    }
    if let Some(description) = fields.description {
        if description.len() > 1024 {
            return Err(ApiError::invalid(
                "description",
                "is longer than 1024 bytes",
            ));
        }
        webhook.description = description;
    }
    if let Some(rules) = fields.rules {
        check_rules(&rules).map_err(|error| ApiError::invalid(error.field, error.reason))?;
        webhook.rules = rules;
    }
    if let Some(headers) = fields.headers {
        check_headers(&headers)?;
        webhook.headers = headers;
    }
    if let Some(timeout_ms) = fields.timeout_ms {
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(ApiError::invalid(
                "timeout_ms",
                format!("must be 1 to {MAX_TIMEOUT_MS} milliseconds"),
            ));
        }
        webhook.timeout_ms = timeout_ms;
    }
    if let Some(max_attempts) = fields.max_attempts {
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(ApiError::invalid(
                "max_attempts",
                format!("must be 1 to {MAX_ATTEMPTS}"),
            ));
        }
        webhook.max_attempts = max_attempts;
    }
    if let Some(enabled) = fields.enabled {
        webhook.enabled = enabled;
    }
    if let Some(batch) = fields.batch {
        webhook.batch = batch.map(check_batch).transpose()?;
    }
    Ok(())
}

/// A `batch` setting, read and checked here so that a bad one is refused
/// naming its field.
fn check_batch(value: Value) -> Result<BatchConfig> {
    let batch: BatchConfig = serde_json::from_value(value).map_err(|error| {
        ApiError::invalid(
            "batch",
            format!("must be {{\"max_events\": N, \"max_wait_ms\": T}}: {error}"),
        )
    })?;
    batch
        .check()
        .map_err(|(field, reason)| ApiError::invalid(field, reason))?;
    Ok(batch)
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<()> {
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::invalid(
            "headers",
            format!("holds more than {MAX_HEADERS} headers"),
        ));
    }
    for (name, value) in headers {
        let field = format!("headers.{name}");
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(ApiError::invalid(field, "is set by Sluice"));
        }
        if reqwest::header::HeaderName::try_from(name.as_str()).is_err() {
            return Err(ApiError::invalid(field, "is not a valid header name"));
        }
        if value.len() > 4096 || reqwest::header::HeaderValue::try_from(value.as_str()).is_err() {
            return Err(ApiError::invalid(
                field,
                "must be at most 4096 bytes of visible ASCII",
            ));
        }
    }
    Ok(())
}

/// A webhook as the API shows it: no secret, header names only (their
/// values may be credentials), and the circuit's state.
fn view(state: &AppState, webhook: &WebhookRecord) -> Value {
    json!({
        "webhook_id": webhook.webhook_id,
        "project_id": webhook.project_id,
        "url": webhook.url,
        "description": webhook.description,
        "rules": webhook.rules,
        "headers": webhook.headers.keys().collect::<Vec<_>>(),
        "timeout_ms": webhook.timeout_ms,
        "max_attempts": webhook.max_attempts,
        "enabled": webhook.enabled,
        "batch": webhook.batch,
        "circuit": state.dispatcher.circuit(&webhook.webhook_id).as_str(),
        "previous_secret_valid_until": webhook.previous_secret_until_ms.map(format_rfc3339_ms),
        "created_at": format_rfc3339_ms(webhook.created_at_ms),
        "updated_at": format_rfc3339_ms(webhook.updated_at_ms),
    })
}

async fn save(state: &AppState, webhook: &WebhookRecord) -> Result<()> {
    state
        .writer
        .put(webhook)
        .await
        .map_err(|error| ApiError::Unavailable(format!("{error:#}")))?;
    if !state.webhooks.wait_for(webhook, READ_YOUR_WRITE).await {
        tracing::warn!(webhook_id = %webhook.webhook_id, "the webhook store has not shown the write yet");
    }
    Ok(())
}

/// `POST /v1/webhooks`: 201 with the webhook and its secret, shown this once.
async fn create(State(state): State<AppState>, manager: Manager, body: Bytes) -> Result<Response> {
    let mut fields: WebhookFields = parse(&body)?;
    let project_id = manager.project_for(fields.project_id.take())?;
    if fields.url.is_none() {
        return Err(ApiError::invalid("url", "is required"));
    }
    if fields.rules.is_none() {
        return Err(ApiError::invalid(
            "rules",
            "is required (`[{}]` matches every event)",
        ));
    }
    let now = now_ms();
    let secret = generate_secret();
    let mut webhook = WebhookRecord {
        webhook_id: new_webhook_id(),
        project_id,
        url: String::new(),
        description: String::new(),
        rules: Vec::new(),
        headers: BTreeMap::new(),
        timeout_ms: state.default_timeout_ms,
        max_attempts: state.default_max_attempts,
        enabled: true,
        batch: None,
        secret: secret.clone(),
        previous_secret: None,
        previous_secret_until_ms: None,
        created_at_ms: now,
        updated_at_ms: now,
        deleted_at_ms: None,
    };
    apply_fields(&state, &mut webhook, fields).await?;
    save(&state, &webhook).await?;
    let mut body = view(&state, &webhook);
    body["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    project_id: Option<String>,
}

/// `GET /v1/webhooks[?project_id=]`
async fn list(
    State(state): State<AppState>,
    manager: Manager,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let project = manager.project.or(query.project_id);
    let mut webhooks: Vec<_> = state
        .webhooks
        .all()
        .into_iter()
        .filter(|webhook| webhook.is_live())
        .filter(|webhook| project.as_ref().is_none_or(|p| *p == webhook.project_id))
        .collect();
    webhooks
        .sort_by(|a, b| (a.created_at_ms, &a.webhook_id).cmp(&(b.created_at_ms, &b.webhook_id)));
    let shown: Vec<Value> = webhooks
        .iter()
        .map(|webhook| view(&state, webhook))
        .collect();
    Ok(Json(json!({ "webhooks": shown })))
}

async fn show(
    State(state): State<AppState>,
    manager: Manager,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let webhook = manager.webhook(&state, &id)?;
    Ok(Json(view(&state, &webhook)))
}

/// `PATCH /v1/webhooks/{id}`: the fields given change.
async fn update(
    State(state): State<AppState>,
    manager: Manager,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let mut webhook = (*manager.webhook(&state, &id)?).clone();
    let fields: WebhookFields = parse(&body)?;
    if fields
        .project_id
        .as_ref()
        .is_some_and(|p| *p != webhook.project_id)
    {
        return Err(ApiError::invalid("project_id", "cannot change"));
    }
    apply_fields(&state, &mut webhook, fields).await?;
    webhook.updated_at_ms = now_ms();
    save(&state, &webhook).await?;
    Ok(Json(view(&state, &webhook)))
}

/// `DELETE /v1/webhooks/{id}`: 204; deliveries in flight are dropped.
async fn remove(
    State(state): State<AppState>,
    manager: Manager,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let mut webhook = (*manager.webhook(&state, &id)?).clone();
    let now = now_ms();
    webhook.deleted_at_ms = Some(now);
    webhook.updated_at_ms = now;
    save(&state, &webhook).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotation {
    /// How long the old secret still signs, in milliseconds (default a day).
    #[serde(default)]
    grace_ms: Option<i64>,
}

/// `POST /v1/webhooks/{id}/rotate-secret`: a new secret, shown this once;
/// the old one keeps signing alongside it for `grace_ms`.
async fn rotate_secret(
    State(state): State<AppState>,
    manager: Manager,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let rotation: Rotation = if body.is_empty() {
        Rotation::default()
    } else {
        parse(&body)?
    };
    let grace_ms = rotation.grace_ms.unwrap_or(DAY_MS);
    if !(0..=30 * DAY_MS).contains(&grace_ms) {
        return Err(ApiError::invalid(
            "grace_ms",
            "must be 0 to 30 days in milliseconds",
        ));
    }
    let mut webhook = (*manager.webhook(&state, &id)?).clone();
    let now = now_ms();
    let secret = generate_secret();
    webhook.previous_secret = Some(std::mem::replace(&mut webhook.secret, secret.clone()));
    webhook.previous_secret_until_ms = Some(now + grace_ms);
    webhook.updated_at_ms = now;
    save(&state, &webhook).await?;
    let mut body = view(&state, &webhook);
    body["secret"] = Value::String(secret);
    Ok(Json(body))
}

/// `POST /v1/webhooks/{id}/test`: one signed `test` delivery now, outside
/// the queues and retries; answers with what the receiver said.
async fn test_delivery(
    State(state): State<AppState>,
    manager: Manager,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let webhook = manager.webhook(&state, &id)?;
    let now = now_ms();
    let event_id = format!("test-{}", uuid::Uuid::now_v7());
    let mut event =
        sluice_schemas::Event::minimal(&event_id, &webhook.project_id, "sluice.test", now, now);
    event.source = Some("sluice".into());
    let mut delivery = Delivery::of_event(&webhook.webhook_id, &event, now);
    if webhook.batch.is_some() {
        // The body the receiver gets in batch mode: a batch, here of one.
        delivery = Delivery::batch_of(&webhook.webhook_id, &[delivery], now);
    }
    let attempted = state.sender.attempt(&webhook, &delivery).await;
    let error = match &attempted.outcome {
        crate::backoff::Outcome::NoAnswer { cause } => Some(cause.clone()),
        _ => None,
    };
    Ok(Json(json!({
        "delivery_id": delivery.delivery_id,
        "delivered": matches!(attempted.outcome, crate::backoff::Outcome::Delivered { .. }),
        "response_status": attempted.outcome.status(),
        "latency_ms": attempted.latency.as_millis() as u64,
        "error": error,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    status: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/webhooks/{id}/deliveries?status=&from=&to=&cursor=&limit=`:
/// newest first; `next_cursor` continues the listing. `from` and `to` are
/// epoch milliseconds (default the last day).
async fn deliveries(
    State(state): State<AppState>,
    manager: Manager,
    Path(id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Value>> {
    let webhook = manager.webhook(&state, &id)?;
    if let Some(status) = &query.status
        && !["delivered", "retrying", "dead", "refused"].contains(&status.as_str())
    {
        return Err(ApiError::invalid(
            "status",
            "must be delivered, retrying, dead or refused",
        ));
    }
    let to_ms = query.to.unwrap_or_else(|| now_ms() + 1);
    let from_ms = query.from.unwrap_or(to_ms - DAY_MS).max(0);
    if from_ms >= to_ms {
        return Err(ApiError::invalid("from", "must be before `to`"));
    }
    let after = match &query.cursor {
        None => None,
        Some(cursor) => Some(
            cursor
                .split_once(':')
                .and_then(|(at, id)| Some((at.parse::<u64>().ok()?, id.to_owned())))
                .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API gave"))?,
        ),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let listing = DeliveryQuery {
        status: query.status,
        from_ms,
        to_ms,
        after,
        limit,
    };
    let rows = deliveries_log::list(
        &state.clickhouse,
        &webhook.project_id,
        &webhook.webhook_id,
        &listing,
    )
    .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| {
            rows.last()
                .map(|row| format!("{}:{}", row.last_at_ms, row.delivery_id))
        })
        .flatten();
    let shown: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "delivery_id": row.delivery_id,
                "event_id": row.event_id,
                "status": row.status,
                "attempts": row.attempts,
                "response_status": row.response_status,
                "latency_ms": row.latency_ms,
                "error": row.error,
                "first_attempt_at": format_rfc3339_ms(row.first_at_ms as i64),
                "last_attempt_at": format_rfc3339_ms(row.last_at_ms as i64),
            })
        })
        .collect();
    Ok(Json(
        json!({"deliveries": shown, "next_cursor": next_cursor}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverRequest {
    delivery_id: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    /// Only deliveries whose latest status is this (e.g. `dead`).
    status: Option<String>,
}

/// `POST /v1/webhooks/{id}/redeliver`: one delivery (`delivery_id`) or every
/// one in `[from, to)`, sent again from a first attempt, under the same
/// `webhook-id`. 202 once they are in the retry topic.
async fn redeliver(
    State(state): State<AppState>,
    manager: Manager,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let webhook = manager.webhook(&state, &id)?;
    let request: RedeliverRequest = parse(&body)?;
    let now = now_ms();
    let range = match (&request.delivery_id, request.from, request.to) {
        (Some(_), _, _) => (0, now + 1),
        (None, Some(from), to) => (from, to.unwrap_or(now + 1)),
        (None, None, _) => {
            return Err(ApiError::invalid(
                "delivery_id",
                "name a delivery, or a time range with `from` (and `to`)",
            ));
        }
    };
    let found = deliveries_log::redeliverable(
        &state.clickhouse,
        &webhook.project_id,
        &webhook.webhook_id,
        request.delivery_id.as_deref(),
        range,
        request.status.as_deref(),
        MAX_REDELIVERIES,
    )
    .await?;
    if let Some(delivery_id) = &request.delivery_id
        && found.is_empty()
    {
        return Err(ApiError::invalid(
            "delivery_id",
            format!("no delivery {delivery_id} of this webhook"),
        ));
    }
    for row in &found {
        let delivery = Delivery {
            delivery_id: row.delivery_id.clone(),
            webhook_id: webhook.webhook_id.clone(),
            project_id: webhook.project_id.clone(),
            event_id: row.event_id.clone(),
            attempts: 0,
            not_before_ms: now,
            received_at_ms: now,
            members: batch::members_of_body(&webhook.webhook_id, &row.body, now),
            body: row.body.clone(),
        };
        if !state.spool.park(&delivery).await {
            return Err(ApiError::Unavailable("shutting down".into()));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"redelivered": found.len()})),
    )
        .into_response())
}
