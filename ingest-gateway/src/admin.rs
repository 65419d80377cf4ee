//! Key administration across projects: create, list, rotate and revoke API
//! keys ([`sluice_runtime::key_admin`], shared with the query API's
//! per-project `/v1/keys`).
//!
//! Guarded by the bootstrap admin token (`--admin-token`), a key with the
//! `admin` scope, or a global admin's session. Each answer waits until this
//! gateway's own key store has the change, so a key created here works here
//! at once; other gateways and query APIs see it within about a second.

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use sluice_runtime::key_admin::{ManageError, NewKey, Rotation};

use crate::auth::AdminKey;
use crate::body::{Accept, parse_json_object, read_body};
use crate::error::{ApiError, Result};
use crate::state::AppState;

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
        .route(
            "/v1/admin/keys/{key_id}/rotate",
            post(rotate_key).layer(DefaultBodyLimit::max(MAX_ADMIN_BODY_BYTES)),
        )
}

/// `POST /v1/admin/keys`: 201 with the new key, shown this once.
async fn create_key(
    State(state): State<AppState>,
    AdminKey(by): AdminKey,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = read_body(&headers, body, Accept::Json, MAX_ADMIN_BODY_BYTES)?;
    let request: NewKey = parse_json_object(&body)?;
    let Some(project_id) = request.project_id.clone() else {
        return Err(ApiError::InvalidRequest(
            "project_id: the project the key belongs to is needed".to_owned(),
        ));
    };
    Ok(state
        .key_admin
        .create(&project_id, request, by.describe())
        .await
        .into_response())
}

/// `POST /v1/admin/keys/{key_id}/rotate`: 201 with the new key; the old one
/// works until `old_key_valid_until`.
async fn rotate_key(
    State(state): State<AppState>,
    AdminKey(by): AdminKey,
    Path(key_id): Path<String>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = read_body(&headers, body, Accept::Json, MAX_ADMIN_BODY_BYTES)?;
    let rotation: Rotation = if body.iter().all(u8::is_ascii_whitespace) {
        Rotation::default()
    } else {
        parse_json_object(&body)?
    };
    Ok(state
        .key_admin
        .rotate(None, &key_id, rotation, by.describe())
        .await
        .into_response())
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
    Ok(Json(state.key_admin.list(query.project_id.as_deref())))
}

/// `DELETE /v1/admin/keys/{key_id}`: revokes the key everywhere within seconds.
async fn revoke_key(
    State(state): State<AppState>,
    _: AdminKey,
    Path(key_id): Path<String>,
) -> std::result::Result<Json<Value>, ManageError> {
    state.key_admin.revoke(None, &key_id).await.map(Json)
}
