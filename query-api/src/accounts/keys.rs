//! `/v1/keys`: one project's API keys, for its developers and admins (and
//! `admin` keys). The logic is [`sluice_runtime::key_admin`], shared with
//! the gateway's `/v1/admin/keys`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::Value;
use sluice_runtime::key_admin::{NewKey, Rotation};
use sluice_runtime::keys::Scope;

use super::KeysManager;
use super::users::{optional_body, parse_body};
use crate::error::{ApiError, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/keys", get(list).post(create))
        .route("/v1/keys/{key_id}", delete(revoke))
        .route("/v1/keys/{key_id}/rotate", post(rotate))
}

/// `GET /v1/keys`: the project's keys, without secrets.
async fn list(State(state): State<AppState>, KeysManager(grant): KeysManager) -> Json<Value> {
    Json(state.key_admin.list(Some(&grant.project_id)))
}

/// `POST /v1/keys`: 201 with the new key, shown this once.
async fn create(
    State(state): State<AppState>,
    KeysManager(grant): KeysManager,
    body: Bytes,
) -> Result<Response> {
    let request: NewKey = parse_body(&body)?;
    if request
        .project_id
        .as_ref()
        .is_some_and(|named| *named != grant.project_id)
    {
        return Err(ApiError::invalid(
            "project_id",
            format!("keys made here belong to project {}", grant.project_id),
        ));
    }
    // An `admin` key acts in every project: only who already may can make one.
    if request.scopes.contains(&Scope::Admin) && !grant.principal.is_global_admin() {
        return Err(ApiError::invalid(
            "scopes",
            "only a global admin can make a key with the `admin` scope",
        ));
    }
    Ok(state
        .key_admin
        .create(&grant.project_id, request, grant.principal.describe())
        .await
        .into_response())
}

/// `POST /v1/keys/{key_id}/rotate`: 201 with the new key; the old one works
/// until `old_key_valid_until` (at once when absent).
async fn rotate(
    State(state): State<AppState>,
    KeysManager(grant): KeysManager,
    Path(key_id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let rotation: Rotation = optional_body(&body)?;
    Ok(state
        .key_admin
        .rotate(
            Some(&grant.project_id),
            &key_id,
            rotation,
            grant.principal.describe(),
        )
        .await
        .into_response())
}

/// `DELETE /v1/keys/{key_id}`: revokes the key everywhere within seconds.
async fn revoke(
    State(state): State<AppState>,
    KeysManager(grant): KeysManager,
    Path(key_id): Path<String>,
) -> Response {
    state
        .key_admin
        .revoke(Some(&grant.project_id), &key_id)
        .await
        .map(Json)
        .into_response()
}
