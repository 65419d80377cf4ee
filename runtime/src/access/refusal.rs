//! Why a request was refused, and the answer that says so: one error for
//! keys, sessions and roles, shared by every service.

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Role;
use crate::http::ErrorBody;
use crate::keys::{KeyRefusal, Scope};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send `Authorization: Bearer KEY` (an API key or a session token)")]
    Missing,
    #[error("unknown API key")]
    Unknown,
    #[error("this API key was revoked")]
    Revoked,
    #[error("this API key expired at {0}")]
    Expired(String),
    #[error("this API key lacks the `{0}` scope")]
    MissingScope(Scope),
    #[error("the key store is still loading")]
    NotLoaded,
    #[error("the session token expired: refresh it (POST /v1/auth/refresh) or sign in again")]
    SessionExpired,
    #[error("this session has ended (signed out, password changed or user removed): sign in again")]
    SessionEnded,
    #[error("not a valid session token")]
    BadToken,
    #[error("user sessions are not enabled here: the operator has not set --session-secret")]
    SessionsDisabled,
    #[error("your role ({role}) in project `{project}` cannot {action}")]
    RoleTooLow {
        role: Role,
        project: String,
        action: &'static str,
    },
    #[error(
        "this needs the global admin role (or the admin token, or a key with the `admin` scope)"
    )]
    NotGlobalAdmin,
    #[error("a person's session cannot send events: use a key with the `{0}` scope")]
    SessionCannot(Scope),
    #[error("you have no role in project `{0}`")]
    NoRole(String),
    #[error("choose a project: send the `X-Sluice-Project` header (you have roles in several)")]
    ProjectRequired,
    #[error("a change made with the session cookie must send the `X-Sluice-Csrf: 1` header")]
    CsrfHeaderMissing,
    #[error("the session cookie counts only from a page of this origin")]
    CrossOrigin,
}

impl AuthError {
    /// The status and the stable error code of the answer.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AuthError::Missing | AuthError::Unknown | AuthError::Revoked | AuthError::BadToken => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            AuthError::Expired(_) => (StatusCode::UNAUTHORIZED, "key_expired"),
            AuthError::SessionExpired => (StatusCode::UNAUTHORIZED, "session_expired"),
            AuthError::SessionEnded => (StatusCode::UNAUTHORIZED, "session_ended"),
            AuthError::SessionsDisabled => (StatusCode::UNAUTHORIZED, "sessions_disabled"),
            AuthError::MissingScope(_)
            | AuthError::RoleTooLow { .. }
            | AuthError::NoRole(_)
            | AuthError::NotGlobalAdmin
            | AuthError::SessionCannot(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AuthError::CsrfHeaderMissing | AuthError::CrossOrigin => {
                (StatusCode::FORBIDDEN, "csrf_header_missing")
            }
            AuthError::ProjectRequired => (StatusCode::BAD_REQUEST, "project_required"),
            AuthError::NotLoaded => (StatusCode::SERVICE_UNAVAILABLE, "keys_loading"),
        }
    }

    /// Whether this is a guess at a credential (counted against the
    /// client's failed-auth limit where a service has one).
    pub fn is_bad_credential(&self) -> bool {
        matches!(
            self,
            AuthError::Missing | AuthError::Unknown | AuthError::Revoked | AuthError::BadToken
        )
    }
}

impl From<KeyRefusal> for AuthError {
    fn from(refusal: KeyRefusal) -> Self {
        match refusal {
            KeyRefusal::NotLoaded => AuthError::NotLoaded,
            KeyRefusal::Missing => AuthError::Missing,
            KeyRefusal::Unknown => AuthError::Unknown,
            KeyRefusal::Revoked => AuthError::Revoked,
            KeyRefusal::Expired(at) => AuthError::Expired(at),
        }
    }
}

/// The answer to a refused credential: 401 (missing, unknown, revoked,
/// expired), 403 (a scope or role falls short), 400 (which project?), or 503
/// while the stores are still loading.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = ErrorBody::new(code, self.to_string()).into_response(status);
        let headers = response.headers_mut();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sluice\""),
                );
            }
            _ => {}
        }
        response
    }
}
