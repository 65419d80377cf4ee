//! Every way a management request can fail, in Sluice's one error body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use sluice_runtime::access::AuthError;
use sluice_runtime::http::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// A field of the request is wrong; `field` names it (`url`, `rules[0].type`).
    #[error("`{field}`: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("the body is not valid JSON for this request: {0}")]
    InvalidJson(String),
    #[error("no webhook {0}")]
    NotFound(String),
    #[error("ClickHouse query failed")]
    Storage(#[from] clickhouse::error::Error),
    /// The webhooks topic did not take a write.
    #[error("the webhook could not be saved; retry later")]
    Unavailable(String),
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Auth(error) => error.into_response(),
            Self::InvalidField {
                ref field,
                ref reason,
            } => ErrorBody::new("invalid_field", self.to_string())
                .with_details(json!({"field": field, "reason": reason}))
                .into_response(StatusCode::BAD_REQUEST),
            Self::InvalidJson(_) => ErrorBody::new("invalid_json", self.to_string())
                .into_response(StatusCode::BAD_REQUEST),
            Self::NotFound(_) => {
                ErrorBody::new("not_found", self.to_string()).into_response(StatusCode::NOT_FOUND)
            }
            Self::Storage(error) => {
                tracing::error!(cause = %error, "deliveries log query failed");
                ErrorBody::new(
                    "storage_unavailable",
                    "the deliveries log did not answer; retry later",
                )
                .into_response(StatusCode::SERVICE_UNAVAILABLE)
            }
            Self::Unavailable(cause) => {
                tracing::error!(%cause, "cannot write the webhooks topic");
                ErrorBody::new("unavailable", "the webhook could not be saved; retry later")
                    .into_response(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }
}
