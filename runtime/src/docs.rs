//! `/openapi.json` and `/docs` for a service: its OpenAPI document, and
//! Swagger UI over it, where a person authorizes with a key and sends
//! requests ("Try it out"). The UI is vendored and compiled in
//! ([`assets`]): no CDN, nothing fetched at run time, no Node to build.

pub mod assets;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

/// The two routes, serving `spec`.
pub fn router(spec: Value) -> Router {
    let spec = Arc::new(spec);
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        spec.to_string(),
                    )
                        .into_response()
                }
            }),
        )
        .merge(assets::router())
}

/// Every path the docs page needs besides `/openapi.json`, with the
/// `Content-Type` it is served with (for the services' tests).
pub fn page_paths() -> Vec<(String, &'static str)> {
    let assets = assets::ASSETS
        .iter()
        .map(|asset| (format!("/docs/assets/{}", asset.name), asset.content_type));
    std::iter::once(("/docs".to_owned(), "text/html; charset=utf-8"))
        .chain(assets)
        .collect()
}

/// What every Sluice OpenAPI document shares: the key schemes (bearer, or
/// basic auth with the key as user name), the error body, and the
/// operations endpoints. `spec` gets them
/// merged in.
pub fn with_shared_parts(mut spec: Value) -> Value {
    let error = json!({"type": "object", "additionalProperties": false, "required": ["error", "message"], "properties": {
        "error": {"type": "string", "description": "Stable machine-readable code."},
        "message": {"type": "string", "description": "What went wrong, for a person."},
        "details": {"description": "Structured specifics, e.g. the offending fields."}}});
    spec["components"]["securitySchemes"]["key"] = json!({"type": "http", "scheme": "bearer",
        "description": "An API key, or a signed-in user's session token (POST /v1/auth/login on the query API): `Authorization: Bearer …`. A user names the project with `X-Sluice-Project` when they have roles in several."});
    spec["components"]["securitySchemes"]["basic"] = json!({"type": "http", "scheme": "basic",
        "description": "An API key as the basic-auth user name (how Segment SDKs send a write key); the password is ignored."});
    spec["components"]["schemas"]["Error"] = error;
    spec["components"]["securitySchemes"]["session_cookie"] = json!({"type": "apiKey", "in": "cookie", "name": "sluice_access",
        "description": "A signed-in user's session (the dashboard's HttpOnly cookie); changes also need the `X-Sluice-Csrf: 1` header."});
    spec["security"] = json!([{"key": []}, {"basic": []}, {"session_cookie": []}]);
    let open = json!([]);
    let status = |values: &[&str]| {
        json!({"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": values},
        "checks": {"type": "object", "description": "Each dependency's state: true when it passes.",
            "additionalProperties": {"type": "boolean"}},
        "causes": {"type": "object", "description": "Why each failing check fails, for a person.",
            "additionalProperties": {"type": "string"}}}})
    };
    let ops = json!({
        "/health/live": {"get": {"summary": "Liveness", "security": open,
            "responses": {"200": {"description": "Live.",
                "content": {"application/json": {"schema": status(&["live"])}}}}}},
        "/health/ready": {"get": {"summary": "Readiness of every dependency", "security": open,
            "responses": {
                "200": {"description": "Ready.", "content": {"application/json": {"schema": status(&["ready"])}}},
                "503": {"description": "Not ready; `checks` says which dependency is not.",
                    "content": {"application/json": {"schema": status(&["not_ready"])}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": open,
            "responses": {"200": {"description": "OpenMetrics text.",
                "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "security": open,
            "responses": {"200": {"description": "OpenAPI 3.0.",
                "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/docs": {"get": {"summary": "This document, rendered", "security": open,
            "responses": {"200": {"description": "Swagger UI over this document, to try requests with a key.",
                "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    });
    if let (Some(paths), Value::Object(ops)) = (spec["paths"].as_object_mut(), ops) {
        paths.extend(ops);
    }
    spec
}

/// A JSON response of the shared error body.
pub fn error_response(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The `Retry-After` header of a 429 or 503: whole seconds.
pub fn retry_after_header(required: bool) -> Value {
    json!({"required": required, "description": "Seconds to wait before retrying.",
           "schema": {"type": "integer", "minimum": 0}})
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn serves_the_spec_the_page_and_its_assets() {
        let app = router(json!({"openapi": "3.0.3"}));
        let spec = app
            .clone()
            .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(spec.status(), StatusCode::OK);
        let body = to_bytes(spec.into_body(), 1 << 20).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap()["openapi"],
            "3.0.3"
        );
        for (path, content_type) in page_paths() {
            let answer = app
                .clone()
                .oneshot(Request::get(&path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
            assert_eq!(
                answer.headers()[header::CONTENT_TYPE],
                content_type,
                "{path}"
            );
            assert_eq!(answer.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let cache = answer.headers()[header::CACHE_CONTROL].to_str().unwrap();
            assert_eq!(
                cache.contains("immutable"),
                path != "/docs",
                "{path}: {cache}"
            );
            assert!(
                !to_bytes(answer.into_body(), 8 << 20)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[tokio::test]
    async fn the_page_loads_only_its_own_assets_under_a_strict_policy() {
        let page = router(json!({}))
            .oneshot(Request::get("/docs").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            page.headers()[header::CONTENT_SECURITY_POLICY],
            assets::PAGE_POLICY
        );
        let body = to_bytes(page.into_body(), 1 << 20).await.unwrap();
        let page = String::from_utf8(body.to_vec()).unwrap();
        for asset in &assets::ASSETS {
            let url = format!("\"docs/assets/{}?v=", asset.name);
            assert!(page.contains(&url), "{url} in {page}");
        }
        assert!(
            !page.contains("{"),
            "a template placeholder is left: {page}"
        );
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external assets"
        );
        assert!(!page.contains("<script>"), "no inline script: {page}");
    }
}
