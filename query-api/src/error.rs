//! Every way a query can fail, and the status and body each one gets: the
//! one error body of Sluice, `{"error": CODE, "message": ..., "details": ...}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_runtime::access::sessions::SessionError;

use sluice_runtime::access::AuthError;
use sluice_runtime::http::ErrorBody;
use sluice_runtime::key_admin::ManageError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("{0}")]
    Manage(#[from] ManageError),
    #[error("{0}")]
    Conflict(String),
    #[error("parameter `{name}`: {reason}")]
    InvalidParameter { name: String, reason: String },
    #[error(
        "the answer would exceed {limit} rows; narrow the time range, the filters or the group-by"
    )]
    TooManyRows { limit: usize },
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `/v1/live` asked without a usable WebSocket handshake.
    #[error("this endpoint is a WebSocket: {reason}")]
    NotWebSocket { status: StatusCode, reason: String },
    #[error("ClickHouse query failed")]
    Storage(#[from] clickhouse::error::Error),
    /// ClickHouse does not answer its readiness probe.
    #[error("ClickHouse does not answer")]
    StorageDown,
    #[error("a stored rollup could not be decoded: {0}")]
    CorruptRollup(String),
    /// The API still waits for a dependency (`/health/ready` says which).
    #[error("the query API is starting: it waits for its dependencies (see /health/ready)")]
    Starting,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Auth(error) => error.into_response(),
            Self::Session(SessionError::Auth(error)) => error.into_response(),
            Self::Session(SessionError::Store(ref cause)) => {
                tracing::error!(cause = %format!("{cause:#}"), "cannot write to the access topic");
                retry_later(
                    ErrorBody::new("broker_unavailable", "sessions cannot be stored now; retry")
                        .into_response(StatusCode::SERVICE_UNAVAILABLE),
                )
            }
            Self::Session(ref error) => ErrorBody::new("invalid_credentials", error.to_string())
                .into_response(StatusCode::UNAUTHORIZED),
            Self::Manage(error) => error.into_response(),
            Self::Conflict(message) => {
                ErrorBody::new("conflict", message).into_response(StatusCode::CONFLICT)
            }
            Self::InvalidParameter {
                ref name,
                ref reason,
            } => ErrorBody::new("invalid_parameter", self.to_string())
                .with_details(json!({"parameter": name, "reason": reason}))
                .into_response(StatusCode::BAD_REQUEST),
            Self::TooManyRows { limit } => ErrorBody::new("result_too_large", self.to_string())
                .with_details(json!({"max_rows": limit}))
                .into_response(StatusCode::UNPROCESSABLE_ENTITY),
            Self::NotFound(_) => {
                ErrorBody::new("not_found", self.to_string()).into_response(StatusCode::NOT_FOUND)
            }
            Self::MethodNotAllowed => ErrorBody::new("method_not_allowed", self.to_string())
                .into_response(StatusCode::METHOD_NOT_ALLOWED),
            Self::NotWebSocket { status, .. } => {
                ErrorBody::new("websocket_required", self.to_string()).into_response(status)
            }
            Self::Storage(error) => {
                // The detail goes to the log, never to the client.
                tracing::error!(cause = %error, "ClickHouse query failed");
                storage_unavailable()
            }
            Self::StorageDown => storage_unavailable(),
            Self::Starting => retry_later(
                ErrorBody::new("starting", self.to_string())
                    .into_response(StatusCode::SERVICE_UNAVAILABLE),
            ),
            Self::CorruptRollup(cause) => {
                tracing::error!(%cause, "undecodable rollup row");
                ErrorBody::new("internal", "the query failed on the server")
                    .into_response(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// 503 with Retry-After: the cause is in the log and in `/health/ready`.
fn storage_unavailable() -> Response {
    retry_later(
        ErrorBody::new(
            "storage_unavailable",
            "the event store did not answer; retry later",
        )
        .into_response(StatusCode::SERVICE_UNAVAILABLE),
    )
}

fn retry_later(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
    response
}
