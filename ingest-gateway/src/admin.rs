//! Key administration: create, list and revoke API keys.
//!
//! Guarded by the bootstrap admin token (`--admin-token`) or a key with the
//! `admin` scope. Writes go to the keys topic, and each answer waits until
//! this gateway's own key store has the change, so a key created here works
//! here at once; other gateways and query APIs see it within about a second.

use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_runtime::keys::record::{MAX_KEY_BYTES, MIN_IMPORTED_KEY_BYTES};
use sluice_runtime::keys::{KeyLimits, KeyRecord, Scope, generate_key};
use sluice_schemas::time_format::{format_rfc3339_ms, now_ms};

use crate::auth::AdminKey;
use crate::body::{Accept, parse_json_object, read_body};
use crate::error::{ApiError, Result};
use crate::state::AppState;

/// How long an admin answer waits for the key store to show its own write.
const READ_YOUR_WRITE: Duration = Duration::from_secs(10);

/// The largest key request body (a key record is a few hundred bytes).
const MAX_ADMIN_BODY_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/keys",
            get(list_keys)
                .post(create_key)
                .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY_BYTES)),
        )
        .route("/v1/admin/keys/{key_id}", delete(revoke_key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    project_id: String,
    scopes: Vec<Scope>,
    #[serde(default)]
    label: String,
    /// An existing secret to import (e.g. a Segment write key); generated when absent.
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "limits_object")]
    limits: KeyLimits,
}

/// `limits` as an object only: serde would also read the struct from an
/// array of its fields, so `[1000, 2000]` would quietly set two limits.
fn limits_object<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<KeyLimits, D::Error> {
    let object = serde_json::Map::<String, Value>::deserialize(deserializer)?;
    KeyLimits::deserialize(Value::Object(object)).map_err(serde::de::Error::custom)
}

/// `POST /v1/admin/keys`: 201 with the new key, shown this once.
async fn create_key(
    State(state): State<AppState>,
    _: AdminKey,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = read_body(&headers, body, Accept::Json, MAX_ADMIN_BODY_BYTES)?;
    let request: NewKey = parse_json_object(&body)?;
    check_project_id(&request.project_id)?;
    if request.scopes.is_empty() {
        return Err(invalid(
            "scopes must name at least one of ingest, read, admin, webhooks",
        ));
    }
    if request.label.len() > 256 {
        return Err(invalid("label is longer than 256 bytes"));
    }
    let key = match request.key {
        Some(key) => {
            let fits = (MIN_IMPORTED_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len());
            if !fits || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(&format!(
                    "key must be {MIN_IMPORTED_KEY_BYTES} to {MAX_KEY_BYTES} bytes without spaces or control characters"
                )));
            }
            key
        }
        None => generate_key(),
    };
    let mut scopes = request.scopes;
    scopes.sort_by_key(|scope| scope.as_str());
    scopes.dedup();
    let record = KeyRecord::for_key(
        &key,
        &request.project_id,
        scopes,
        request.label,
        request.limits,
        now_ms(),
    );
    if let Some(existing) = state.keys.get(&record.key_id)
        && !existing.is_revoked()
    {
        return Err(ApiError::KeyExists(format!(
            "this key already exists (key_id {}); revoke it first or leave `key` out",
            existing.key_id
        )));
    }
    write(&state, &record).await?;
    let mut body = view(&record);
    body["key"] = Value::String(key);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    project_id: Option<String>,
}

/// `GET /v1/admin/keys[?project_id=]`: every key, without secrets.
async fn list_keys(
    State(state): State<AppState>,
    _: AdminKey,
    query: std::result::Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(query) =
        query.map_err(|rejection| ApiError::InvalidRequest(rejection.body_text()))?;
    let keys: Vec<Value> = state
        .keys
        .list(query.project_id.as_deref())
        .iter()
        .map(|record| view(record))
        .collect();
    Ok(Json(json!({"keys": keys})))
}

/// `DELETE /v1/admin/keys/{key_id}`: revokes the key everywhere within seconds.
async fn revoke_key(
    State(state): State<AppState>,
    _: AdminKey,
    Path(key_id): Path<String>,
) -> Result<Json<Value>> {
    let record = state
        .keys
        .get(&key_id)
        .ok_or_else(|| ApiError::NotFound(format!("key {key_id:?}")))?;
    if record.is_revoked() {
        return Ok(Json(view(&record)));
    }
    let mut revoked = (*record).clone();
    revoked.revoked_at_ms = Some(now_ms());
    write(&state, &revoked).await?;
    Ok(Json(view(&revoked)))
}

async fn write(state: &AppState, record: &KeyRecord) -> Result<()> {
    if let Err(error) = state.key_writer.put(record).await {
        tracing::error!(cause = %error, key_id = %record.key_id, "cannot write a key record");
        return Err(ApiError::Unavailable {
            code: "broker_unavailable",
            acknowledged: Vec::new(),
        });
    }
    if !state.keys.wait_for(record, READ_YOUR_WRITE).await {
        tracing::warn!(key_id = %record.key_id, "key written but not yet visible in this gateway's store");
    }
    tracing::info!(key_id = %record.key_id, project_id = %record.project_id, revoked = record.is_revoked(), "key record written");
    Ok(())
}

/// A record as the API shows it: everything but the digest.
fn view(record: &KeyRecord) -> Value {
    json!({
        "key_id": record.key_id,
        "project_id": record.project_id,
        "scopes": record.scopes,
        "label": record.label,
        "created_at": format_rfc3339_ms(record.created_at_ms),
        "revoked_at": record.revoked_at_ms.map(format_rfc3339_ms),
        "limits": record.limits,
    })
}

/// Project ids end up in every event and query: keep them plain. The rule
/// is the one events written straight to Kafka are held to.
fn check_project_id(project_id: &str) -> Result<()> {
    sluice_schemas::rules::project_id(project_id)
        .map_err(|reason| invalid(&format!("project_id {reason}")))
}

fn invalid(message: &str) -> ApiError {
    ApiError::InvalidRequest(message.to_owned())
}
