//! The gateway's OpenAPI 3.0 document, served at `/openapi.json` and
//! rendered at `/docs` (docs/ingest-api.md is the prose behind it).
//!
//! Request schemas state what the gateway accepts (a field the gateway
//! refuses is not valid here, and the other way round, as far as JSON
//! Schema can say it), and responses what it sends, headers included:
//! clients and checkers are generated from this document, and
//! `deploy/dev.sh conformance` runs schemathesis against the running gateway to
//! keep the two in step.

use axum::Router;
use serde_json::{Value, json};
use sluice_runtime::docs::{error_response, retry_after_header, with_shared_parts};
use sluice_runtime::key_admin::key_schemas;

use crate::segment;

/// `/openapi.json` and `/docs`, to merge into the gateway's router.
pub fn router() -> Router {
    sluice_runtime::docs::router(spec())
}

/// No control characters (Unicode category Cc), as identifiers require.
const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

fn json_body(schema: &Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// Segment's routes take JSON sent as `text/plain` too (analytics.js does,
/// to skip the CORS preflight).
fn json_or_text_body(schema: &Value) -> Value {
    json!({"required": true, "content": {
        "application/json": {"schema": schema},
        "text/plain": {"schema": schema}}})
}

/// `RateLimit-*` on answers to a key whose request limit is on.
fn budget_headers() -> Value {
    let header = |description: &str| {
        json!({"required": false, "description": description,
               "schema": {"type": "integer", "minimum": 0}})
    };
    json!({
        "RateLimit-Limit": header("The key's request burst."),
        "RateLimit-Remaining": header("Requests left in the burst."),
        "RateLimit-Reset": header("Seconds until the burst is whole again."),
    })
}

fn ok(description: &str, schema: Value) -> Value {
    let mut response = json!({"description": description, "headers": budget_headers()});
    response["content"]["application/json"]["schema"] = schema;
    response
}

fn with_headers(mut response: Value, headers: Value) -> Value {
    response["headers"] = headers;
    response
}

/// The answers of every authenticated route, besides its own.
fn refusals(scope: &str) -> Value {
    json!({
        "401": with_headers(
            error_response("No key, or an unknown or revoked one (`unauthorized`)."),
            json!({"WWW-Authenticate": {"required": true, "schema": {"type": "string"}}})),
        "403": error_response(&format!("The key lacks the `{scope}` scope (`forbidden`).")),
        "429": with_headers(
            error_response("Over the key's request or event rate, or the client IP's failed-authentication limit (`rate_limited`; `details.limit` says which)."),
            {
                let mut headers = budget_headers();
                headers["Retry-After"] = retry_after_header(true);
                headers
            }),
        "503": with_headers(
            error_response("The broker did not acknowledge (`broker_unavailable`), the gateway is at capacity (`overloaded`), keys are still loading (`keys_loading`) or the request timed out (`timeout`)."),
            json!({"Retry-After": retry_after_header(true)})),
    })
}

/// The answers of every ingest route, besides its own.
fn ingest_refusals() -> Value {
    let mut all = refusals("ingest");
    all["413"] = error_response(
        "The body (after gzip decompression) or an event is larger than allowed, or the batch holds more events than allowed or than the key's event burst (`payload_too_large`, `too_many_events`, `rate_limited`).",
    );
    all["415"] = error_response(
        "The Content-Type or Content-Encoding is not accepted (`unsupported_media_type`, `unsupported_encoding`).",
    );
    all
}

fn merged(mut base: Value, own: Value) -> Value {
    if let (Some(base), Value::Object(own)) = (base.as_object_mut(), own) {
        base.extend(own);
    }
    base
}

fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = json!(true);
    schema
}

fn event_schema() -> Value {
    let id = |description: &str| {
        json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_CONTROL,
               "description": description})
    };
    let text = json!({"type": "string", "maxLength": 1024, "description": "At most 1,024 bytes."});
    json!({"type": "object", "required": ["type"], "additionalProperties": false,
        "description": "A field that is null counts as absent. Every broken rule is reported, not only the first.",
        "properties": {
            "type": id("1-128 bytes, no control characters."),
            "event_id": nullable(id("Idempotency key, 1-128 bytes; a UUIDv7 when absent.")),
            "project_id": nullable(json!({"type": "string",
                "description": "Must be the key's project; best left out (the key decides)."})),
            "timestamp": nullable(json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}],
                "description": "Event time, RFC 3339 or epoch ms; at most 1 day ahead of and 30 days behind the gateway's clock. Default: when received."})),
            "user_id": nullable(text.clone()),
            "session_id": nullable(text.clone()),
            "source": nullable(text.clone()),
            "duration_ms": nullable(json!({"type": "number", "minimum": 0, "maximum": 1e12})),
            "status": nullable(json!({"anyOf": [text, {"type": "integer"}],
                "description": "Integers (HTTP status codes) are stored as text."})),
            "tags": nullable(json!({"type": "array", "maxItems": 64,
                "items": {"type": "string", "minLength": 1, "maxLength": 128}})),
            "properties": nullable(json!({"type": "object",
                "description": "At most 8 levels deep and 24 KiB as compact JSON."}))}})
}

fn schemas() -> Value {
    let rejected = json!({"type": "object", "required": ["index", "errors"], "properties": {
        "index": {"type": "integer", "minimum": 0},
        "errors": {"type": "array", "items": {"type": "object", "required": ["field", "reason"], "properties": {
            "field": {"type": "string"}, "reason": {"type": "string"}}}}}});
    let accepted = json!({"type": "object", "required": ["index", "event_id"], "properties": {
        "index": {"type": "integer", "minimum": 0}, "event_id": {"type": "string"}}});
    let mut schemas = json!({
        "Event": event_schema(),
        "BatchAnswer": {"type": "object", "required": ["accepted", "rejected"], "properties": {
            "accepted": {"type": "array", "items": accepted},
            "rejected": {"type": "array", "items": rejected}}},
        "SegmentAnswer": {"type": "object", "required": ["success"], "properties": {
            "success": {"type": "boolean", "enum": [true]},
            "event_id": {"type": "string", "description": "Single calls: the event's id."},
            "accepted": {"type": "array", "items": accepted},
            "rejected": {"type": "array", "items": rejected}}},
    });
    if let (Some(all), Value::Object(keys)) = (schemas.as_object_mut(), key_schemas()) {
        all.extend(keys);
    }
    schemas
}

/// A Segment single call: the message fields the gateway reads and checks;
/// others are kept under `properties.$segment` or ignored.
fn segment_message(call: &str) -> Value {
    let mut properties = json!({
        "messageId": nullable(json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_CONTROL})),
        "userId": nullable(json!({"anyOf": [{"type": "string", "maxLength": 1024}, {"type": "number"}],
            "description": "Else anonymousId; numbers become text."})),
        "timestamp": nullable(json!({"type": "string", "format": "date-time",
            "description": "Else originalTimestamp; corrected by sentAt."})),
    });
    let mut required = Vec::new();
    match call {
        "track" => {
            properties["event"] =
                json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_CONTROL});
            properties["properties"] = nullable(json!({"type": "object"}));
            required.push("event");
        }
        "page" | "screen" => properties["properties"] = nullable(json!({"type": "object"})),
        "identify" | "group" => properties["traits"] = nullable(json!({"type": "object"})),
        _ => {}
    }
    let mut message = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        message["required"] = json!(required);
    }
    message
}

fn segment_call(call: &str, whose: &str) -> Value {
    json!({"post": {
        "summary": format!("{whose} {call}"),
        "description": "Segment-compatible: the key may also come as `writeKey` in the body, or as Jitsu's `X-Write-Key: ID:KEY` header. Answers are Segment's: 200 {\"success\": true, \"event_id\"} once the broker has the event.",
        "security": [{"key": []}, {"basic": []}, {}],
        "requestBody": json_or_text_body(&segment_message(call)),
        "responses": merged(ingest_refusals(), json!({
            "200": ok("Accepted and acknowledged.", json!({"$ref": "#/components/schemas/SegmentAnswer"})),
            "400": error_response("The message is invalid (`invalid_event`, `invalid_json`, `invalid_gzip`); errors name Segment's fields.")}))}})
}

fn segment_batch(summary: &str) -> Value {
    json!({"post": {
        "summary": summary,
        "description": "Each message stands alone (it needs `type`: track, identify, page, screen, group or alias, and the fields of that call); refused ones are listed in `rejected`. 200 when any was accepted, 400 when none was.",
        "security": [{"key": []}, {"basic": []}, {}],
        "requestBody": json_or_text_body(&json!({"type": "object", "required": ["batch"], "properties": {
            "batch": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {}},
            "writeKey": {"type": "string", "nullable": true},
            "context": {"description": "Applies to messages without their own."},
            "sentAt": {"description": "Applies to messages without their own."}}})),
        "responses": merged(ingest_refusals(), json!({
            "200": ok("At least one message accepted; every accepted one acknowledged.", json!({"$ref": "#/components/schemas/SegmentAnswer"})),
            "400": error_response("No message was valid (`invalid_batch`), the batch is empty (`invalid_request`) or the body is not a batch (`invalid_json`, `invalid_gzip`).")}))}})
}

fn admin_paths() -> Value {
    let admin = |own: Value| merged(refusals("admin"), own);
    let key = json!({"$ref": "#/components/schemas/Key"});
    json!({
        "/v1/admin/keys": {
            "get": {"summary": "List keys (admin)",
                "description": "The bootstrap admin token or a key with the `admin` scope.",
                "parameters": [{"name": "project_id", "in": "query", "required": false, "schema": {"type": "string"},
                    "description": "Only this project's keys."}],
                "responses": admin(json!({
                    "200": {"description": "The keys, without secrets.", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": key}}}}}},
                    "400": error_response("An unknown parameter (`invalid_request`).")}))},
            "post": {"summary": "Create or import a key (admin)",
                "requestBody": json_body(&json!({"$ref": "#/components/schemas/NewKey"})),
                "responses": admin(json!({
                    "201": {"description": "The key, with its secret this once.", "content": {"application/json": {"schema": key}}},
                    "400": error_response("The request is invalid (`invalid_json`, `invalid_request`)."),
                    "409": error_response("An imported `key` already exists and is not revoked (`key_exists`)."),
                    "413": error_response("The body is over 64 KiB (`payload_too_large`)."),
                    "415": error_response("The body is not application/json (`unsupported_media_type`).")}))}},
        "/v1/admin/keys/{key_id}/rotate": {"post": {"summary": "Rotate a key (admin)",
            "description": "A new key with the old one's project, scopes, label and limits; the old key keeps working until `old_key_valid_until` (at once when absent). The body may be empty.",
            "parameters": [{"name": "key_id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/KeyRotation"}}}},
            "responses": admin(json!({
                "201": {"description": "The new key, with its secret this once.", "content": {"application/json": {"schema": key}}},
                "400": error_response("A time is malformed or past, or the key is revoked (`invalid_request`, `invalid_json`)."),
                "404": error_response("Unknown key_id (`not_found`)."),
                "413": error_response("The body is over 64 KiB (`payload_too_large`)."),
                "415": error_response("The body is not application/json (`unsupported_media_type`).")}))}},
        "/v1/admin/keys/{key_id}": {"delete": {"summary": "Revoke a key (admin)",
            "description": "Idempotent: revoking a revoked key answers it as it is.",
            "parameters": [{"name": "key_id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": admin(json!({
                "200": {"description": "Revoked.", "content": {"application/json": {"schema": key}}},
                "404": error_response("Unknown key_id (`not_found`).")}))}},
    })
}

pub fn spec() -> Value {
    let mut paths = json!({
        "/v1/events": {"post": {
            "summary": "Send one event",
            "description": "Answers 202 once the broker has acknowledged the event. At most 32 KiB; `Content-Encoding: gzip` is accepted.",
            "requestBody": json_body(&json!({"$ref": "#/components/schemas/Event"})),
            "responses": merged(ingest_refusals(), json!({
                "202": ok("Stored.", json!({"type": "object", "required": ["event_id"], "properties": {"event_id": {"type": "string"}}})),
                "400": error_response("The event is invalid (`invalid_event`: `details.fields` lists every broken rule) or the body is not JSON (`invalid_json`, `invalid_gzip`).")}))}},
        "/v1/events/batch": {"post": {
            "summary": "Send up to 1,000 events",
            "description": "Each event stands alone: 202 when all were accepted, 207 when some were (the refused ones are listed with their errors), 400 when none was. At most 5 MiB after gzip decompression, each event at most 32 KiB.",
            "requestBody": json_body(&json!({"type": "object", "required": ["events"], "additionalProperties": false, "properties": {
                "events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"$ref": "#/components/schemas/Event"}}}})),
            "responses": merged(ingest_refusals(), json!({
                "202": ok("Every event accepted and acknowledged.", json!({"$ref": "#/components/schemas/BatchAnswer"})),
                "207": ok("Some accepted and acknowledged, some refused.", json!({"$ref": "#/components/schemas/BatchAnswer"})),
                "400": error_response("No event was valid (`invalid_batch`: `details.rejected`), the batch is empty (`invalid_request`) or the body is not a batch (`invalid_json`, `invalid_gzip`).")}))}},
    });
    // From the router's own tables, so that every path it takes is here.
    let whose = [
        "Segment",
        "analytics.js (short path)",
        "Jitsu",
        "Jitsu server-to-server",
    ];
    for (_, call, short) in segment::CALLS {
        for (path, whose) in segment::call_paths(call, short).into_iter().zip(whose) {
            paths[path] = segment_call(call, whose);
        }
    }
    for (path, summary) in segment::BATCH_PATHS.into_iter().zip([
        "Segment batch",
        "Segment import (a batch)",
        "analytics.js batch (short path)",
    ]) {
        paths[path] = segment_batch(summary);
    }
    if let (Some(paths), Value::Object(admin)) = (paths.as_object_mut(), admin_paths()) {
        paths.extend(admin);
    }
    with_shared_parts(json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Sluice ingest gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Send events with a key of scope `ingest` (Bearer, or basic auth with the key as user name). analytics.js's one-letter paths (/v1/t, /v1/i, /v1/p, /v1/s, /v1/g, /v1/a, /v1/b) behave like their Segment routes, and so do Jitsu's /api/s/{call} and /api/s/s2s/{call}, which also take the key as `X-Write-Key: ID:KEY` (Jitsu's id:secret; the id is free). Every error is {\"error\", \"message\", \"details\"}. See docs/ingest-api.md."
        },
        "components": {"schemas": schemas()},
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
            "/v1/t",
            "/v1/b",
            "/v1/import",
            "/api/s/page",
            "/api/s/s2s/alias",
            "/v1/admin/keys",
            "/health/ready",
        ] {
            assert!(spec["paths"][path].is_object(), "{path}");
        }
        let refs = spec.to_string();
        for schema in ["Event", "BatchAnswer", "Error", "Key", "NewKey"] {
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
