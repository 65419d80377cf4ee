//! CORS on the ingest routes, so that browser SDKs (analytics.js, Jitsu's and
//! RudderStack's browser SDKs) can send from a web site's own origin.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! from an allowed origin is answered `204` here, before authentication and
//! the body budget. Any other request from an allowed origin goes on and its
//! answer gets `Access-Control-Allow-Origin`, with the rate-limit headers
//! exposed to scripts. Requests without `Origin`, and `OPTIONS` that is not a
//! preflight, are untouched (the latter still gets `405`). Credentials
//! (cookies) are never allowed: keys travel in headers or the body.

use std::sync::Arc;

use anyhow::bail;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Request headers a browser may send: what the SDKs set.
const ALLOWED_HEADERS: &str = "authorization, content-type, content-encoding, x-write-key";
/// Answer headers scripts may read.
const EXPOSED_HEADERS: &str =
    "retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, x-request-id";
/// How long a browser may reuse a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "86400";

/// Which origins may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// None: no CORS headers at all.
    Off,
    /// Every origin (`*`): ingest keys are public in a browser anyway.
    AnyOrigin,
    /// These origins only, as browsers send them (`https://shop.example.com`).
    Origins(Vec<HeaderValue>),
}

impl CorsPolicy {
    /// From `--cors-origins`: `*`, a list of origins, or nothing (off).
    pub fn parse(origins: &[String]) -> anyhow::Result<Self> {
        let origins: Vec<&str> = origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
            .collect();
        if origins.is_empty() {
            return Ok(Self::Off);
        }
        if origins.contains(&"*") {
            if origins.len() > 1 {
                bail!("--cors-origins is either * or a list of origins, not both");
            }
            return Ok(Self::AnyOrigin);
        }
        let mut allowed = Vec::with_capacity(origins.len());
        for origin in origins {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let plain = |host: &str| {
                !host.is_empty()
                    && !host.contains(['/', '?', '#'])
                    && !host.contains(char::is_whitespace)
            };
            if !host.is_some_and(plain) {
                bail!("CORS origin {origin:?} must look like https://host[:port], without a path");
            }
            allowed.push(HeaderValue::from_str(origin)?);
        }
        Ok(Self::Origins(allowed))
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`, if allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match self {
            Self::Off => None,
            Self::AnyOrigin => Some(HeaderValue::from_static("*")),
            Self::Origins(allowed) => allowed.iter().find(|a| *a == origin).cloned(),
        }
    }
}

/// The middleware: answers preflights, labels answers to allowed origins.
pub async fn cors(State(policy): State<Arc<CorsPolicy>>, request: Request, next: Next) -> Response {
    let allowed = request
        .headers()
        .get(ORIGIN)
        .and_then(|origin| policy.allow(origin));
    let Some(allowed) = allowed else {
        let mut response = next.run(request).await;
        vary_on_origin(response.headers_mut(), &policy);
        return response;
    };
    let is_preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if is_preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
        response
    } else {
        let mut response = next.run(request).await;
        response.headers_mut().insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    vary_on_origin(headers, &policy);
    response
}

/// When only some origins may send, every answer depends on the origin
/// (with or without `Access-Control-Allow-Origin`): caches must not hand one
/// origin's answer to another.
fn vary_on_origin(headers: &mut HeaderMap, policy: &CorsPolicy) {
    if matches!(policy, CorsPolicy::Origins(_)) {
        headers.append(VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Vec<String> {
        list.iter().map(|origin| (*origin).to_owned()).collect()
    }

    #[test]
    fn parses_any_a_list_or_nothing() {
        assert_eq!(
            CorsPolicy::parse(&origins(&["*"])).unwrap(),
            CorsPolicy::AnyOrigin
        );
        assert_eq!(CorsPolicy::parse(&origins(&[])).unwrap(), CorsPolicy::Off);
        assert_eq!(
            CorsPolicy::parse(&origins(&[" ", ""])).unwrap(),
            CorsPolicy::Off
        );
        let list = CorsPolicy::parse(&origins(&["https://a.example", " http://b.example:8080"]));
        let CorsPolicy::Origins(list) = list.unwrap() else {
            panic!("a list")
        };
        assert_eq!(list, ["https://a.example", "http://b.example:8080"]);
    }

    #[test]
    fn refuses_what_a_browser_never_sends_as_an_origin() {
        for bad in [
            &["*", "https://a.example"][..],
            &["a.example"],
            &["https://a.example/"],
            &["https://a.example/path"],
            &["ftp://a.example"],
        ] {
            assert!(CorsPolicy::parse(&origins(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn allows_only_listed_origins() {
        let policy = CorsPolicy::parse(&origins(&["https://a.example"])).unwrap();
        let a = HeaderValue::from_static("https://a.example");
        assert_eq!(policy.allow(&a), Some(a));
        assert_eq!(
            policy.allow(&HeaderValue::from_static("https://b.example")),
            None
        );
        let any = CorsPolicy::AnyOrigin.allow(&HeaderValue::from_static("https://b.example"));
        assert_eq!(any, Some(HeaderValue::from_static("*")));
        assert_eq!(
            CorsPolicy::Off.allow(&HeaderValue::from_static("https://a.example")),
            None
        );
    }
}
