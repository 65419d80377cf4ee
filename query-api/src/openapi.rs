//! The query API's OpenAPI 3.0 document, served at `/openapi.json` and
//! rendered at `/docs`. Written out here, next to the handlers it describes,
//! rather than derived: the parameters are parsed by hand (repeatable
//! `property.KEY`, comma lists), which derive macros describe poorly.

use serde_json::{Value, json};
use sluice_runtime::docs::{error_response, with_shared_parts};

use crate::metrics::request::Metric;

fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false,
           "schema": {"type": kind}, "description": description})
}

fn range_and_filters() -> Vec<Value> {
    vec![
        query(
            "from",
            "string",
            "Start (inclusive): RFC 3339 (encode `+` as %2B) or epoch ms. Default: 24 h before `to`.",
        ),
        query(
            "to",
            "string",
            "End (exclusive): RFC 3339 or epoch ms. Default: now.",
        ),
        query("type", "string", "Only events of this type."),
        query("source", "string", "Only events from this source."),
        query("status", "string", "Only events with this status."),
        query("user_id", "string", "Only events of this user."),
        query("session_id", "string", "Only events of this session."),
        query("tag", "string", "Only events carrying this tag."),
        json!({"name": "property.KEY", "in": "query", "required": false, "schema": {"type": "string"},
               "description": "Repeatable: the property KEY equals the value (a string, or the JSON text of a number or boolean). Keys: 1-128 of A-Z a-z 0-9 _ - . $ :"}),
    ]
}

fn metrics_parameters() -> Vec<Value> {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let mut parameters = vec![
        query(
            "interval",
            "string",
            "Bucket width: 1m, 5m, 15m, 1h or 1d. Default 1h. The range widens to whole buckets.",
        ),
        query(
            "metrics",
            "string",
            &format!("Comma list of: {}. Default count.", names.join(", ")),
        ),
        query(
            "group_by",
            "string",
            "Comma list (at most 4) of type, source, status, property.KEY.",
        ),
        query(
            "having",
            "string",
            "Comma list of METRIC OP NUMBER (OP: > >= < <= = !=), all must hold; each metric must be requested.",
        ),
        query(
            "order_by",
            "string",
            "Comma list of bucket, a group_by dimension or a requested metric; a leading - sorts descending. Default: bucket, then groups.",
        ),
        query("limit", "integer", "Most rows, 1 to 100000. Default 10000."),
        query(
            "utc_offset",
            "string",
            "Fixed offset whose midnight starts 1h and 1d buckets, e.g. +05:30 (encode + as %2B). Default Z.",
        ),
        query(
            "source",
            "string",
            "auto (rollups where they cover the question) or raw (always exact). Default auto.",
        ),
    ];
    parameters.extend(range_and_filters());
    parameters
}

fn error_responses() -> Value {
    json!({
        "400": error_response("A parameter is invalid (`invalid_parameter`)."),
        "401": error_response("No key, or an unknown or revoked one (`unauthorized`)."),
        "403": error_response("The key lacks the `read` scope (`forbidden`)."),
        "503": error_response("ClickHouse or the key store is not available (`storage_unavailable`, `keys_loading`)."),
    })
}

fn with_errors(ok: Value) -> Value {
    let mut responses = error_responses();
    if let (Some(map), Value::Object(ok)) = (responses.as_object_mut(), ok) {
        map.extend(ok);
    }
    responses
}

fn file(description: &str) -> Value {
    json!({"200": {"description": description, "headers": {
        "Content-Disposition": {"schema": {"type": "string"}, "description": "attachment; filename=\"sluice-...\""}},
        "content": {"text/csv": {}, "application/json": {}, "application/x-ndjson": {}}}})
}

fn format_parameter() -> Value {
    query(
        "format",
        "string",
        "csv (default), json or ndjson. CSV text cells starting with = + - @ tab or CR get a leading '.",
    )
}

pub fn spec() -> Value {
    let mut event_parameters = vec![
        query(
            "limit",
            "integer",
            "Events per page, 1 to 1000. Default 100.",
        ),
        query(
            "cursor",
            "string",
            "`next_cursor` of the previous page; the range stays that of the first page.",
        ),
    ];
    event_parameters.extend(range_and_filters());
    let mut export_event_parameters = vec![format_parameter()];
    export_event_parameters.extend(range_and_filters());
    let mut export_metric_parameters = vec![format_parameter()];
    export_metric_parameters.extend(metrics_parameters());
    with_shared_parts(json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Sluice query API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Raw events, metrics, exports and live pushes of one project: the project of the API key (scope `read`). Every error is {\"error\", \"message\", \"details\"}. See docs/query-api.md."
        },
        "components": {
            "schemas": {
                "Event": {"type": "object", "properties": {
                    "event_id": {"type": "string"}, "project_id": {"type": "string"}, "type": {"type": "string"},
                    "timestamp": {"type": "string", "format": "date-time"}, "received_at": {"type": "string", "format": "date-time"},
                    "user_id": {"type": "string", "nullable": true}, "session_id": {"type": "string", "nullable": true},
                    "source": {"type": "string", "nullable": true}, "duration_ms": {"type": "number", "nullable": true},
                    "status": {"type": "string", "nullable": true}, "tags": {"type": "array", "items": {"type": "string"}},
                    "properties": {"type": "object"}, "client_ip": {"type": "string", "nullable": true},
                    "user_agent": {"type": "string", "nullable": true}}},
                "EventPage": {"type": "object", "required": ["events", "next_cursor", "from", "to"], "properties": {
                    "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                    "next_cursor": {"type": "string", "nullable": true},
                    "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"}}},
                "Metrics": {"type": "object", "required": ["interval", "from", "to", "source", "error_bounds", "columns", "rows"], "properties": {
                    "interval": {"type": "string"}, "from": {"type": "string", "format": "date-time"},
                    "to": {"type": "string", "format": "date-time"}, "utc_offset_minutes": {"type": "integer"},
                    "source": {"type": "string", "enum": ["rollups", "raw", "rollups+raw"]},
                    "raw_from": {"type": "string", "format": "date-time", "description": "With rollups+raw: where raw events take over."},
                    "error_bounds": {"type": "object", "description": "Per approximate metric served from rollups: kind and value."},
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "rows": {"type": "array", "items": {"type": "object", "description": "bucket, the group_by dimensions, then the metrics."}}}}
            }
        },
        "paths": {
            "/v1/events": {"get": {
                "summary": "Raw events, newest first",
                "description": "Keyset pagination: pass next_cursor as cursor for the next page; pages do not shift while events arrive.",
                "parameters": event_parameters,
                "responses": with_errors(json!({"200": {"description": "A page of events.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventPage"}}}}}))}},
            "/v1/metrics": {"get": {
                "summary": "Metrics per bucket and group",
                "description": "Served from rollups where they cover the question (filters and group_by on type, source, status; buckets older than the rollup delay), else from raw events, exactly.",
                "parameters": metrics_parameters(),
                "responses": with_errors(json!({
                    "200": {"description": "The rows.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Metrics"}}}},
                    "422": error_response("More than 200000 cells before having and limit (`result_too_large`).")}))}},
            "/v1/export/events": {"get": {
                "summary": "Every event of a range, as a file",
                "description": "Streamed with constant memory, newest first.",
                "parameters": export_event_parameters,
                "responses": with_errors(file("The file."))}},
            "/v1/export/metrics": {"get": {
                "summary": "The rows of /v1/metrics, as a file",
                "parameters": export_metric_parameters,
                "responses": with_errors(file("The file."))}},
            "/v1/live": {"get": {
                "summary": "WebSocket of live metrics",
                "description": "Upgrade to a WebSocket. Send {\"action\":\"subscribe\",\"id\":\"a\",\"window\":\"5s\",\"filters\":{\"type\":\"click\"}} or {\"action\":\"unsubscribe\",\"id\":\"a\"}; receive subscribed, unsubscribed, update, heartbeat, lagged and error messages.",
                "parameters": [query("key", "string", "The API key, for clients that cannot set Authorization on a WebSocket.")],
                "responses": with_errors(json!({"101": {"description": "Switching to the WebSocket protocol."}}))}}
        }
    }))
}
