//! Who is asking, and what they may do: API keys ([`crate::keys`]) and
//! people who sign in, in one place that every service asks.
//!
//! A request carries one credential: `Authorization: Bearer …` (an API key,
//! a session token, or the bootstrap admin token), basic auth with a key as
//! the user name, or — for the dashboard — the `sluice_access` cookie, an
//! HttpOnly session token. [`Access::project`] turns it into a [`Grant`]: the
//! one project the request may touch, after checking the key's scopes or the
//! user's role there; [`Access::admin`] is for the views across projects.
//!
//! - [`records`]: users, sessions and key usage, kept in the access topic.
//! - [`store`]: every instance's view of that topic, and its writer.
//! - [`token`]: session tokens (JWT, HS256 under `--session-secret`).
//! - [`password`]: Argon2id password hashes.
//! - [`sessions`]: signing in, refreshing, signing out.
//! - [`usage`]: when each key was last used.
//! - `refusal`: [`AuthError`], why a request was refused, and its answer.
//!
//! Sessions are checked against the access topic on every request, so
//! signing out, a password change or a removed role takes effect on every
//! instance within about a second, not when a token expires.

pub mod password;
pub mod records;
mod refusal;
pub mod sessions;
pub mod store;
pub mod token;
pub mod usage;

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};

pub use records::{AccessRecord, KeyUsage, Role, SessionRecord, UserRecord};
pub use refusal::AuthError;
pub use store::{AccessStore, AccessWriter};
pub use token::TokenKey;
pub use usage::KeyUsageTracker;

use tokio_util::sync::CancellationToken;

use crate::auth::{is_admin_token, presented_key};
use crate::keys::{KeyRecord, KeyStore, Scope};
use crate::ops::Readiness;
use crate::settings::{ApiSettings, KafkaSettings};
use crate::supervise::Supervisor;
use sluice_schemas::time_format::{format_rfc3339_ms, now_ms};

/// The readiness check that passes once the access topic was read.
pub const READINESS_CHECK: &str = "access";
/// The session token cookie of the dashboard.
pub const ACCESS_COOKIE: &str = "sluice_access";
/// The refresh token cookie (sent to `/v1/auth` only).
pub const REFRESH_COOKIE: &str = "sluice_refresh";
/// The project a user's request is about, when it names one.
pub const PROJECT_HEADER: &str = "x-sluice-project";
/// The same, for what a browser cannot give headers to (links, WebSockets).
pub const PROJECT_COOKIE: &str = "sluice_project";
/// Sent by the dashboard's scripts on every change; a cross-site form cannot
/// send it, so a cookie alone never changes anything.
pub const CSRF_HEADER: &str = "x-sluice-csrf";

/// What a request needs in its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A key scope (for users: what their role stands for, see [`Role::allows`]).
    Scope(Scope),
    /// Create, rotate and revoke the project's keys.
    ManageKeys,
    /// Add, change and remove the project's users.
    ManageUsers,
}

impl Need {
    fn action(self) -> &'static str {
        match self {
            Need::Scope(Scope::Read) => "read data",
            Need::Scope(Scope::Ingest) => "send events (use an ingest key)",
            Need::Scope(Scope::Webhooks) => "manage webhooks",
            Need::Scope(Scope::Admin) => "administer every project",
            Need::ManageKeys => "manage keys",
            Need::ManageUsers => "manage users",
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The bootstrap `--admin-token`.
    AdminToken,
    Key(Arc<KeyRecord>),
    User {
        user: Arc<UserRecord>,
        session_id: String,
    },
}

impl Principal {
    /// Who did it, for `created_by` fields: `admin-token`, `key:ID`, `user:EMAIL`.
    pub fn describe(&self) -> String {
        match self {
            Principal::AdminToken => "admin-token".to_owned(),
            Principal::Key(key) => format!("key:{}", key.key_id),
            Principal::User { user, .. } => format!("user:{}", user.email),
        }
    }

    /// Whether this may act across projects (admin token, `admin` key, global admin).
    pub fn is_global_admin(&self) -> bool {
        match self {
            Principal::AdminToken => true,
            Principal::Key(key) => key.allows(Scope::Admin),
            Principal::User { user, .. } => user.global_admin,
        }
    }
}

/// Leave to act in one project.
#[derive(Debug, Clone)]
pub struct Grant {
    pub project_id: String,
    pub principal: Principal,
}

/// The answer to "who is asking, and may they?", shared by every service.
#[derive(Clone)]
pub struct Access {
    keys: KeyStore,
    accounts: AccessStore,
    token_key: Option<TokenKey>,
    admin_token: Arc<str>,
    usage: KeyUsageTracker,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("keys", &self.keys)
            .field("accounts", &self.accounts)
            .field("sessions", &self.token_key.is_some())
            .finish_non_exhaustive()
    }
}

impl Access {
    /// `admin_token` empty disables it; `token_key` `None` disables sessions.
    pub fn new(
        keys: KeyStore,
        accounts: AccessStore,
        token_key: Option<TokenKey>,
        admin_token: &str,
        usage: KeyUsageTracker,
    ) -> Self {
        Self {
            keys,
            accounts,
            token_key,
            admin_token: Arc::from(admin_token),
            usage,
        }
    }

    /// Tails the keys and access topics and starts writing key usage;
    /// sessions are on when `api` has a session secret (refused at startup,
    /// naming the setting, when it is too short).
    pub fn start(
        kafka: &KafkaSettings,
        api: &ApiSettings,
        readiness: &Readiness,
        supervisor: &Supervisor,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let mut token_key = api
            .session_secret()?
            .map(|secret| TokenKey::new(&secret, "--session-secret"))
            .transpose()?;
        if let Some(previous) = api.session_secret_previous() {
            token_key = Some(
                token_key
                    .ok_or_else(|| {
                        anyhow::anyhow!("--session-secret-previous needs --session-secret")
                    })?
                    .with_previous(&previous, "--session-secret-previous")?,
            );
        }
        let keys = KeyStore::tail(kafka, readiness, supervisor, shutdown.clone())?;
        let accounts = AccessStore::tail(kafka, readiness, supervisor, shutdown.clone())?;
        let usage = KeyUsageTracker::default();
        supervisor.spawn(
            "key usage",
            usage.clone().flush_until(
                accounts.clone(),
                AccessWriter::new(kafka)?,
                shutdown.clone(),
            ),
        );
        Ok(Self::new(
            keys,
            accounts,
            token_key,
            &api.admin_token,
            usage,
        ))
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    pub fn accounts(&self) -> &AccessStore {
        &self.accounts
    }

    pub fn token_key(&self) -> Option<&TokenKey> {
        self.token_key.as_ref()
    }

    pub fn is_loaded(&self) -> bool {
        self.keys.is_loaded() && self.accounts.is_loaded()
    }

    /// Who sent `parts`.
    pub fn principal(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let (credential, from_cookie) = match presented_key(&parts.headers) {
            Some(credential) => (credential, false),
            None => (
                cookie(&parts.headers, ACCESS_COOKIE)
                    .ok_or(AuthError::Missing)?
                    .to_owned(),
                true,
            ),
        };
        if from_cookie && !is_safe(&parts.method) && !parts.headers.contains_key(CSRF_HEADER) {
            return Err(AuthError::CsrfHeaderMissing);
        }
        self.principal_of(&credential)
    }

    /// Who presents `credential` (a key, a session token or the admin token).
    pub fn principal_of(&self, credential: &str) -> Result<Principal, AuthError> {
        if is_admin_token(&self.admin_token, credential) {
            return Ok(Principal::AdminToken);
        }
        if token::looks_like_token(credential) {
            return self.session_user(credential);
        }
        let key = self.keys.live(credential, now_ms())?;
        self.usage.used(&key.key_id);
        Ok(Principal::Key(key))
    }

    fn session_user(&self, token: &str) -> Result<Principal, AuthError> {
        let key = self.token_key.as_ref().ok_or(AuthError::SessionsDisabled)?;
        if !self.accounts.is_loaded() {
            return Err(AuthError::NotLoaded);
        }
        let claims = key
            .verify(token, now_ms() / 1000)
            .map_err(|error| match error {
                token::TokenError::Expired => AuthError::SessionExpired,
                token::TokenError::Invalid => AuthError::BadToken,
            })?;
        let session = self
            .accounts
            .session(&claims.sid)
            .filter(|session| session.user_id == claims.sub && session.revoked_at_ms.is_none())
            .ok_or(AuthError::SessionEnded)?;
        let user = self
            .accounts
            .user(&claims.sub)
            .filter(|user| {
                !user.is_deleted() && session.created_at_ms >= user.sessions_valid_from_ms
            })
            .ok_or(AuthError::SessionEnded)?;
        Ok(Principal::User {
            user,
            session_id: session.session_id,
        })
    }

    /// Leave for `parts` to do what `need` names in one project: a key's own
    /// project (an `admin` key, or the admin token, may name another with
    /// `X-Sluice-Project`), or the project a user names (their only one when
    /// they have one).
    pub fn project(&self, parts: &Parts, need: Need) -> Result<Grant, AuthError> {
        let principal = self.principal(parts)?;
        let named = named_project(&principal, &parts.headers);
        Self::grant(principal, named, need)
    }

    /// [`Self::project`] for a principal already known, and the project it names.
    pub fn grant(
        principal: Principal,
        named: Option<String>,
        need: Need,
    ) -> Result<Grant, AuthError> {
        let project_id = match &principal {
            Principal::AdminToken => named.ok_or(AuthError::ProjectRequired)?,
            Principal::Key(key) => {
                let allowed = match need {
                    Need::Scope(scope) => key.allows(scope),
                    Need::ManageKeys | Need::ManageUsers => key.allows(Scope::Admin),
                };
                if !allowed {
                    let scope = match need {
                        Need::Scope(scope) => scope,
                        Need::ManageKeys | Need::ManageUsers => Scope::Admin,
                    };
                    return Err(AuthError::MissingScope(scope));
                }
                match named {
                    Some(named) if key.allows(Scope::Admin) => named,
                    _ => key.project_id.clone(),
                }
            }
            Principal::User { user, .. } => {
                let project_id = match named {
                    Some(named) => named,
                    None if user.global_admin => return Err(AuthError::ProjectRequired),
                    None => match user.roles.keys().collect::<Vec<_>>().as_slice() {
                        [only] => (*only).clone(),
                        [] => return Err(AuthError::NoRole(String::new())),
                        _ => return Err(AuthError::ProjectRequired),
                    },
                };
                let role = user
                    .role_in(&project_id)
                    .ok_or_else(|| AuthError::NoRole(project_id.clone()))?;
                let allowed = match need {
                    Need::Scope(scope) => role.allows(scope),
                    Need::ManageKeys => role.may_manage_keys(),
                    Need::ManageUsers => role.may_manage_users(),
                };
                if !allowed {
                    return Err(AuthError::RoleTooLow {
                        role,
                        project: project_id,
                        action: need.action(),
                    });
                }
                project_id
            }
        };
        Ok(Grant {
            project_id,
            principal,
        })
    }

    /// Leave to act across projects: the admin token, an `admin` key, or a
    /// global admin.
    pub fn admin(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let principal = self.principal(parts)?;
        if principal.is_global_admin() {
            Ok(principal)
        } else {
            Err(match principal {
                Principal::User { .. } => AuthError::NotGlobalAdmin,
                _ => AuthError::MissingScope(Scope::Admin),
            })
        }
    }

    /// The key of a request that must bring one (ingest): `credential` must be
    /// a live key with `scope`. A session token gets 403: people do not send events.
    pub fn key_with(&self, credential: &str, scope: Scope) -> Result<Arc<KeyRecord>, AuthError> {
        match self.principal_of(credential)? {
            Principal::Key(key) if key.allows(scope) => Ok(key),
            Principal::Key(_) | Principal::AdminToken => Err(AuthError::MissingScope(scope)),
            Principal::User { .. } => Err(AuthError::SessionCannot(scope)),
        }
    }
}

/// The project a request of `principal` names: `X-Sluice-Project`, else (for
/// a person, not a key) the dashboard's `sluice_project` cookie, which a key
/// sent from the same browser (e.g. from `/docs`) must not pick up.
pub fn named_project(principal: &Principal, headers: &HeaderMap) -> Option<String> {
    let cookie = match principal {
        Principal::Key(_) => None,
        Principal::User { .. } | Principal::AdminToken => cookie(headers, PROJECT_COOKIE),
    };
    headers
        .get(PROJECT_HEADER)
        .and_then(|value| value.to_str().ok())
        .or(cookie)
        .map(str::trim)
        .filter(|project| !project.is_empty())
        .map(str::to_owned)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value.trim()))
        .filter(|value| !value.is_empty())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `at_ms` as the error messages and views show it.
pub fn format_instant(at_ms: i64) -> String {
    format_rfc3339_ms(at_ms)
}

#[cfg(test)]
mod tests;
