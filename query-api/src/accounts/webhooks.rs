//! `/v1/webhooks/*` on the query API: forwarded to the destinations service
//! (`--destinations-url`), which owns webhooks and checks the credentials
//! itself, so the dashboard has one origin. The request's credentials
//! (`Authorization`, the session cookie), project and CSRF headers go along;
//! the answer comes back as it is.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use sluice_runtime::access::{CSRF_HEADER, PROJECT_HEADER};
use sluice_runtime::http::ErrorBody;

use crate::state::AppState;

/// The largest body forwarded (a webhook's configuration is small).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// `--destinations-url` checked at startup: empty (no forwarding), or an
/// http(s) base URL without credentials, query or fragment.
pub fn destinations_url(text: &str) -> anyhow::Result<Option<Arc<str>>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let url = reqwest::Url::parse(text)
        .map_err(|error| anyhow::anyhow!("--destinations-url is not a URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        anyhow::bail!(
            "--destinations-url must be an http:// or https:// URL of the destinations service"
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        anyhow::bail!(
            "--destinations-url must not carry credentials (the request's own are forwarded)"
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        anyhow::bail!("--destinations-url must be a base URL, without a query or fragment");
    }
    Ok(Some(Arc::from(text.trim_end_matches('/'))))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", any(forward))
        .route("/v1/webhooks/{*rest}", any(forward))
}

async fn forward(State(state): State<AppState>, request: Request) -> Response {
    let Some(base) = state.destinations_url.as_deref() else {
        return ErrorBody::new(
            "not_configured",
            "webhooks are managed by the destinations service, which this query API does not know (--destinations-url)",
        )
        .into_response(StatusCode::NOT_FOUND);
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ErrorBody::new(
            "payload_too_large",
            format!("the body exceeds {MAX_BODY_BYTES} bytes"),
        )
        .into_response(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/v1/webhooks", |p| p.as_str());
    let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
    let mut outgoing = state.http.request(parts.method.clone(), url).body(body);
    let forwarded: [HeaderName; 5] = [
        header::AUTHORIZATION,
        header::COOKIE,
        header::CONTENT_TYPE,
        HeaderName::from_static(PROJECT_HEADER),
        HeaderName::from_static(CSRF_HEADER),
    ];
    for name in forwarded {
        for value in parts.headers.get_all(&name) {
            outgoing = outgoing.header(&name, value);
        }
    }
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(cause = %error.without_url(), "the destinations service did not answer");
            return ErrorBody::new(
                "destinations_unavailable",
                "the destinations service did not answer; retry later",
            )
            .into_response(StatusCode::BAD_GATEWAY);
        }
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let body = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destinations_url_is_checked_naming_the_setting() {
        assert_eq!(destinations_url("  ").unwrap(), None);
        assert_eq!(
            destinations_url("http://127.0.0.1:8083/")
                .unwrap()
                .as_deref(),
            Some("http://127.0.0.1:8083")
        );
        for bad in [
            "not a url",
            "ftp://host",
            "http://user:pw@host",
            "http://host/?a=1",
        ] {
            let error = destinations_url(bad).unwrap_err().to_string();
            assert!(error.contains("--destinations-url"), "{bad}: {error}");
            assert!(!error.contains("pw"), "{error}");
        }
    }
}
