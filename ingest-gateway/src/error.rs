//! Every way a request can fail, and the status and body each one gets.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use sluice_runtime::access::AuthError;
use sluice_runtime::http::ErrorBody;
use sluice_schemas::FieldError;

use crate::event_results::{Acknowledged, Rejected, field_errors_json};
use crate::rate_limit::{Budget, Limited};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Auth(AuthError),
    /// The route's media types, in words.
    #[error("unsupported Content-Type")]
    UnsupportedMediaType { allowed: &'static str },
    #[error("unsupported Content-Encoding {0:?}; send gzip or none")]
    UnsupportedEncoding(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("a batch holds at most {0} events")]
    TooManyEvents(usize),
    #[error("cannot read the request body: {0}")]
    UnreadableBody(String),
    #[error("request body is not valid gzip: {0}")]
    InvalidGzip(String),
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// An imported key that is already there and not revoked.
    #[error("{0}")]
    KeyExists(String),
    #[error("the event is invalid")]
    InvalidEvent(Vec<FieldError>),
    #[error("no event of the batch is valid")]
    InvalidBatch(Vec<Rejected>),
    #[error("rate limit exceeded")]
    RateLimited(Limited),
    #[error("not found")]
    NotFound(String),
    #[error("{0} does not take this method")]
    MethodNotAllowed(String),
    /// A fault of the gateway itself; the detail goes to the log, not to
    /// the client.
    #[error("internal error")]
    Internal,
    /// Some or all events were not acknowledged; `code` says why.
    #[error("the broker did not acknowledge every event")]
    Unavailable {
        code: &'static str,
        acknowledged: Vec<Acknowledged<'static>>,
    },
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: u64 = 1;

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self::Auth(error)
    }
}

impl ApiError {
    /// The reason label of the events metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Auth(error) => error.status_and_code().1,
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::TooManyEvents(_) => "too_many_events",
            Self::UnreadableBody(_) => "unreadable_body",
            Self::InvalidGzip(_) => "invalid_gzip",
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidRequest(_) => "invalid_request",
            Self::KeyExists(_) => "key_exists",
            Self::InvalidEvent(_) | Self::InvalidBatch(_) => "invalid_event",
            Self::RateLimited(_) => "rate_limited",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Internal => "internal",
            Self::Unavailable { code, .. } => code,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let code = self.reason();
        let (status, body) = match self {
            Self::Auth(error) => return error.into_response(),
            Self::UnsupportedMediaType { allowed } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorBody::new(code, format!("Content-Type must be {allowed}")),
            ),
            Self::UnsupportedEncoding(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorBody::new(code, message),
            ),
            Self::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new(code, message).with_details(json!({"limit_bytes": limit})),
            ),
            Self::TooManyEvents(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new(code, message).with_details(json!({"limit_events": limit})),
            ),
            Self::UnreadableBody(_)
            | Self::InvalidGzip(_)
            | Self::InvalidJson(_)
            | Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, ErrorBody::new(code, message)),
            Self::KeyExists(_) => (StatusCode::CONFLICT, ErrorBody::new(code, message)),
            Self::InvalidEvent(errors) => {
                let summary = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                (
                    StatusCode::BAD_REQUEST,
                    ErrorBody::new(code, format!("the event is invalid: {summary}"))
                        .with_details(json!({"fields": field_errors_json(&errors)})),
                )
            }
            Self::InvalidBatch(rejected) => (
                StatusCode::BAD_REQUEST,
                ErrorBody::new("invalid_batch", message)
                    .with_details(json!({"accepted": [], "rejected": rejected})),
            ),
            Self::RateLimited(limited) => return rate_limited(&limited),
            Self::NotFound(what) => (
                StatusCode::NOT_FOUND,
                ErrorBody::new(code, format!("{what} not found")),
            ),
            Self::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorBody::new(code, message),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorBody::new(code, message),
            ),
            Self::Unavailable { code, acknowledged } => {
                let reason = match code {
                    "overloaded" => "the gateway is at capacity",
                    _ => "the broker did not acknowledge every event",
                };
                let body = ErrorBody::new(
                    code,
                    format!(
                        "{reason}; retry the request later (events that carry an event_id count once)"
                    ),
                )
                .with_details(json!({"acknowledged": acknowledged}));
                let mut response = body.into_response(StatusCode::SERVICE_UNAVAILABLE);
                retry_after(response.headers_mut(), RETRY_AFTER_SECONDS);
                return response;
            }
        };
        body.into_response(status)
    }
}

fn rate_limited(limited: &Limited) -> Response {
    let (status, message) = if limited.never {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the batch holds more events than this key's event burst; send smaller batches"
                .to_owned(),
        )
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} rate limit exceeded; retry in {} s",
                limited.limit, limited.retry_after_seconds
            ),
        )
    };
    let mut response = ErrorBody::new("rate_limited", message)
        .with_details(json!({"limit": limited.limit}))
        .into_response(status);
    let headers = response.headers_mut();
    if !limited.never {
        retry_after(headers, limited.retry_after_seconds);
    }
    if let Some(budget) = limited.budget {
        set_budget_headers(headers, budget);
    }
    response
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` (IETF httpapi draft).
pub fn set_budget_headers(headers: &mut HeaderMap, budget: Budget) {
    for (name, value) in [
        ("ratelimit-limit", u64::from(budget.limit)),
        ("ratelimit-remaining", u64::from(budget.remaining)),
        ("ratelimit-reset", budget.reset_seconds),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

fn retry_after(headers: &mut HeaderMap, seconds: u64) {
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::keys::Scope;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn unacknowledged_events_ask_for_a_retry_and_say_which_landed() {
        for code in ["overloaded", "broker_unavailable"] {
            let response = ApiError::Unavailable {
                code,
                acknowledged: vec![Acknowledged {
                    index: 1,
                    event_id: "e1".into(),
                }],
            }
            .into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
            let body = body_of(response).await;
            assert_eq!(body["error"], code);
            assert_eq!(body["details"]["acknowledged"][0]["event_id"], "e1");
        }
    }

    #[tokio::test]
    async fn auth_failures_map_to_401_403_and_503() {
        for (error, status) in [
            (AuthError::Missing, StatusCode::UNAUTHORIZED),
            (AuthError::Revoked, StatusCode::UNAUTHORIZED),
            (
                AuthError::MissingScope(Scope::Ingest),
                StatusCode::FORBIDDEN,
            ),
            (AuthError::NotLoaded, StatusCode::SERVICE_UNAVAILABLE),
        ] {
            let response = ApiError::from(error.clone()).into_response();
            assert_eq!(response.status(), status, "{error}");
            assert_eq!(body_of(response).await["message"], error.to_string());
        }
    }

    #[tokio::test]
    async fn rate_limits_answer_429_with_headers() {
        let response = ApiError::RateLimited(Limited {
            limit: "requests",
            retry_after_seconds: 2,
            never: false,
            budget: Some(Budget {
                limit: 10,
                remaining: 0,
                reset_seconds: 5,
            }),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()["ratelimit-limit"], "10");
        assert_eq!(response.headers()["ratelimit-remaining"], "0");
        assert_eq!(response.headers()["ratelimit-reset"], "5");
    }

    #[tokio::test]
    async fn invalid_events_list_every_field() {
        let response = ApiError::InvalidEvent(vec![
            FieldError {
                field: "type".into(),
                reason: "is required".into(),
            },
            FieldError {
                field: "tags[0]".into(),
                reason: "must be a string, not a number".into(),
            },
        ])
        .into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_of(response).await;
        assert_eq!(body["details"]["fields"][1]["field"], "tags[0]");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("type: is required")
        );
    }
}
