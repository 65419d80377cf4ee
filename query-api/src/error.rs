//! Every way a query can fail, and the status and body each one gets.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_runtime::auth::refusal;
use sluice_runtime::http::ErrorBody;
use sluice_runtime::keys::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("query parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error("ClickHouse query failed")]
    Storage(#[from] clickhouse::error::Error),
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Auth(error) => refusal(&error),
            Self::InvalidParameter { name, ref reason } => {
                ErrorBody::new("invalid_parameter", self.to_string())
                    .with_details(json!({"parameter": name, "reason": reason}))
                    .into_response(StatusCode::BAD_REQUEST)
            }
            Self::Storage(error) => {
                // The detail goes to the log, never to the client.
                tracing::error!(cause = %error, "ClickHouse query failed");
                ErrorBody::new(
                    "storage_unavailable",
                    "the event store did not answer; retry later",
                )
                .into_response(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }
}
