//! Who may ask: the key every request carries, as extractors that a handler
//! names first, so the key is checked before anything else about the
//! request (its parameters, its body) and a request without one is 401 on
//! every route.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sluice_runtime::access::AuthError;
use sluice_runtime::access::{Access, Need, named_project};
use sluice_runtime::auth::presented_key;
use sluice_runtime::clickhouse::CLICKHOUSE_CHECK;
use sluice_runtime::keys::Scope;

use crate::error::ApiError;
use crate::state::AppState;

/// The project of the request: a key's with the `read` scope, or the one a
/// signed-in user names and has a role in ([`Access::project`]). Every
/// query binds it: no request can read another project's rows. When
/// ClickHouse does not answer ([`CLICKHOUSE_CHECK`]) the request is refused
/// at once (503) instead of waiting for its time limit.
#[derive(Debug)]
pub struct ReadProject(pub String);

impl FromRequestParts<AppState> for ReadProject {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let grant = state.access.project(parts, Need::Scope(Scope::Read))?;
        if !state.readiness.passes(CLICKHOUSE_CHECK) {
            return Err(ApiError::StorageDown);
        }
        Ok(Self(grant.project_id))
    }
}

/// The project of a WebSocket's key or session (`read`): from `Authorization`,
/// `key` in the query string (browsers cannot set headers on WebSockets), or
/// the session cookie, which counts only from a page of this origin (a
/// WebSocket is not held to the same-origin policy, so another site's page
/// could otherwise open one with the user's cookie). Pushes come from the
/// live topic, so ClickHouse may be down.
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
        let principal = match in_query() {
            Some(key) if presented_key(&parts.headers).is_none() => {
                state.access.principal_of(&key)?
            }
            Some(_) => state.access.principal(parts)?,
            None => {
                if presented_key(&parts.headers).is_none() && !same_origin(&parts.headers) {
                    return Err(AuthError::CrossOrigin.into());
                }
                state.access.principal(parts)?
            }
        };
        let named = named_project(&principal, &parts.headers);
        let grant = Access::grant(principal, named, Need::Scope(Scope::Read))?;
        Ok(Self(grant.project_id))
    }
}

/// Whether the request's `Origin` (when it has one) is the host it was sent to.
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|host| host.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host))
}

/// The bootstrap admin token (`--admin-token`), a global admin, or a key with the `admin`
/// scope: the views across projects.
#[derive(Debug)]
pub struct AdminAccess;

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.access.admin(parts)?;
        if !state.readiness.passes(CLICKHOUSE_CHECK) {
            return Err(ApiError::StorageDown);
        }
        Ok(Self)
    }
}
