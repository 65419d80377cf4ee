//! `/openapi.json` and `/docs` for a service: its OpenAPI document, and a
//! self-contained page that renders it (no CDN, no downloaded bundle, so it
//! works offline and builds here).

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
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
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
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
        "description": "An API key: `Authorization: Bearer KEY`."});
    spec["components"]["securitySchemes"]["basic"] = json!({"type": "http", "scheme": "basic",
        "description": "An API key as the basic-auth user name (how Segment SDKs send a write key); the password is ignored."});
    spec["components"]["schemas"]["Error"] = error;
    spec["security"] = json!([{"key": []}, {"basic": []}]);
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
            "responses": {"200": {"description": "A self-contained HTML page.",
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

/// Lists every operation with its parameters, request body and responses,
/// then the schemas; everything comes from `/openapi.json` at view time.
const DOCS_PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:0}.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
.get{color:#0a6}.post{color:#06c}.delete{color:#c33}.put,.patch{color:#a60}
code,pre{font:13px ui-monospace,monospace;background:#f6f6f6}pre{padding:.5rem;overflow:auto}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;text-align:left;padding:.2rem .5rem;vertical-align:top}
summary{cursor:pointer}
</style></head><body>
<h1 id="title">API reference</h1><p id="about"></p>
<p>The machine-readable document: <a href="openapi.json">openapi.json</a>.</p>
<div id="ops"></div><h2>Schemas</h2><div id="schemas"></div>
<script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const json = v => "<pre>" + esc(JSON.stringify(v, null, 2)) + "</pre>";
// A parameter's type in a few words: "1h | 1d", "integer 1-1000", "array of string".
const kind = s => {
  if (!s) return "";
  if (s.enum) return s.enum.join(" | ");
  if (s.anyOf) return s.anyOf.map(kind).join(" or ");
  if (s.type === "array") return "comma list of " + kind(s.items);
  const bounded = s.minimum !== undefined || s.maximum !== undefined;
  const range = bounded ? ` ${s.minimum ?? ""}-${s.maximum ?? ""}` : "";
  return (s.format || s.type || "") + range + (s.pattern ? ` matching ${s.pattern}` : "");
};
fetch("openapi.json").then(r => r.json()).then(spec => {
  document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
  document.getElementById("about").textContent = spec.info.description || "";
  let html = "";
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      html += `<div class="op"><h3><span class="m ${method}">${method}</span><code>${esc(path)}</code></h3>`;
      html += `<p><b>${esc(op.summary)}</b></p><p>${esc(op.description)}</p>`;
      if (op.parameters && op.parameters.length) {
        html += "<table><tr><th>Parameter</th><th>In</th><th>Type</th><th>Description</th></tr>";
        for (const p of op.parameters) {
          html += `<tr><td><code>${esc(p.name)}</code>${p.required ? " *" : ""}</td><td>${esc(p.in)}</td>` +
            `<td>${esc(kind(p.schema))}</td><td>${esc(p.description)}</td></tr>`;
        }
        html += "</table>";
      }
      if (op.requestBody) html += "<details><summary>Request body</summary>" + json(op.requestBody) + "</details>";
      for (const [code, response] of Object.entries(op.responses || {})) {
        html += `<details><summary>${esc(code)}: ${esc(response.description)}</summary>${json(response.content || {})}</details>`;
      }
      html += "</div>";
    }
  }
  document.getElementById("ops").innerHTML = html;
  let schemas = "";
  for (const [name, schema] of Object.entries((spec.components || {}).schemas || {})) {
    schemas += `<details><summary><code>${esc(name)}</code></summary>${json(schema)}</details>`;
  }
  document.getElementById("schemas").innerHTML = schemas;
}).catch(e => { document.getElementById("ops").textContent = "Cannot load openapi.json: " + e; });
</script></body></html>
"##;

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn serves_the_spec_and_an_offline_page() {
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
        let page = app
            .oneshot(Request::get("/docs").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = to_bytes(page.into_body(), 1 << 20).await.unwrap();
        let page = String::from_utf8(body.to_vec()).unwrap();
        assert!(page.contains("fetch(\"openapi.json\")"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external assets"
        );
    }
}
