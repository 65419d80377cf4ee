//! The Segment-compatible surface: Segment (and RudderStack, Jitsu) messages
//! mapped onto Sluice events, so existing SDKs can point at Sluice unchanged.
//!
//! | Segment                           | Sluice event                                   |
//! |-----------------------------------|------------------------------------------------|
//! | `messageId`                       | `event_id` (a UUIDv7 when absent)              |
//! | `track` `event`                   | `type`                                         |
//! | `page`/`screen`/`identify`/`group`/`alias` | `type` `$page`/`$screen`/`$identify`/`$group`/`$alias` |
//! | `userId`, else `anonymousId`      | `user_id`                                      |
//! | `context.sessionId`, else `properties.session_id` | `session_id`                   |
//! | `context.library.name`            | `source` (`segment` when absent)               |
//! | `properties` (track/page/screen), `traits` (identify/group) | `properties`         |
//! | `name`, `category` (page/screen)  | `properties.name`, `properties.category` when not set |
//! | everything else Segment defines   | `properties.$segment` (`anonymousId`, `userId`, `context`, `traits`, `groupId`, `previousId`, `integrations`) |
//! | `timestamp` (or `originalTimestamp`) and `sentAt` | `timestamp` = received + (`timestamp` - `sentAt`) |
//!
//! The clock-skew correction is Segment's own: the client's clock may be
//! wrong, but the gap between when the event happened and when it was sent
//! is right. Without `sentAt` the client's `timestamp` is taken as is;
//! without a timestamp the event happened when Sluice received it.

use serde_json::{Map, Value, json};
use sluice_schemas::FieldError;
use sluice_schemas::time_format::parse_rfc3339_ms;

/// Segment's single calls: the call, its name, and analytics.js's
/// one-letter name for it.
pub const CALLS: [(Call, &str, &str); 6] = [
    (Call::Track, "track", "t"),
    (Call::Identify, "identify", "i"),
    (Call::Page, "page", "p"),
    (Call::Screen, "screen", "s"),
    (Call::Group, "group", "g"),
    (Call::Alias, "alias", "a"),
];

/// Where a Segment batch is taken: Segment's batch and import paths, and
/// analytics.js's one-letter one.
pub const BATCH_PATHS: [&str; 3] = ["/v1/batch", "/v1/import", "/v1/b"];

/// Where a Segment single call is taken: Segment's path, analytics.js's
/// one-letter one, and Jitsu's two (browser and server-to-server).
pub fn call_paths(name: &str, short: &str) -> [String; 4] {
    [
        format!("/v1/{name}"),
        format!("/v1/{short}"),
        format!("/api/s/{name}"),
        format!("/api/s/s2s/{name}"),
    ]
}

/// The Segment call a message makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl Call {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "track" => Self::Track,
            "identify" => Self::Identify,
            "page" => Self::Page,
            "screen" => Self::Screen,
            "group" => Self::Group,
            "alias" => Self::Alias,
            _ => return None,
        })
    }

    fn event_type(self) -> Option<&'static str> {
        match self {
            Self::Track => None,
            Self::Identify => Some("$identify"),
            Self::Page => Some("$page"),
            Self::Screen => Some("$screen"),
            Self::Group => Some("$group"),
            Self::Alias => Some("$alias"),
        }
    }
}

/// Fields a `/v1/batch` body gives every message that lacks them.
#[derive(Debug, Default, Clone)]
pub struct BatchDefaults<'a> {
    pub context: Option<&'a Value>,
    pub sent_at: Option<&'a Value>,
}

/// A Segment message as a Sluice event object, ready for validation; errors
/// name Segment's fields.
pub fn to_event(
    message: &Value,
    call: Option<Call>,
    defaults: &BatchDefaults<'_>,
    received_at_ms: i64,
) -> Result<Value, Vec<FieldError>> {
    let Some(message) = message.as_object() else {
        return Err(vec![error("$", "a message must be a JSON object")]);
    };
    let call = match call {
        Some(call) => call,
        None => match message.get("type").and_then(Value::as_str) {
            Some(name) => Call::parse(name).ok_or_else(|| {
                vec![error(
                    "type",
                    "must be one of track, identify, page, screen, group, alias",
                )]
            })?,
            None => return Err(vec![error("type", "is required in a batch message")]),
        },
    };
    let mut errors = Vec::new();
    let mut event = Map::new();
    let get = |name: &str| message.get(name).filter(|v| !v.is_null());
    let context = get("context").or(defaults.context);

    if let Some(id) = get("messageId") {
        event.insert("event_id".into(), id.clone());
    }
    match call.event_type() {
        Some(kind) => {
            event.insert("type".into(), kind.into());
        }
        None => match get("event") {
            Some(name) => {
                event.insert("type".into(), name.clone());
            }
            None => errors.push(error("event", "is required for track")),
        },
    }
    if let Some(user) = get("userId").or_else(|| get("anonymousId")) {
        event.insert("user_id".into(), id_text(user));
    }
    let session = context
        .and_then(|c| c.get("sessionId"))
        .or_else(|| get("properties").and_then(|p| p.get("session_id")))
        .filter(|v| !v.is_null());
    if let Some(session) = session {
        event.insert("session_id".into(), id_text(session));
    }
    let library = context
        .and_then(|c| c.pointer("/library/name"))
        .and_then(Value::as_str)
        .unwrap_or("segment");
    event.insert("source".into(), library.into());
    match corrected_timestamp(message, defaults, received_at_ms) {
        Ok(Some(ms)) => {
            event.insert("timestamp".into(), ms.into());
        }
        Ok(None) => {}
        Err(field_error) => errors.push(field_error),
    }

    let mut properties = match call {
        Call::Identify | Call::Group => get("traits"),
        _ => get("properties"),
    }
    .cloned()
    .unwrap_or_else(|| json!({}));
    let Some(props) = properties.as_object_mut() else {
        let field = if matches!(call, Call::Identify | Call::Group) {
            "traits"
        } else {
            "properties"
        };
        errors.push(error(field, "must be a JSON object"));
        return Err(errors);
    };
    if matches!(call, Call::Page | Call::Screen) {
        for name in ["name", "category"] {
            if let Some(value) = get(name) {
                props.entry(name).or_insert_with(|| value.clone());
            }
        }
    }
    let mut segment = Map::new();
    for name in [
        "anonymousId",
        "userId",
        "traits",
        "groupId",
        "previousId",
        "integrations",
    ] {
        if let Some(value) = get(name) {
            if name == "traits" && matches!(call, Call::Identify | Call::Group) {
                continue;
            }
            segment.insert(name.into(), value.clone());
        }
    }
    if let Some(context) = context {
        segment.insert("context".into(), context.clone());
    }
    if !segment.is_empty() {
        props.insert("$segment".into(), Value::Object(segment));
    }
    event.insert("properties".into(), properties);

    if errors.is_empty() {
        Ok(Value::Object(event))
    } else {
        Err(errors)
    }
}

/// Renames the fields of Sluice's validation errors to the Segment fields
/// they came from. (Only `track` sets `type`, from `event`.)
pub fn segment_field_errors(errors: Vec<FieldError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|mut e| {
            let renamed = match e.field.as_str() {
                "event_id" => Some("messageId"),
                "type" => Some("event"),
                "user_id" => Some("userId"),
                "session_id" => Some("context.sessionId"),
                "source" => Some("context.library.name"),
                _ => None,
            };
            if let Some(renamed) = renamed {
                e.field = renamed.to_owned();
            }
            e
        })
        .collect()
}

fn corrected_timestamp(
    message: &Map<String, Value>,
    defaults: &BatchDefaults<'_>,
    received_at_ms: i64,
) -> Result<Option<i64>, FieldError> {
    let get = |name: &str| message.get(name).filter(|v| !v.is_null());
    let happened = match get("timestamp") {
        Some(value) => Some(("timestamp", value)),
        None => get("originalTimestamp").map(|value| ("originalTimestamp", value)),
    };
    let Some((field, happened)) = happened else {
        return Ok(None);
    };
    let happened = time_ms(field, happened)?;
    let Some(sent_at) = get("sentAt").or(defaults.sent_at) else {
        return Ok(Some(happened));
    };
    let sent_at = time_ms("sentAt", sent_at)?;
    Ok(Some(
        received_at_ms.saturating_add(happened.saturating_sub(sent_at)),
    ))
}

fn time_ms(field: &str, value: &Value) -> Result<i64, FieldError> {
    value.as_str().and_then(parse_rfc3339_ms).ok_or_else(|| {
        error(
            field,
            "must be an ISO 8601 date-time such as 2024-05-01T12:00:00.000Z",
        )
    })
}

/// Ids as text: some SDKs send numeric user ids.
fn id_text(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        other => other.clone(),
    }
}

fn error(field: &str, reason: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: i64 = 1_700_000_100_000;

    fn map(message: impl Into<Value>, call: Option<Call>) -> Result<Value, Vec<FieldError>> {
        to_event(&message.into(), call, &BatchDefaults::default(), RECEIVED)
    }

    #[test]
    fn maps_an_analytics_node_track_call() {
        let event = map(
            json!({
                "type": "track",
                "event": "Order Completed",
                "userId": "u-1",
                "anonymousId": "a-1",
                "messageId": "node-abc-1",
                "properties": {"revenue": 9.5},
                "context": {"library": {"name": "analytics-node", "version": "6.0.0"}},
                "timestamp": "2023-11-14T22:13:10.000Z",
                "sentAt": "2023-11-14T22:13:20.000Z",
                "_metadata": {"nodeVersion": "20"}
            }),
            None,
        )
        .unwrap();
        assert_eq!(event["event_id"], "node-abc-1");
        assert_eq!(event["type"], "Order Completed");
        assert_eq!(event["user_id"], "u-1");
        assert_eq!(event["source"], "analytics-node");
        // happened 10 s before it was sent: 10 s before Sluice received it
        assert_eq!(event["timestamp"], RECEIVED - 10_000);
        assert_eq!(event["properties"]["revenue"], 9.5);
        assert_eq!(event["properties"]["$segment"]["anonymousId"], "a-1");
        assert_eq!(
            event["properties"]["$segment"]["context"]["library"]["version"],
            "6.0.0"
        );
    }

    #[test]
    fn maps_identify_page_and_alias() {
        let identify = map(
            json!({"userId": 42, "traits": {"plan": "pro"}, "timestamp": "2023-11-14T22:13:10.123456+00:00"}),
            Some(Call::Identify),
        )
        .unwrap();
        assert_eq!(identify["type"], "$identify");
        assert_eq!(identify["user_id"], "42");
        assert_eq!(identify["properties"]["plan"], "pro");
        assert_eq!(identify["timestamp"], 1_699_999_990_123_i64);
        assert_eq!(identify["source"], "segment");

        let page = map(
            json!({"anonymousId": "a", "name": "Home", "properties": {"path": "/"}}),
            Some(Call::Page),
        )
        .unwrap();
        assert_eq!(page["type"], "$page");
        assert_eq!(page["user_id"], "a");
        assert_eq!(page["properties"]["name"], "Home");
        assert!(page.get("timestamp").is_none());

        let alias = map(
            json!({"userId": "new", "previousId": "old"}),
            Some(Call::Alias),
        )
        .unwrap();
        assert_eq!(alias["properties"]["$segment"]["previousId"], "old");
    }

    #[test]
    fn names_the_segment_field_at_fault() {
        let errors = map(json!({"type": "track", "timestamp": "yesterday"}), None).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["event", "timestamp"]);
        assert_eq!(
            map(json!({"type": "launch"}), None).unwrap_err()[0].field,
            "type"
        );
        assert_eq!(map(json!({}), None).unwrap_err()[0].field, "type");
        assert_eq!(
            map(json!([1]), Some(Call::Track)).unwrap_err()[0].field,
            "$"
        );
        assert_eq!(
            map(json!({"traits": [1]}), Some(Call::Identify)).unwrap_err()[0].field,
            "traits"
        );
        let renamed = segment_field_errors(vec![
            error("event_id", "too long"),
            error("type", "too long"),
        ]);
        assert_eq!(renamed[0].field, "messageId");
        assert_eq!(renamed[1].field, "event");
    }

    #[test]
    fn batch_defaults_fill_in_context_and_sent_at() {
        let context = json!({"library": {"name": "analytics-python"}});
        let sent_at = json!("2023-11-14T22:13:20Z");
        let defaults = BatchDefaults {
            context: Some(&context),
            sent_at: Some(&sent_at),
        };
        let event = to_event(
            &json!({"type": "track", "event": "x", "userId": "u", "timestamp": "2023-11-14T22:13:19Z"}),
            None,
            &defaults,
            RECEIVED,
        )
        .unwrap();
        assert_eq!(event["source"], "analytics-python");
        assert_eq!(event["timestamp"], RECEIVED - 1000);
    }
}
