//! The files behind `/docs`: the vendored Swagger UI
//! (`runtime/assets/swagger-ui/`, see its README for the version and
//! licence) and Sluice's page, initializer and style around it
//! (`runtime/assets/docs/`), compiled into the binary so that the build
//! needs no Node and the page fetches nothing from elsewhere.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The version of npm's `swagger-ui-dist` in `runtime/assets/swagger-ui/`.
pub const SWAGGER_UI_VERSION: &str = "5.36.0";

/// One file served under `/docs/assets/`.
#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `runtime/assets/DIR/NAME`, compiled in.
macro_rules! asset {
    ($dir:literal, $name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../assets/", $dir, "/", $name)),
        }
    };
}

/// Every file the page loads.
pub const ASSETS: [Asset; 4] = [
    asset!("swagger-ui", "swagger-ui-bundle.js", JAVASCRIPT),
    asset!("swagger-ui", "swagger-ui.css", CSS),
    asset!("docs", "sluice-docs.js", JAVASCRIPT),
    asset!("docs", "sluice-docs.css", CSS),
];

/// The page's `Content-Security-Policy`: scripts, styles and requests only
/// to this origin (the document and "Try it out" go to the service that
/// served the page). Inline styles stay allowed because Swagger UI sets
/// some; its icons are `data:` images.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Assets are named by their content's digest in the page, so browsers may
/// keep them for a year and still load a new version at once.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// The page, each `{name}` in its template replaced by the asset's URL
/// (relative, so the page also works behind a path prefix).
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let template = include_str!("../../assets/docs/index.html");
    ASSETS.iter().fold(template.to_owned(), |page, asset| {
        page.replace(&format!("{{{}}}", asset.name), &asset_url(asset))
    })
});

/// `docs/assets/NAME?v=DIGEST`: the first 16 hex digits of its SHA-256.
fn asset_url(asset: &Asset) -> String {
    let mut url = format!("docs/assets/{}?v=", asset.name);
    for byte in &Sha256::digest(asset.body)[..8] {
        let _ = write!(url, "{byte:02x}");
    }
    url
}

/// `/docs` and `/docs/assets/NAME` for each asset; other names under
/// `/docs/assets/` fall through to the service's own 404.
pub fn router() -> Router {
    let page = get(|| async {
        (
            [
                (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Html(PAGE.as_str()),
        )
    });
    ASSETS
        .iter()
        .fold(Router::new().route("/docs", page), |router, asset| {
            router.route(
                &format!("/docs/assets/{}", asset.name),
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, asset.content_type),
                            (header::CACHE_CONTROL, ASSET_CACHE),
                            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                        ],
                        asset.body,
                    )
                        .into_response()
                }),
            )
        })
}
