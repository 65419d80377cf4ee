//! The query API's OpenAPI 3.0 document, served at `/openapi.json` and
//! rendered at `/docs`. Written out here, next to the handlers it describes,
//! rather than derived: the parameters are parsed by hand (repeatable
//! `property.KEY`, comma lists), which derive macros describe poorly.
//!
//! Every parameter schema states what the parser accepts (enums, bounds,
//! patterns), and every response what the handler sends, because clients
//! and checkers are generated from it; `deploy/dev.sh conformance` runs
//! schemathesis against the running service to keep the two in step.

use serde_json::{Value, json};
use sluice_runtime::docs::{error_response, retry_after_header, with_shared_parts};
use sluice_runtime::key_admin::key_schemas;

use crate::events::MAX_LIMIT as MAX_EVENTS;
use crate::metrics::request::{MAX_LIMIT as MAX_ROWS, Metric};

/// The latest instant a range may name: 2100-01-01T00:00:00Z.
const MAX_TIME_MS: i64 = 4_102_444_800_000;
/// A property key, as filters and group-bys name it.
const PROPERTY_KEY: &str = r"[A-Za-z0-9_.$:-]{1,128}";

fn query(name: &str, schema: Value, description: &str) -> Value {
    let mut parameter =
        json!({"name": name, "in": "query", "required": false, "description": description});
    parameter["schema"] = schema;
    parameter
}

/// A comma-separated list, `name=a,b,c` (OpenAPI's form style, not exploded).
/// At least one item: an empty value or item (`a,,b`) is a 400 (a parameter
/// left out is none).
fn list(name: &str, items: Value, max_items: Option<usize>, description: &str) -> Value {
    let mut schema = json!({"type": "array", "minItems": 1});
    schema["items"] = items;
    if let Some(max) = max_items {
        schema["maxItems"] = json!(max);
    }
    let mut parameter = query(name, schema, description);
    parameter["style"] = json!("form");
    parameter["explode"] = json!(false);
    parameter
}

fn text() -> Value {
    json!({"type": "string"})
}

fn time(description: &str) -> Value {
    json!({"anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "integer", "minimum": 0, "maximum": MAX_TIME_MS}],
        "description": description})
}

/// `from`, `to` and the filters.
fn range_and_filters() -> Vec<Value> {
    let mut parameters = vec![
        query(
            "from",
            time("RFC 3339 (encode `+` as %2B), or epoch milliseconds"),
            "Start (inclusive): RFC 3339 with any offset (encode `+` as %2B) or epoch ms, 1970 to 2100. Default: 24 h before `to`. Must be before `to`.",
        ),
        query(
            "to",
            time("RFC 3339 or epoch milliseconds"),
            "End (exclusive): RFC 3339 or epoch ms, 1970 to 2100. Default: now.",
        ),
        query("type", text(), "Only events of this type."),
        query("source", text(), "Only events from this source."),
    ];
    parameters.extend([
        query("status", text(), "Only events with this status."),
        query("user_id", text(), "Only events of this user."),
        query("session_id", text(), "Only events of this session."),
        query("tag", text(), "Only events carrying this tag."),
        query(
            "property.KEY",
            text(),
            "Stands for any number of `property.KEY=VALUE` parameters, one per key: the property KEY equals VALUE (a string, or the JSON text of a number or boolean). KEY is 1-128 of A-Z a-z 0-9 _ - . $ :",
        ),
    ]);
    parameters
}

fn metric_names(numeric_only: bool) -> Vec<&'static str> {
    Metric::ALL
        .iter()
        .filter(|metric| !numeric_only || **metric != Metric::DominantStatus)
        .map(|metric| metric.name())
        .collect()
}

fn metrics_parameters() -> Vec<Value> {
    let names = metric_names(false);
    let numeric = metric_names(true).join("|");
    let dimension = json!({"anyOf": [
        {"type": "string", "enum": ["type", "source", "status"]},
        {"type": "string", "pattern": format!("^property\\.{PROPERTY_KEY}$")}]});
    let number = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?";
    let condition = format!(r"^\s*({numeric})\s*(>=|<=|!=|>|<|=)\s*{number}\s*$");
    let sort_key = format!(
        r"^-?(bucket|type|source|status|property\.{PROPERTY_KEY}|{})$",
        names.join("|")
    );
    let mut parameters = vec![
        query(
            "interval",
            json!({"type": "string", "enum": ["1m", "5m", "15m", "1h", "1d"], "default": "1h"}),
            "Bucket width. The range widens to whole buckets.",
        ),
        list(
            "metrics",
            json!({"type": "string", "enum": names}),
            None,
            "The metrics of each row. Default count.",
        ),
        list(
            "group_by",
            dimension,
            Some(4),
            "Dimensions: type, source, status, property.KEY.",
        ),
        list(
            "having",
            json!({"type": "string", "pattern": condition}),
            None,
            "Conditions METRIC OP NUMBER (OP: > >= < <= = !=, URL-encoded), all must hold; each metric must be among `metrics`; dominant_status cannot be compared.",
        ),
        list(
            "order_by",
            json!({"type": "string", "pattern": sort_key}),
            None,
            "Sort keys: bucket, a group_by dimension or a requested metric; a leading - sorts descending. Default: bucket, then groups. Missing values sort last.",
        ),
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "default": 10_000}),
            "Most rows.",
        ),
        query(
            "utc_offset",
            json!({"type": "string", "pattern": r"^(Z|[+-][0-9]{1,2}:[0-9]+)$", "default": "Z"}),
            "Fixed offset whose midnight starts 1h and 1d buckets, e.g. +05:30 (encode + as %2B) or -08:00; at most 14 hours, minutes below 60.",
        ),
        query(
            "exact",
            json!({"type": "string", "enum": ["true", "false"], "default": "false"}),
            "true: always the exact path, from raw events; false: rollups where they cover the question.",
        ),
    ];
    parameters.extend(range_and_filters());
    parameters
}

/// The answers every read endpoint may give besides its success.
fn error_responses() -> Value {
    json!({
        "400": error_response("A parameter is malformed, out of range, repeated or unknown (`invalid_parameter`; `details.parameter` names it, `details.reason` says why), or a user with roles in several projects named none (`project_required`)."),
        "401": unauthorized(),
        "403": error_response("The key lacks the `read` scope, or the user has no role in the project (`forbidden`)."),
        "503": unavailable(),
    })
}

fn unauthorized() -> Value {
    let mut response = error_response(
        "No credentials, or an unknown or revoked key (`unauthorized`), an expired key (`key_expired`), an expired session token (`session_expired`: refresh it) or an ended session (`session_ended`).",
    );
    response["headers"] =
        json!({"WWW-Authenticate": {"required": true, "schema": {"type": "string"}}});
    response
}

fn unavailable() -> Value {
    let mut response = error_response(
        "ClickHouse does not answer (`storage_unavailable`, with Retry-After), the API is still starting (`starting`: `/health/ready` says what it waits for), the key store is still loading (`keys_loading`, with Retry-After) or the request timed out (`timeout`, with Retry-After).",
    );
    response["headers"] = json!({"Retry-After": retry_after_header(false)});
    response
}

fn with_errors(ok: Value) -> Value {
    let mut responses = error_responses();
    if let (Some(map), Value::Object(ok)) = (responses.as_object_mut(), ok) {
        map.extend(ok);
    }
    responses
}

fn file(what: &str) -> Value {
    json!({"200": {
        "description": format!("{what}, as an attachment; the media type follows `format`."),
        "headers": {"Content-Disposition": {"required": true, "schema": {"type": "string", "pattern": "^attachment; filename=\"sluice-"},
            "description": "attachment; filename=\"sluice-KIND-FROM-TO.EXT\""}},
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}}}}})
}

fn format_parameter() -> Value {
    query(
        "format",
        json!({"type": "string", "enum": ["csv", "json", "ndjson"], "default": "csv"}),
        "CSV (RFC 4180, a header row; text cells starting with = + - @ tab or CR get a leading '), a JSON array, or one JSON object per line.",
    )
}

fn schemas() -> Value {
    let nullable_text = json!({"type": "string", "nullable": true});
    let metric_value = json!({"nullable": true, "anyOf": [{"type": "number"}, {"type": "string"}],
        "description": "A number; dominant_status is text; null when undefined (e.g. a percentile without durations)."});
    let mut schemas = json!({
        "Event": {"type": "object", "additionalProperties": false,
            "required": ["event_id", "project_id", "type", "timestamp", "received_at", "user_id", "session_id",
                         "source", "duration_ms", "status", "tags", "properties", "client_ip", "user_agent"],
            "properties": {
                "event_id": {"type": "string"}, "project_id": {"type": "string"}, "type": {"type": "string"},
                "timestamp": {"type": "string", "format": "date-time"}, "received_at": {"type": "string", "format": "date-time"},
                "user_id": nullable_text, "session_id": nullable_text, "source": nullable_text,
                "duration_ms": {"type": "number", "nullable": true}, "status": nullable_text,
                "tags": {"type": "array", "items": {"type": "string"}},
                "properties": {"type": "object", "nullable": true},
                "client_ip": nullable_text, "user_agent": nullable_text}},
        "EventPage": {"type": "object", "additionalProperties": false,
            "required": ["events", "next_cursor", "from", "to"], "properties": {
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                "next_cursor": {"type": "string", "nullable": true, "description": "null on the last page."},
                "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"}}},
        "ErrorBound": {"type": "object", "additionalProperties": false, "required": ["kind", "value", "note"], "properties": {
            "kind": {"type": "string", "enum": ["relative_standard_error", "relative_error"]},
            "value": {"type": "number"}, "note": {"type": "string"}}},
        "Metrics": {"type": "object", "additionalProperties": false,
            "required": ["interval", "from", "to", "utc_offset_minutes", "source", "error_bounds", "columns", "rows"],
            "properties": {
                "interval": {"type": "string", "enum": ["1m", "5m", "15m", "1h", "1d"]},
                "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
                "utc_offset_minutes": {"type": "integer", "minimum": -840, "maximum": 840},
                "source": {"type": "string", "enum": ["rollups", "raw", "rollups+raw"]},
                "raw_from": {"type": "string", "format": "date-time", "description": "With rollups+raw: where raw events take over."},
                "error_bounds": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/ErrorBound"},
                    "description": "Per approximate metric served from rollups; {} for raw answers."},
                "columns": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "array", "items": {"type": "object", "required": ["bucket"],
                    "properties": {"bucket": {"type": "string", "format": "date-time"}},
                    "additionalProperties": metric_value,
                    "description": "bucket, the group_by dimensions (text), then the metrics, as named in columns."}}}}
    });
    if let (Some(all), Value::Object(status)) = (schemas.as_object_mut(), status_schemas()) {
        all.extend(status);
    }
    schemas
}

/// The bodies of `/v1/status` and `/v1/admin/status` (see `crate::status`).
fn status_schemas() -> Value {
    let time = |description: &str| json!({"type": "string", "format": "date-time", "nullable": true, "description": description});
    let count = json!({"type": "integer", "minimum": 0});
    let counts = json!({"$ref": "#/components/schemas/Counts"});
    let last_event = json!({"$ref": "#/components/schemas/LastEvent"});
    let freshness = json!({"type": "number", "minimum": 0, "nullable": true,
        "description": "Seconds by which the queryable data trails now: 0 when every message of the events topic is stored, else the age of the oldest one not stored yet; null when the broker did not answer. The pipeline's figure, shared by every project."});
    json!({
        "Counts": {"type": "object", "additionalProperties": false, "required": ["last_hour", "last_day"],
            "properties": {"last_hour": count, "last_day": count}},
        "LastEvent": {"type": "object", "additionalProperties": false,
            "required": ["received_at", "event_time", "queryable_at"], "properties": {
                "received_at": time("When the gateway received the project's newest stored event."),
                "event_time": time("The newest event time among the project's stored events."),
                "queryable_at": time("When the processor last stored events of the project.")}},
        "PartitionStatus": {"type": "object", "additionalProperties": false,
            "required": ["partition", "end_offset", "stored_offset", "lag_messages", "lag_seconds",
                         "oldest_unstored_at", "watermark", "stored_at"],
            "properties": {
                "partition": {"type": "integer", "minimum": 0},
                "end_offset": {"type": "integer", "minimum": 0, "nullable": true, "description": "The offset the next message will get."},
                "stored_offset": {"type": "integer", "minimum": 0, "nullable": true, "description": "Every message below it is queryable; null before the processor stored any."},
                "lag_messages": {"type": "integer", "minimum": 0, "nullable": true},
                "lag_seconds": {"type": "number", "minimum": 0, "nullable": true},
                "oldest_unstored_at": time("Write time of the oldest message not stored yet."),
                "watermark": time("Windows of this partition are closed up to here."),
                "stored_at": time("When the processor last stored this partition's progress.")}},
        "PipelineStatus": {"type": "object", "additionalProperties": false,
            "required": ["consumer_group", "topic", "freshness_seconds", "complete_through", "lag_messages",
                         "lag_seconds", "watermark", "rollups_final_before", "partitions", "broker_error"],
            "properties": {
                "consumer_group": {"type": "string"}, "topic": {"type": "string"},
                "freshness_seconds": freshness,
                "complete_through": time("Every message written to the events topic before this is queryable."),
                "lag_messages": {"type": "integer", "minimum": 0, "nullable": true},
                "lag_seconds": {"type": "number", "minimum": 0, "nullable": true},
                "watermark": time("The lowest watermark of the partitions."),
                "rollups_final_before": time("Rollups of minutes that start before this are final; late events still arrive as corrections."),
                "partitions": {"type": "array", "items": {"$ref": "#/components/schemas/PartitionStatus"}},
                "broker_error": {"type": "string", "nullable": true, "description": "Why the broker's side is missing."}}},
        "ProjectStatus": {"type": "object", "additionalProperties": false,
            "required": ["project_id", "generated_at", "freshness_seconds", "last_event", "dead_letters", "late_events", "pipeline"],
            "properties": {
                "project_id": {"type": "string"},
                "generated_at": {"type": "string", "format": "date-time"},
                "freshness_seconds": freshness,
                "last_event": last_event,
                "dead_letters": counts,
                "late_events": counts,
                "pipeline": {"$ref": "#/components/schemas/PipelineStatus"}}},
        "ServiceHealth": {"type": "object", "additionalProperties": false,
            "required": ["service", "ready", "checks", "causes"], "properties": {
                "service": {"type": "string"},
                "url": {"type": "string", "description": "Where a peer was asked (absent for this API)."},
                "ready": {"type": "boolean"},
                "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
                "causes": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "ProjectSummary": {"type": "object", "additionalProperties": false,
            "required": ["project_id", "last_event", "dead_letters", "late_events"], "properties": {
                "project_id": {"type": "string"}, "last_event": last_event,
                "dead_letters": counts, "late_events": counts}},
        "AdminStatus": {"type": "object", "additionalProperties": false,
            "required": ["generated_at", "freshness_seconds", "pipeline", "services", "projects", "unattributed_dead_letters"],
            "properties": {
                "generated_at": {"type": "string", "format": "date-time"},
                "freshness_seconds": freshness,
                "pipeline": {"$ref": "#/components/schemas/PipelineStatus"},
                "services": {"type": "array", "items": {"$ref": "#/components/schemas/ServiceHealth"}},
                "projects": {"type": "array", "items": {"$ref": "#/components/schemas/ProjectSummary"}},
                "unattributed_dead_letters": counts}}
    })
}

/// `/v1/auth/*`, `/v1/keys*`, `/v1/users*` and `/v1/admin/users*`.
fn accounts_paths() -> Value {
    let open = json!([]);
    let user = json!({"$ref": "#/components/schemas/User"});
    let key = json!({"$ref": "#/components/schemas/Key"});
    let body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
    let optional_body = |schema: Value| json!({"required": false, "content": {"application/json": {"schema": schema}}});
    let ok = |description: &str, schema: &Value| json!({"description": description, "content": {"application/json": {"schema": schema}}});
    let signed_in = ok(
        "Signed in: the tokens, also set as HttpOnly SameSite=Strict cookies (`sluice_access`, `sluice_refresh`).",
        &json!({"$ref": "#/components/schemas/SignedIn"}),
    );
    let bad = |what: &str| {
        error_response(&format!(
            "{what} (`invalid_parameter`: `details.parameter` names the field)."
        ))
    };
    let manage = |own: Value, role: &str| {
        let mut responses = json!({
            "400": bad("A field is missing, unknown or invalid, or a user with several projects named none (`project_required`)"),
            "401": unauthorized(),
            "403": error_response(&format!("The role falls short: {role} (`forbidden`), or a cookie-authenticated change lacks `X-Sluice-Csrf` (`csrf_header_missing`).")),
            "503": unavailable()});
        if let (Some(map), Value::Object(own)) = (responses.as_object_mut(), own) {
            map.extend(own);
        }
        responses
    };
    let key_id =
        json!([{"name": "key_id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let user_id =
        json!([{"name": "user_id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let not_found = error_response("No such key or user in the project (`not_found`).");
    let conflict = error_response("The email or key exists (`conflict`, `key_exists`).");
    let no_content = json!({"description": "Done."});
    let too_many = json!({"description": "Too many attempts (`too_many_attempts`).", "headers": {"Retry-After": retry_after_header(true)},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let email = json!({"type": "string", "format": "email", "maxLength": 254});
    let new_password = json!({"type": "string", "minLength": 10, "maxLength": 1024,
        "description": "At least 10 characters, at most 1024 bytes."});
    let nullable_password = json!({"type": "string", "minLength": 10, "maxLength": 1024, "nullable": true,
        "description": "At least 10 characters, at most 1024 bytes; null or absent: unchanged (or, adding an existing user, none)."});
    json!({
        "/v1/auth/login": {"post": {"summary": "Sign in", "security": open,
            "description": "Email and password. Rate-limited per client IP and per account (429 with Retry-After). Off (401 `sessions_disabled`) unless the operator set --session-secret.",
            "requestBody": body(json!({"type": "object", "required": ["email", "password"], "additionalProperties": false, "properties": {
                "email": {"type": "string"}, "password": {"type": "string"}}})),
            "responses": {"200": signed_in, "400": bad("The body is not the JSON asked for"),
                "401": error_response("Wrong email or password (`invalid_credentials`), or sessions are off (`sessions_disabled`)."),
                "429": too_many,
                "503": unavailable()}}},
        "/v1/auth/refresh": {"post": {"summary": "New tokens for a refresh token", "security": open,
            "description": "The body's `refresh_token`, else the `sluice_refresh` cookie (with `X-Sluice-Csrf`). Each refresh token works once.",
            "requestBody": optional_body(json!({"type": "object", "additionalProperties": false, "properties": {"refresh_token": {"type": "string", "nullable": true}}})),
            "responses": {"200": signed_in, "400": bad("The body is not the JSON asked for"),
                "401": error_response("The refresh token is unknown, used or expired (`invalid_credentials`)."),
                "403": error_response("The cookie came without `X-Sluice-Csrf` (`csrf_header_missing`)."),
                "503": unavailable()}}},
        "/v1/auth/logout": {"post": {"summary": "Sign out", "security": open,
            "description": "Ends the session on every instance within about a second and clears the cookies (204); `everywhere` ends every session of the user.",
            "requestBody": optional_body(json!({"type": "object", "additionalProperties": false, "properties": {
                "everywhere": {"type": "boolean", "description": "End every session of the user, not only this one."}}})),
            "responses": {"204": no_content, "400": bad("The body is not the JSON asked for"), "503": unavailable()}}},
        "/v1/auth/me": {"get": {"summary": "Who is asking",
            "responses": {"200": ok("The signed-in user (or `key`, or `admin_token`).", &json!({"type": "object"})),
                "401": unauthorized(), "503": unavailable()}}},
        "/v1/auth/password": {"post": {"summary": "Change the password",
            "description": "Every other session of the user ends; this one continues with new tokens.",
            "requestBody": body(json!({"type": "object", "required": ["current_password", "new_password"], "additionalProperties": false, "properties": {
                "current_password": {"type": "string"}, "new_password": new_password}})),
            "responses": manage(json!({"200": signed_in, "429": too_many}), "only a signed-in user has a password")}},
        "/v1/keys": {
            "get": {"summary": "The project's keys", "description": "Developers and admins of the project, or an `admin` key.",
                "responses": manage(json!({"200": ok("The keys, without secrets.", &json!({"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": key}}}))}), "developer or admin")},
            "post": {"summary": "Create a key in the project",
                "description": "Scopes ingest, read or webhooks (`admin` only for global admins). The secret is in the answer, this once.",
                "requestBody": body(json!({"$ref": "#/components/schemas/NewKey"})),
                "responses": manage(json!({"201": ok("The key, with its secret this once.", &key), "409": conflict}), "developer or admin")}},
        "/v1/keys/{key_id}": {"delete": {"summary": "Revoke a key of the project", "parameters": key_id,
            "responses": manage(json!({"200": ok("Revoked.", &key), "404": not_found}), "developer or admin")}},
        "/v1/keys/{key_id}/rotate": {"post": {"summary": "Rotate a key of the project", "parameters": key_id,
            "description": "A new key with the old one's scopes, label and limits; the old one works until `old_key_valid_until` (at once when absent).",
            "requestBody": optional_body(json!({"$ref": "#/components/schemas/KeyRotation"})),
            "responses": manage(json!({"201": ok("The new key, with its secret this once.", &key), "404": not_found}), "developer or admin")}},
        "/v1/users": {
            "get": {"summary": "The project's users",
                "responses": manage(json!({"200": ok("Users with a role here (and `role`).", &json!({"type": "object", "required": ["users"], "properties": {"users": {"type": "array", "items": user}}}))}), "admin")},
            "post": {"summary": "Add a user to the project",
                "description": "A new user (with `password`), or an existing one by email (without `password`) given a role here.",
                "requestBody": body(json!({"type": "object", "required": ["email", "role"], "additionalProperties": false, "properties": {
                    "email": email, "password": nullable_password, "role": {"$ref": "#/components/schemas/Role"}}})),
                "responses": manage(json!({"200": ok("An existing user, given the role.", &user), "201": ok("Created.", &user), "409": conflict}), "admin")}},
        "/v1/users/{user_id}": {
            "patch": {"summary": "Change a user's role in the project", "parameters": user_id,
                "requestBody": body(json!({"type": "object", "required": ["role"], "additionalProperties": false, "properties": {"role": {"$ref": "#/components/schemas/Role"}}})),
                "responses": manage(json!({"200": ok("Changed.", &user), "404": not_found}), "admin")},
            "delete": {"summary": "Remove a user from the project", "parameters": user_id,
                "description": "Their role here ends at once, in every session; the account stays.",
                "responses": manage(json!({"204": no_content, "404": not_found}), "admin")}},
        "/v1/admin/users": {
            "get": {"summary": "Every user (global admins)",
                "responses": manage(json!({"200": ok("Every user.", &json!({"type": "object", "required": ["users"], "properties": {"users": {"type": "array", "items": user}}}))}), "a global admin, the admin token or an `admin` key")},
            "post": {"summary": "Create any user (global admins; how the first is made, with the admin token)",
                "requestBody": body(json!({"type": "object", "required": ["email", "password"], "additionalProperties": false, "properties": {
                    "email": email, "password": new_password, "global_admin": {"type": "boolean"},
                    "roles": {"type": "array", "items": {"type": "object", "required": ["project_id", "role"], "additionalProperties": false, "properties": {
                        "project_id": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}, "role": {"$ref": "#/components/schemas/Role"}}}}}})),
                "responses": manage(json!({"201": ok("Created.", &user), "409": conflict}), "a global admin, the admin token or an `admin` key")}},
        "/v1/admin/users/{user_id}": {
            "patch": {"summary": "Change a user (global admins)", "parameters": user_id,
                "description": "A new `password` (every session of the user ends), `global_admin`, `roles` (replacing all), or `end_sessions: true` (signs them out everywhere within about a second).",
                "requestBody": body(json!({"type": "object", "additionalProperties": false, "properties": {
                    "password": nullable_password, "global_admin": {"type": "boolean", "nullable": true}, "end_sessions": {"type": "boolean"},
                    "roles": {"type": "array", "items": {"type": "object", "required": ["project_id", "role"], "additionalProperties": false, "properties": {
                        "project_id": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}, "role": {"$ref": "#/components/schemas/Role"}}}}}})),
                "responses": manage(json!({"200": ok("Changed.", &user), "404": not_found}), "a global admin, the admin token or an `admin` key")},
            "delete": {"summary": "Delete a user (global admins)", "parameters": user_id,
                "description": "The account and every session end.",
                "responses": manage(json!({"204": no_content, "404": not_found}), "a global admin, the admin token or an `admin` key")}},
    })
}

/// The schemas of people: users, roles, and what signing in answers.
fn account_schemas() -> Value {
    json!({
        "Role": {"type": "string", "enum": ["viewer", "developer", "admin"],
            "description": "viewer reads data; developer also manages keys and webhooks; admin also manages users."},
        "User": {"type": "object", "required": ["user_id", "email", "global_admin", "roles", "created_at"], "properties": {
            "user_id": {"type": "string"}, "email": {"type": "string"}, "global_admin": {"type": "boolean"},
            "roles": {"type": "array", "items": {"type": "object", "required": ["project_id", "role"], "properties": {
                "project_id": {"type": "string"}, "role": {"$ref": "#/components/schemas/Role"}}}},
            "role": {"$ref": "#/components/schemas/Role"},
            "created_at": {"type": "string", "format": "date-time"}, "created_by": {"type": "string"},
            "session_id": {"type": "string"}}},
        "SignedIn": {"type": "object", "required": ["access_token", "token_type", "expires_in", "refresh_token", "user"], "properties": {
            "access_token": {"type": "string", "description": "A JWT (HS256), good for `expires_in` seconds."},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer"},
            "refresh_token": {"type": "string", "description": "Works once, for 14 days."},
            "user": {"$ref": "#/components/schemas/User"}}},
    })
}

pub fn spec() -> Value {
    let mut event_parameters = vec![
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_EVENTS, "default": 100}),
            "Events per page.",
        ),
        query(
            "cursor",
            text(),
            "`next_cursor` of the previous page (opaque; any other value is a 400); the range stays that of the first page.",
        ),
    ];
    event_parameters.extend(range_and_filters());
    let mut export_event_parameters = vec![format_parameter()];
    export_event_parameters.extend(range_and_filters());
    let mut export_metric_parameters = vec![format_parameter()];
    export_metric_parameters.extend(metrics_parameters());
    let too_large =
        error_response("More than 200000 cells before having and limit (`result_too_large`).");
    let mut live_errors = error_responses();
    live_errors["400"] = error_response(
        "An unknown parameter (`invalid_parameter`), or not a WebSocket handshake (`websocket_required`).",
    );
    live_errors["426"] =
        error_response("The connection cannot be upgraded (`websocket_required`).");
    live_errors["101"] = json!({"description": "Switching to the WebSocket protocol."});
    let mut all_schemas = schemas();
    for more in [account_schemas(), key_schemas()] {
        if let (Some(all), Value::Object(more)) = (all_schemas.as_object_mut(), more) {
            all.extend(more);
        }
    }
    let mut spec = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Sluice query API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Raw events, metrics, exports and live pushes of one project: the project of the API key (scope `read`), or the one a signed-in user names (`X-Sluice-Project`) and has a role in. Also people: sign-in (/v1/auth), a project's keys and users, and every user for global admins. `/v1/webhooks` is forwarded to the destinations service (see its /docs) when --destinations-url is set. A parameter not listed for an operation is a 400. Every error is {\"error\", \"message\", \"details\"}. See docs/query-api.md."
        },
        "components": {"schemas": all_schemas},
        "paths": {
            "/v1/events": {"get": {
                "summary": "Raw events, newest first",
                "description": "Keyset pagination: pass next_cursor as cursor for the next page; pages do not shift while events arrive.",
                "parameters": event_parameters,
                "responses": with_errors(json!({"200": {"description": "A page of events.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventPage"}}}}}))}},
            "/v1/metrics": {"get": {
                "summary": "Metrics per bucket and group",
                "description": "Served from rollups where they cover the question (filters on type, source and status only; group_by on those and at most one property that the processor rolls up, SLUICE_ROLLUP_PROPERTIES, over the whole range; minutes older than the rollup delay), else from raw events, exactly; `exact=true` insists on raw events. The answer's `source` says which.",
                "parameters": metrics_parameters(),
                "responses": with_errors(json!({
                    "200": {"description": "The rows.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Metrics"}}}},
                    "422": too_large}))}},
            "/v1/export/events": {"get": {
                "summary": "Every event of a range, as a file",
                "description": "Streamed with constant memory, newest first. An error after the first byte ends the body early (the cause is logged).",
                "parameters": export_event_parameters,
                "responses": with_errors(file("Every event of the range"))}},
            "/v1/export/metrics": {"get": {
                "summary": "The rows of /v1/metrics, as a file",
                "parameters": export_metric_parameters,
                "responses": with_errors({
                    let mut file = file("The rows");
                    file["422"] = too_large;
                    file
                })}},
            "/v1/status": {"get": {
                "summary": "Is the data late, and why",
                "description": "The freshness of the queryable data, the processor's lag per partition (messages and seconds), watermarks and rollup coverage, the project's newest stored event, and its late and dead-lettered messages over the last hour and day. Lag and freshness are the pipeline's (partitions are shared by every project); the rest is the key's project's.",
                "responses": with_errors(json!({"200": {"description": "The status.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProjectStatus"}}}}}))}},
            "/v1/admin/status": {"get": {
                "summary": "The pipeline, every project and every service",
                "description": "For operators: the admin token (`--admin-token`) or a key with the `admin` scope. The pipeline as in /v1/status, each project's newest event and counts, dead letters that named no project, and the readiness of this API and of each service in `--status-peers` (checks and causes).",
                "responses": {
                    "200": {"description": "The status.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AdminStatus"}}}},
                    "400": error_response("A query parameter was given (`invalid_parameter`); this endpoint takes none."),
                    "401": unauthorized(),
                    "403": error_response("The key lacks the `admin` scope (`forbidden`)."),
                    "503": unavailable()}}},
            "/v1/live": {"get": {
                "summary": "WebSocket of live metrics",
                "description": "Upgrade to a WebSocket (the key in Authorization, or as `key`). Send {\"action\":\"subscribe\",\"id\":\"a\",\"window\":\"5s\",\"filters\":{\"type\":\"click\"}} or {\"action\":\"unsubscribe\",\"id\":\"a\"}; receive subscribed, unsubscribed, update, heartbeat, lagged and error messages.",
                "security": [{"key": []}, {"basic": []}, {}],
                "parameters": [query("key", text(), "The API key, for clients that cannot set Authorization on a WebSocket.")],
                "responses": live_errors}}
        }
    });
    if let (Some(paths), Value::Object(more)) = (spec["paths"].as_object_mut(), accounts_paths()) {
        paths.extend(more);
    }
    with_shared_parts(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_lists_its_answers_and_no_parameter_twice() {
        let spec = spec();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let mut names: Vec<&str> = operation["parameters"]
                    .as_array()
                    .map(|all| all.iter().map(|p| p["name"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                let count = names.len();
                names.sort_unstable();
                names.dedup();
                assert_eq!(
                    names.len(),
                    count,
                    "{method} {path} names a parameter twice"
                );
                assert!(operation["responses"].is_object(), "{method} {path}");
            }
        }
        let metrics = &spec["paths"]["/v1/metrics"]["get"]["parameters"];
        let named = |name: &str| {
            metrics
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(named("exact")["schema"]["enum"], json!(["true", "false"]));
        assert_eq!(named("source")["schema"]["type"], "string", "a filter");
    }
}
