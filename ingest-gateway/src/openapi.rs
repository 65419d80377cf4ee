//! The gateway's OpenAPI 3.0 document, served at `/openapi.json` and
//! rendered at `/docs` (docs/ingest-api.md is the prose behind it).

use axum::Router;
use serde_json::{Value, json};
use sluice_runtime::docs::{error_response, with_shared_parts};

/// `/openapi.json` and `/docs`, to merge into the gateway's router.
pub fn router() -> Router {
    sluice_runtime::docs::router(spec())
}

fn json_body(schema: &Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// The answers every ingest route shares.
fn refusals() -> Value {
    json!({
        "401": error_response("No key, or an unknown or revoked one (`unauthorized`, with WWW-Authenticate)."),
        "403": error_response("The key lacks the `ingest` scope (`forbidden`)."),
        "413": error_response("The body is larger than the route allows."),
        "429": error_response("Over the key's rate limit or the IP's failed-auth limit (`rate_limited`, with Retry-After)."),
        "503": error_response("The broker did not acknowledge, or the gateway is over its in-flight budget, or keys are loading (with Retry-After)."),
    })
}

fn responses(ok: Value) -> Value {
    let mut all = refusals();
    if let (Some(all), Value::Object(ok)) = (all.as_object_mut(), ok) {
        all.extend(ok);
    }
    all
}

fn segment_call(summary: &str) -> Value {
    json!({"post": {
        "summary": summary,
        "description": "Segment-compatible: application/json or text/plain; the key may also come as writeKey in the body. Answers are Segment's.",
        "requestBody": json_body(&json!({"type": "object"})),
        "responses": responses(json!({
            "200": {"description": "{\"success\": true, ...}: accepted."},
            "400": {"description": "Nothing was accepted."}}))}})
}

pub fn spec() -> Value {
    let event = json!({"type": "object", "required": ["type"], "additionalProperties": false, "properties": {
        "type": {"type": "string", "minLength": 1, "maxLength": 128},
        "event_id": {"type": "string", "description": "Idempotency key, 1-128 bytes; a UUIDv7 when absent."},
        "timestamp": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}],
                      "description": "Event time; at most 1 day ahead and 30 days back. Default: when received."},
        "user_id": {"type": "string", "maxLength": 1024},
        "session_id": {"type": "string", "maxLength": 1024},
        "source": {"type": "string", "maxLength": 1024},
        "duration_ms": {"type": "number", "minimum": 0, "maximum": 1e12},
        "status": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "tags": {"type": "array", "maxItems": 64, "items": {"type": "string"}},
        "properties": {"type": "object", "description": "At most 8 levels deep, 24 KiB as compact JSON."}}});
    let batch_answer = json!({"type": "object", "properties": {
        "accepted": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "event_id": {"type": "string"}}}},
        "rejected": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "errors": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "reason": {"type": "string"}}}}}}}}});
    let mut paths = json!({
        "/v1/events": {"post": {
            "summary": "Send one event",
            "description": "Answers 202 once the broker has acknowledged the event. At most 32 KiB.",
            "requestBody": json_body(&json!({"$ref": "#/components/schemas/Event"})),
            "responses": responses(json!({
                "202": {"description": "Stored.", "content": {"application/json": {"schema": {"type": "object", "properties": {"event_id": {"type": "string"}}}}}},
                "400": error_response("The event is invalid (`invalid_event`, `invalid_json`); details list every broken rule.")}))}},
        "/v1/events/batch": {"post": {
            "summary": "Send up to 1,000 events",
            "description": "Each event stands alone: 202 when all were accepted, 207 when some were. At most 5 MiB after gzip decompression.",
            "requestBody": json_body(&json!({"type": "object", "required": ["events"], "properties": {
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}})),
            "responses": responses(json!({
                "202": {"description": "Every event accepted.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchAnswer"}}}},
                "207": {"description": "Some accepted, some refused.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchAnswer"}}}},
                "400": error_response("No event was valid (`invalid_batch`).")}))}},
        "/v1/admin/keys": {
            "get": {"summary": "List keys (admin)", "parameters": [{"name": "project_id", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "The keys, without secrets."}, "401": error_response("Not an admin.")}},
            "post": {"summary": "Create or import a key (admin)",
                     "requestBody": json_body(&json!({"type": "object", "required": ["project_id", "scopes"], "properties": {
                         "project_id": {"type": "string"}, "scopes": {"type": "array", "items": {"type": "string", "enum": ["ingest", "read", "admin"]}},
                         "label": {"type": "string"}, "key": {"type": "string"}, "limits": {"type": "object"}}})),
                     "responses": {"201": {"description": "The key, shown this once."}, "400": error_response("Invalid request."), "401": error_response("Not an admin.")}}},
        "/v1/admin/keys/{key_id}": {"delete": {"summary": "Revoke a key (admin)",
            "parameters": [{"name": "key_id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "Revoked (idempotent)."}, "404": error_response("Unknown key_id.")}}},
    });
    for (path, summary) in [
        ("/v1/track", "Segment track"),
        ("/v1/identify", "Segment identify"),
        ("/v1/page", "Segment page"),
        ("/v1/screen", "Segment screen"),
        ("/v1/group", "Segment group"),
        ("/v1/alias", "Segment alias"),
        ("/v1/batch", "Segment batch"),
        ("/v1/import", "Segment import (a batch)"),
    ] {
        paths[path] = segment_call(summary);
    }
    with_shared_parts(json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Sluice ingest gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Send events with a key of scope `ingest` (Bearer, or basic auth with the key as user name). analytics.js's one-letter paths (/v1/t, /v1/i, /v1/p, /v1/s, /v1/g, /v1/a, /v1/b) behave like their Segment routes. See docs/ingest-api.md."
        },
        "components": {"schemas": {"Event": event, "BatchAnswer": batch_answer}},
        "paths": paths,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_every_native_route() {
        let spec = spec();
        for path in [
            "/v1/events",
            "/v1/events/batch",
            "/v1/batch",
            "/v1/track",
            "/v1/admin/keys",
            "/health/ready",
        ] {
            assert!(spec["paths"][path].is_object(), "{path}");
        }
        let refs = spec.to_string();
        for schema in ["Event", "BatchAnswer", "Error"] {
            assert!(
                spec["components"]["schemas"][schema].is_object(),
                "{schema}"
            );
            assert!(
                refs.contains(&format!("#/components/schemas/{schema}")),
                "{schema} is used"
            );
        }
    }
}
