//! Every way a request can fail, and the status and body each one gets.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_runtime::http::ErrorBody;
use sluice_schemas::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown API key")]
    Unauthorized,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("cannot read the request body: {0}")]
    UnreadableBody(String),
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the event is invalid")]
    InvalidEvent(Vec<FieldError>),
    #[error("the gateway is at capacity")]
    Overloaded,
    #[error("the broker did not acknowledge the event")]
    BrokerUnavailable,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, body) = match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ErrorBody::new(
                    "unauthorized",
                    "send a valid API key as `Authorization: Bearer KEY`",
                ),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorBody::new("unsupported_media_type", message),
            ),
            Self::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new("payload_too_large", message)
                    .with_details(json!({"limit_bytes": limit})),
            ),
            Self::UnreadableBody(_) => (
                StatusCode::BAD_REQUEST,
                ErrorBody::new("unreadable_body", message),
            ),
            Self::InvalidJson(_) => (
                StatusCode::BAD_REQUEST,
                ErrorBody::new("invalid_json", message),
            ),
            Self::InvalidEvent(errors) => {
                let summary = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                let fields: Vec<_> = errors
                    .iter()
                    .map(|e| json!({"field": e.field, "reason": e.reason}))
                    .collect();
                (
                    StatusCode::BAD_REQUEST,
                    ErrorBody::new("invalid_event", format!("the event is invalid: {summary}"))
                        .with_details(json!({"fields": fields})),
                )
            }
            Self::Overloaded | Self::BrokerUnavailable => {
                let code = if matches!(self, Self::Overloaded) {
                    "overloaded"
                } else {
                    "broker_unavailable"
                };
                let mut response = ErrorBody::new(code, format!("{message}; retry later"))
                    .into_response(StatusCode::SERVICE_UNAVAILABLE);
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
                return response;
            }
        };
        body.into_response(status)
    }
}
