//! People and keys, managed from the query API (where the dashboard lives):
//!
//! - [`sessions`]: `/v1/auth/*`: sign in, refresh, sign out, who am I, change password.
//! - [`users`]: `/v1/users` (a project's users, for its admins) and
//!   `/v1/admin/users` (every user, for global admins and the bootstrap token).
//! - [`keys`]: `/v1/keys`: a project's API keys, for its developers and admins.
//! - [`login_limits`]: sign-in attempts per client IP and per account.
//! - [`webhooks`]: `/v1/webhooks/*`, forwarded to the destinations service.
//!
//! The records live in Kafka ([`sluice_runtime::access`]), not ClickHouse:
//! signing in works while ClickHouse is down, on every instance.

pub mod keys;
pub mod login_limits;
pub mod sessions;
pub mod users;
pub mod webhooks;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sluice_runtime::access::{Access, Grant, Need, Principal};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(sessions::router())
        .merge(users::router())
        .merge(keys::router())
        .merge(webhooks::router())
}

/// Leave to manage the keys of one project (developers, admins, `admin` keys).
#[derive(Debug)]
pub struct KeysManager(pub Grant);

impl FromRequestParts<AppState> for KeysManager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(state.access.project(parts, Need::ManageKeys)?))
    }
}

/// Leave to manage the users of one project (its admins, global admins).
#[derive(Debug)]
pub struct UsersManager(pub Grant);

impl FromRequestParts<AppState> for UsersManager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(state.access.project(parts, Need::ManageUsers)?))
    }
}

/// Leave to act across projects ([`Access::admin`]).
#[derive(Debug)]
pub struct GlobalAdmin(pub Principal);

impl FromRequestParts<AppState> for GlobalAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(state.access.admin(parts)?))
    }
}

/// Whoever presents a valid credential (a key, a session, the admin token).
#[derive(Debug)]
pub struct Anyone(pub Principal);

impl FromRequestParts<AppState> for Anyone {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(Access::principal(&state.access, parts)?))
    }
}
