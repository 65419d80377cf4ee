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
            Self::Overloaded => return unavailable("overloaded", &message),
            Self::BrokerUnavailable => return unavailable("broker_unavailable", &message),
        };
        body.into_response(status)
    }
}

/// 503 with `Retry-After`: the event was not acknowledged, and sending it
/// again later is the right move.
fn unavailable(code: &'static str, message: &str) -> Response {
    let mut response = ErrorBody::new(code, format!("{message}; retry later"))
        .into_response(StatusCode::SERVICE_UNAVAILABLE);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn unacknowledged_events_ask_for_a_retry() {
        for (error, code) in [
            (ApiError::Overloaded, "overloaded"),
            (ApiError::BrokerUnavailable, "broker_unavailable"),
        ] {
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], RETRY_AFTER_SECONDS);
            assert_eq!(body_of(response).await["error"], code);
        }
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
