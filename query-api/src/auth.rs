//! Who may ask: the key every request carries, as extractors that a handler
//! names first, so the key is checked before anything else about the
//! request (its parameters, its body) and a request without one is 401 on
//! every route.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sluice_runtime::auth::{is_admin_token, presented_key};
use sluice_runtime::clickhouse::CLICKHOUSE_CHECK;
use sluice_runtime::keys::{AuthError, Scope};

use crate::error::ApiError;
use crate::state::AppState;

/// The project of the request's key, which needs the `read` scope. Every
/// query binds it: no request can read another project's rows. When
/// ClickHouse does not answer ([`CLICKHOUSE_CHECK`]) the request is refused
/// at once (503) instead of waiting for its time limit.
#[derive(Debug)]
pub struct ReadProject(pub String);

impl FromRequestParts<AppState> for ReadProject {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = presented_key(&parts.headers).unwrap_or_default();
        let key = state.keys.authorize(&presented, Scope::Read)?;
        if !state.readiness.passes(CLICKHOUSE_CHECK) {
            return Err(ApiError::StorageDown);
        }
        Ok(Self(key.project_id.clone()))
    }
}

/// The project of a WebSocket's key (`read` scope): from `Authorization`,
/// or `key` in the query string for browsers, which cannot set headers on
/// WebSockets. Pushes come from the live topic, so ClickHouse may be down.
#[derive(Debug)]
pub struct LiveProject(pub String);

impl FromRequestParts<AppState> for LiveProject {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let in_query = || {
            serde_urlencoded::from_str::<Vec<(String, String)>>(parts.uri.query()?)
                .ok()?
                .into_iter()
                .find_map(|(name, value)| (name == "key").then_some(value))
        };
        let presented = presented_key(&parts.headers)
            .or_else(in_query)
            .ok_or(ApiError::Auth(AuthError::Missing))?;
        let key = state.keys.authorize(&presented, Scope::Read)?;
        Ok(Self(key.project_id.clone()))
    }
}

/// The bootstrap admin token (`--admin-token`) or a key with the `admin`
/// scope: the views across projects.
#[derive(Debug)]
pub struct AdminAccess;

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = presented_key(&parts.headers).unwrap_or_default();
        if !is_admin_token(&state.admin_token, &presented) {
            state.keys.authorize(&presented, Scope::Admin)?;
        }
        if !state.readiness.passes(CLICKHOUSE_CHECK) {
            return Err(ApiError::StorageDown);
        }
        Ok(Self)
    }
}
