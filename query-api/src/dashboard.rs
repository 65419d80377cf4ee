//! The dashboard at `/`: plain ES modules, HTML and CSS from
//! `query-api/assets/dashboard/` with the vendored uPlot
//! (`assets/dashboard/vendor/`, see its README for the version and licence),
//! compiled into the binary so that the build needs no Node and the page
//! fetches nothing from elsewhere. The page talks to this API only, with
//! the session cookie (`/v1/auth/...`).
//!
//! Assets live under `/dashboard/assets/BUILD/NAME`, BUILD being a digest of
//! every asset: the modules import each other by relative paths, which then
//! stay inside one build, so browsers may keep them for a year and still load
//! a new version at once. A page of an older build still gets today's files
//! (uncached), which beats a broken page during an upgrade.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
/// One file served under `/dashboard/assets/BUILD/`, named by its path
/// below the build (e.g. `pages/keys.js`), as `/docs` serves its own.
pub use sluice_runtime::docs::assets::Asset;

use crate::error::ApiError;

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `query-api/assets/dashboard/NAME`, compiled in.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/dashboard/", $name)),
        }
    };
}

/// Every file the page loads: the entry module and what it imports.
pub const ASSETS: &[Asset] = &[
    asset!("app.js", JAVASCRIPT),
    asset!("api.js", JAVASCRIPT),
    asset!("dom.js", JAVASCRIPT),
    asset!("format.js", JAVASCRIPT),
    asset!("session.js", JAVASCRIPT),
    asset!("live.js", JAVASCRIPT),
    asset!("chart.js", JAVASCRIPT),
    asset!("filters.js", JAVASCRIPT),
    asset!("manage.js", JAVASCRIPT),
    asset!("pages/login.js", JAVASCRIPT),
    asset!("pages/overview.js", JAVASCRIPT),
    asset!("pages/metrics.js", JAVASCRIPT),
    asset!("pages/events.js", JAVASCRIPT),
    asset!("pages/keys.js", JAVASCRIPT),
    asset!("pages/webhooks.js", JAVASCRIPT),
    asset!("pages/users.js", JAVASCRIPT),
    asset!("pages/account.js", JAVASCRIPT),
    asset!("dashboard.css", CSS),
    asset!("vendor/uPlot.esm.js", JAVASCRIPT),
    asset!("vendor/uPlot.min.css", CSS),
];

/// The version of npm's `uplot` in `assets/dashboard/vendor/`.
pub const UPLOT_VERSION: &str = "1.6.32";

/// Assets sit under their build's digest, so browsers may keep them.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// The first 16 hex digits of the SHA-256 of every asset's name and body.
pub static BUILD: LazyLock<String> = LazyLock::new(|| {
    let mut digest = Sha256::new();
    for asset in ASSETS {
        digest.update(asset.name.as_bytes());
        digest.update([0]);
        digest.update((asset.body.len() as u64).to_le_bytes());
        digest.update(asset.body);
    }
    digest.finalize()[..8]
        .iter()
        .fold(String::new(), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
});

/// The page, `{build}` in its template replaced by [`BUILD`].
static PAGE: LazyLock<String> =
    LazyLock::new(|| include_str!("../assets/dashboard/index.html").replace("{build}", &BUILD));

/// The page's `Content-Security-Policy`: scripts, styles and requests to
/// this origin only, nothing inline. `connect-src 'self'` covers the
/// WebSocket of the same host in current browsers; older ones need its
/// `ws:`/`wss:` spelled out, so the host the request named is added when it
/// is a plain `HOST[:PORT]` (never anything that could end the directive).
pub fn page_policy(host: Option<&str>) -> String {
    let sockets = host
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|host| format!(" ws://{host} wss://{host}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

async fn page(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let policy = HeaderValue::from_str(&page_policy(host))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    (
        [
            (header::CONTENT_SECURITY_POLICY, policy),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
        ],
        Html(PAGE.as_str()),
    )
        .into_response()
}

async fn asset(Path((build, name)): Path<(String, String)>) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("/dashboard/assets/{build}/{name}")))?;
    let cache = if build == *BUILD {
        ASSET_CACHE
    } else {
        "no-cache"
    };
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response())
}

/// `/` and `/dashboard/assets/BUILD/NAME`; other names are the API's 404.
pub fn router() -> Router {
    Router::new()
        .route("/", get(page))
        .route("/dashboard/assets/{build}/{*name}", get(asset))
}

/// Every path the page needs, with the `Content-Type` it is served with
/// (for the tests).
pub fn page_paths() -> Vec<(String, &'static str)> {
    let assets = ASSETS.iter().map(|asset| {
        (
            format!("/dashboard/assets/{}/{}", *BUILD, asset.name),
            asset.content_type,
        )
    });
    std::iter::once(("/".to_owned(), "text/html; charset=utf-8"))
        .chain(assets)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> Response {
        router()
            .oneshot(
                Request::get(path)
                    .header(header::HOST, "127.0.0.1:8081")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_headers() {
        for (path, content_type) in page_paths() {
            let answer = get(&path).await;
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
            let headers = answer.headers();
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            let expected_cache = if path == "/" { "no-cache" } else { ASSET_CACHE };
            assert_eq!(headers[header::CACHE_CONTROL], expected_cache, "{path}");
            let body = to_bytes(answer.into_body(), usize::MAX).await.unwrap();
            assert!(!body.is_empty(), "{path}");
        }
    }

    #[tokio::test]
    async fn the_page_has_a_strict_policy_and_names_this_build() {
        let answer = get("/").await;
        let policy = answer.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.starts_with("default-src 'self'; script-src 'self'; style-src 'self';"));
        assert!(policy.contains("connect-src 'self' ws://127.0.0.1:8081 wss://127.0.0.1:8081;"));
        assert!(!policy.contains("unsafe"), "{policy}");
        let body = to_bytes(answer.into_body(), usize::MAX).await.unwrap();
        let page = std::str::from_utf8(&body).unwrap();
        assert!(!page.contains("{build}"));
        assert!(page.contains(&format!("dashboard/assets/{}/app.js", *BUILD)));
        // No inline script or style: the policy would block them.
        assert!(!page.contains("<script>") && !page.contains("style="));
    }

    #[test]
    fn a_host_that_could_break_the_policy_is_left_out() {
        let policy = page_policy(Some("evil; script-src *"));
        assert!(policy.contains("connect-src 'self';"), "{policy}");
        assert!(page_policy(None).contains("connect-src 'self';"));
    }

    #[tokio::test]
    async fn an_old_build_gets_todays_files_uncached_and_unknown_names_404() {
        let answer = get("/dashboard/assets/0000000000000000/app.js").await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[header::CACHE_CONTROL], "no-cache");
        let missing = get(&format!("/dashboard/assets/{}/nothing.js", *BUILD)).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let escaping = get(&format!("/dashboard/assets/{}/../Cargo.toml", *BUILD)).await;
        assert_eq!(escaping.status(), StatusCode::NOT_FOUND);
    }

    /// Every file a module or the page names by a relative path is compiled
    /// in: a new module missing from [`ASSETS`] fails here, not in a browser.
    #[test]
    fn every_relative_import_and_link_is_an_asset() {
        let names: BTreeSet<&str> = ASSETS.iter().map(|asset| asset.name).collect();
        let mut referenced = Vec::new();
        for asset in ASSETS.iter().filter(|a| a.content_type == JAVASCRIPT) {
            let text = std::str::from_utf8(asset.body).unwrap();
            let dir = asset.name.rsplit_once('/').map_or("", |(dir, _)| dir);
            for quote in ['\'', '"'] {
                for (start, _) in text.match_indices(&format!("{quote}./")).chain(
                    text.match_indices(&format!("{quote}../"))
                        .filter(|_| !asset.name.starts_with("vendor/")),
                ) {
                    let rest = &text[start + 1..];
                    let Some(end) = rest.find(quote) else {
                        continue;
                    };
                    let target = &rest[..end];
                    if target.ends_with(".js") || target.ends_with(".css") {
                        referenced.push((asset.name, resolve(dir, target)));
                    }
                }
            }
        }
        let page = include_str!("../assets/dashboard/index.html");
        for part in page.split("dashboard/assets/{build}/").skip(1) {
            let end = part.find('"').unwrap();
            referenced.push(("index.html", part[..end].to_owned()));
        }
        assert!(referenced.len() > ASSETS.len() / 2, "{referenced:?}");
        for (from, target) in referenced {
            assert!(names.contains(target.as_str()), "{from} names {target}");
        }
    }

    fn resolve(dir: &str, target: &str) -> String {
        let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        for part in target.split('/') {
            match part {
                "." => {}
                ".." => {
                    parts.pop();
                }
                part => parts.push(part),
            }
        }
        parts.join("/")
    }
}
