//! JSON input to [`Event`]: every rule an incoming event must meet, with an error
//! that names the field and the reason.
//!
//! The same rules serve the HTTP gateway (the project comes from the API key) and
//! JSON written straight to Kafka (the event names its own `project_id`).

use std::fmt;

use serde_json::{Map, Value};

use crate::event::Event;
use crate::time_format::{DAY_MS, parse_rfc3339_ms};

/// Bounds on one event. The defaults are the documented public limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest `event_id` and `type`, in bytes.
    pub max_id_bytes: usize,
    /// Longest value of any other string field, in bytes.
    pub max_string_bytes: usize,
    /// Most tags on one event.
    pub max_tags: usize,
    /// Deepest nesting of objects and arrays inside `properties`.
    pub max_property_depth: usize,
    /// Largest `properties` object, as compact JSON, in bytes.
    pub max_properties_bytes: usize,
    /// How far in the future an event time may lie, against the receiving clock.
    pub max_future_ms: i64,
    /// How far in the past an event time may lie.
    pub max_past_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_id_bytes: 128,
            max_string_bytes: 1024,
            max_tags: 64,
            max_property_depth: 8,
            max_properties_bytes: 24 * 1024,
            max_future_ms: DAY_MS,
            max_past_ms: 30 * DAY_MS,
        }
    }
}

/// Where an event came from: the facts the receiver adds to it.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    /// The project of the API key; `None` when the event must name its own
    /// `project_id` (direct Kafka producers).
    pub project_id: Option<&'a str>,
    /// When the event was received, epoch milliseconds; also the event time
    /// of an event that carries none.
    pub received_at_ms: i64,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The `event_id` given to an event that carries none.
    pub fallback_event_id: String,
}

/// One rule an event broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, e.g. `tags[3]` or `properties`.
    pub field: String,
    /// Why the value was refused.
    pub reason: String,
}

impl FieldError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

const KNOWN_FIELDS: &[&str] = &[
    "event_id",
    "type",
    "timestamp",
    "user_id",
    "session_id",
    "source",
    "duration_ms",
    "status",
    "tags",
    "properties",
    "project_id",
];

/// Validates one JSON event and enriches it with its origin.
///
/// Returns every rule the event broke, not only the first, so a producer can fix
/// them in one go.
pub fn parse_event(
    value: &Value,
    origin: Origin<'_>,
    limits: &Limits,
) -> Result<Event, Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError::new(
            "$",
            format!("an event must be a JSON object, not {}", kind(value)),
        )]);
    };
    let mut errors = Vec::new();
    for key in object.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.as_str(),
                format!("unknown field; expected one of {}", KNOWN_FIELDS.join(", ")),
            ));
        }
    }
    let mut fields = Fields {
        object,
        limits,
        errors: &mut errors,
    };

    let project_id = fields.project_id(origin.project_id);
    let event_id = fields
        .id("event_id", false)
        .unwrap_or(origin.fallback_event_id);
    let event_type = fields.id("type", true).unwrap_or_default();
    let timestamp_ms = fields.timestamp(origin.received_at_ms);
    let user_id = fields.string("user_id");
    let session_id = fields.string("session_id");
    let source = fields.string("source");
    let duration_ms = fields.duration();
    let status = fields.status();
    let tags = fields.tags();
    let properties = fields.properties();

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Event {
        event_id,
        project_id: project_id.unwrap_or_default(),
        event_type,
        timestamp_ms,
        received_at_ms: origin.received_at_ms,
        user_id,
        session_id,
        source,
        duration_ms,
        status,
        tags,
        properties,
        client_ip: origin.client_ip.map(str::to_owned),
        user_agent: origin
            .user_agent
            .map(|agent| truncate(agent, limits.max_string_bytes)),
    })
}

/// Reads fields of one event object, collecting every error on the way.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    limits: &'a Limits,
    errors: &'a mut Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    /// A present, non-null field.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|value| !value.is_null())
    }

    fn project_id(&mut self, from_key: Option<&str>) -> Option<String> {
        let named = self.id("project_id", from_key.is_none());
        match (from_key, named) {
            (Some(key_project), Some(named)) if named != key_project => {
                self.fail(
                    "project_id",
                    "does not match the project of the API key; leave it out",
                );
                None
            }
            (Some(key_project), _) => Some(key_project.to_owned()),
            (None, named) => named,
        }
    }

    /// An identifier: a non-empty string without control characters.
    fn id(&mut self, name: &str, required: bool) -> Option<String> {
        let Some(value) = self.get(name) else {
            if required {
                self.fail(name, "is required");
            }
            return None;
        };
        let Some(text) = value.as_str() else {
            self.fail(name, format!("must be a string, not {}", kind(value)));
            return None;
        };
        if text.is_empty() {
            self.fail(name, "must not be empty");
        } else if text.len() > self.limits.max_id_bytes {
            self.fail(
                name,
                format!("is longer than {} bytes", self.limits.max_id_bytes),
            );
        } else if text.chars().any(char::is_control) {
            self.fail(name, "must not contain control characters");
        } else {
            return Some(text.to_owned());
        }
        None
    }

    fn string(&mut self, name: &str) -> Option<String> {
        let value = self.get(name)?;
        let Some(text) = value.as_str() else {
            self.fail(name, format!("must be a string, not {}", kind(value)));
            return None;
        };
        if text.len() > self.limits.max_string_bytes {
            self.fail(
                name,
                format!("is longer than {} bytes", self.limits.max_string_bytes),
            );
            return None;
        }
        Some(text.to_owned())
    }

    fn timestamp(&mut self, received_at_ms: i64) -> i64 {
        let Some(value) = self.get("timestamp") else {
            return received_at_ms;
        };
        let parsed = match value {
            Value::String(text) => parse_rfc3339_ms(text).ok_or(
                "must be an RFC 3339 date-time such as 2024-05-01T12:00:00.000Z, or epoch milliseconds",
            ),
            Value::Number(number) => number
                .as_i64()
                .ok_or("must be a whole number of milliseconds since the Unix epoch"),
            other => {
                let reason = format!(
                    "must be an RFC 3339 string or epoch milliseconds, not {}",
                    kind(other)
                );
                self.fail("timestamp", reason);
                return received_at_ms;
            }
        };
        match parsed {
            Err(reason) => self.fail("timestamp", reason),
            Ok(ms) if ms > received_at_ms.saturating_add(self.limits.max_future_ms) => self.fail(
                "timestamp",
                format!(
                    "is more than {} ms in the future (check the client clock)",
                    self.limits.max_future_ms
                ),
            ),
            Ok(ms) if ms < received_at_ms.saturating_sub(self.limits.max_past_ms) => self.fail(
                "timestamp",
                format!(
                    "is more than {} days in the past",
                    self.limits.max_past_ms / DAY_MS
                ),
            ),
            Ok(ms) => return ms,
        }
        received_at_ms
    }

    fn duration(&mut self) -> Option<f64> {
        let value = self.get("duration_ms")?;
        match value.as_f64() {
            Some(ms) if ms.is_finite() && (0.0..=1e12).contains(&ms) => Some(ms),
            Some(_) => {
                self.fail("duration_ms", "must be between 0 and 1e12 milliseconds");
                None
            }
            None => {
                let reason = format!("must be a number, not {}", kind(value));
                self.fail("duration_ms", reason);
                None
            }
        }
    }

    /// A status is a short string; integers (HTTP status codes) are accepted as text.
    fn status(&mut self) -> Option<String> {
        match self.get("status")? {
            Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
            Value::String(_) => self.string("status"),
            other => {
                let reason = format!("must be a string or an integer, not {}", kind(other));
                self.fail("status", reason);
                None
            }
        }
    }

    fn tags(&mut self) -> Vec<String> {
        let Some(value) = self.get("tags") else {
            return Vec::new();
        };
        let Some(items) = value.as_array() else {
            let reason = format!("must be an array of strings, not {}", kind(value));
            self.fail("tags", reason);
            return Vec::new();
        };
        if items.len() > self.limits.max_tags {
            let reason = format!("has more than {} tags", self.limits.max_tags);
            self.fail("tags", reason);
            return Vec::new();
        }
        let mut tags = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let field = format!("tags[{index}]");
            match item.as_str() {
                Some(tag) if !tag.is_empty() && tag.len() <= self.limits.max_id_bytes => {
                    tags.push(tag.to_owned());
                }
                Some(_) => self.fail(
                    field,
                    format!("must be 1 to {} bytes long", self.limits.max_id_bytes),
                ),
                None => self.fail(field, format!("must be a string, not {}", kind(item))),
            }
        }
        tags
    }

    fn properties(&mut self) -> String {
        let Some(value) = self.get("properties") else {
            return "{}".to_owned();
        };
        if !value.is_object() {
            let reason = format!("must be a JSON object, not {}", kind(value));
            self.fail("properties", reason);
            return String::new();
        }
        if depth(value) > self.limits.max_property_depth {
            let reason = format!(
                "nests objects and arrays deeper than {} levels",
                self.limits.max_property_depth
            );
            self.fail("properties", reason);
            return String::new();
        }
        let text = value.to_string();
        if text.len() > self.limits.max_properties_bytes {
            let reason = format!(
                "is larger than {} bytes as JSON",
                self.limits.max_properties_bytes
            );
            self.fail("properties", reason);
        }
        text
    }
}

/// Nesting depth of objects and arrays, counting `value` itself as level 1.
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(text: &str, max_bytes: usize) -> String {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn http_origin() -> Origin<'static> {
        Origin {
            project_id: Some("acme"),
            received_at_ms: NOW,
            client_ip: Some("192.0.2.7"),
            user_agent: Some("curl/8"),
            fallback_event_id: "generated".into(),
        }
    }

    fn errors_of(value: &Value) -> Vec<FieldError> {
        parse_event(value, http_origin(), &Limits::default()).unwrap_err()
    }

    #[test]
    fn accepts_a_full_event_and_enriches_it() {
        let event = parse_event(
            &json!({
                "event_id": "e-1", "type": "page_view", "timestamp": "2023-11-14T22:13:20.000Z",
                "user_id": "u1", "session_id": "s1", "source": "web", "duration_ms": 12.5,
                "status": 200, "tags": ["a", "b"], "properties": {"path": "/home", "n": [1, 2]}
            }),
            http_origin(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(event.event_id, "e-1");
        assert_eq!(event.project_id, "acme");
        assert_eq!(event.timestamp_ms, NOW);
        assert_eq!(event.status.as_deref(), Some("200"));
        assert_eq!(event.properties, r#"{"n":[1,2],"path":"/home"}"#);
        assert_eq!(event.client_ip.as_deref(), Some("192.0.2.7"));
    }

    #[test]
    fn fills_defaults_for_a_minimal_event() {
        let event = parse_event(&json!({"type": "x"}), http_origin(), &Limits::default()).unwrap();
        assert_eq!(event.event_id, "generated");
        assert_eq!(event.timestamp_ms, NOW);
        assert_eq!(event.properties, "{}");
        assert!(event.tags.is_empty());
    }

    #[test]
    fn names_every_bad_field() {
        let errors = errors_of(&json!({
            "type": 7, "duration_ms": -1, "tags": ["ok", 3], "colour": "red"
        }));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["colour", "type", "duration_ms", "tags[1]"]);
        assert!(errors[1].reason.contains("must be a string, not a number"));
    }

    #[test]
    fn requires_type_and_an_object() {
        assert_eq!(errors_of(&json!({}))[0].field, "type");
        assert_eq!(errors_of(&json!([1]))[0].field, "$");
    }

    #[test]
    fn bounds_event_time_both_ways() {
        let future = errors_of(&json!({"type": "x", "timestamp": NOW + 2 * DAY_MS}));
        assert!(future[0].reason.contains("future"));
        let past = errors_of(&json!({"type": "x", "timestamp": NOW - 31 * DAY_MS}));
        assert!(past[0].reason.contains("past"));
        let garbage = errors_of(&json!({"type": "x", "timestamp": "tomorrow"}));
        assert_eq!(garbage[0].field, "timestamp");
    }

    #[test]
    fn refuses_deep_properties() {
        let mut deep = json!({"leaf": 1});
        for _ in 0..10 {
            deep = json!({ "k": deep });
        }
        let errors = errors_of(&json!({"type": "x", "properties": deep}));
        assert_eq!(errors[0].field, "properties");
        assert!(errors[0].reason.contains("deeper"));
    }

    #[test]
    fn project_comes_from_the_key_or_the_event() {
        let mismatch = errors_of(&json!({"type": "x", "project_id": "other"}));
        assert_eq!(mismatch[0].field, "project_id");

        let mut kafka = http_origin();
        kafka.project_id = None;
        let missing = parse_event(&json!({"type": "x"}), kafka.clone(), &Limits::default());
        assert_eq!(missing.unwrap_err()[0].field, "project_id");
        let named = parse_event(
            &json!({"type": "x", "project_id": "p9"}),
            kafka,
            &Limits::default(),
        );
        assert_eq!(named.unwrap().project_id, "p9");
    }

    #[test]
    fn refuses_control_characters_in_ids() {
        let errors = errors_of(&json!({"type": "bad\u{0}type"}));
        assert_eq!(errors[0].field, "type");
    }
}
