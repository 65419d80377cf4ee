//! JSON input to [`Event`]: every rule an incoming event must meet, with an error
//! that names the field and the reason.
//!
//! The same rules serve the HTTP gateway (the project comes from the API key) and
//! JSON written straight to Kafka (the event names its own `project_id`).
//!
//! This runs once per event on the hot path, so it reads the JSON text in one
//! pass without building a tree: the top-level object is split into its
//! fields as borrowed raw JSON, each field is parsed into the type it must
//! have, and `properties` is kept as text (checked for depth and size, and
//! compacted only when it holds whitespace).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::{Event, EventRef};
use crate::rules;
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
    pub fallback_event_id: FallbackId,
}

/// How an event without an `event_id` gets one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackId {
    /// A fresh UUIDv7, made only when needed.
    UuidV7,
    /// A deterministic id, e.g. from the Kafka position of the message.
    Given(String),
}

impl FallbackId {
    fn make(self) -> String {
        match self {
            Self::UuidV7 => uuid::Uuid::now_v7().to_string(),
            Self::Given(id) => id,
        }
    }
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
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
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

/// Fields an event may have before it is refused whole rather than field by
/// field: room for every known field and as many mistakes.
const MAX_FIELDS: usize = 2 * KNOWN_FIELDS.len();

/// Validates one JSON event and enriches it with its origin.
///
/// Returns every rule the event broke, not only the first, so a producer can fix
/// them in one go.
pub fn parse_event_json(
    text: &str,
    origin: Origin<'_>,
    limits: &Limits,
) -> Result<Event, Vec<FieldError>> {
    validate_event_json(text, origin, limits).map(EventRef::into_owned)
}

/// Like [`parse_event_json`], borrowing the event's text from `text` and
/// `origin` wherever it can.
pub fn validate_event_json<'a>(
    text: &'a str,
    origin: Origin<'a>,
    limits: &Limits,
) -> Result<EventRef<'a>, Vec<FieldError>> {
    match serde_json::from_str::<RawEvent<'_>>(text) {
        Ok(event) => validate_raw_event(&event, origin, limits),
        Err(error) => Err(vec![FieldError::new(
            "$",
            format!("is not valid JSON: {error}"),
        )]),
    }
}

/// One event as JSON, split into its top-level fields but not read further:
/// what a batch body parses into in one pass (`Vec<RawEvent>`), so that no
/// event's text is scanned twice.
#[derive(Debug)]
pub enum RawEvent<'a> {
    /// The fields of an object, in order, each as borrowed raw JSON.
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    /// Anything but an object: refused, naming what it is.
    Other(&'static str),
}

impl RawEvent<'_> {
    /// Bytes of the event as JSON text, not counting whitespace between
    /// its top-level fields (nor fields past the most an event may have:
    /// such an event is refused anyway).
    pub fn json_len(&self) -> usize {
        match self {
            Self::Object(fields) => {
                let members: usize = fields
                    .iter()
                    .map(|(key, raw)| key.len() + raw.get().len() + 3)
                    .sum();
                // Braces, and commas between members.
                2 + members + fields.len().saturating_sub(1)
            }
            Self::Other(_) => 0,
        }
    }
}

/// Validates an event already split into its fields (see [`RawEvent`]) and
/// enriches it with its origin: the gateway's hot path.
pub fn validate_raw_event<'a>(
    event: &RawEvent<'a>,
    origin: Origin<'a>,
    limits: &Limits,
) -> Result<EventRef<'a>, Vec<FieldError>> {
    let object = match event {
        RawEvent::Object(fields) => fields,
        RawEvent::Other(kind) => {
            return Err(vec![FieldError::new(
                "$",
                format!("an event must be a JSON object, not {kind}"),
            )]);
        }
    };
    if object.len() > MAX_FIELDS {
        return Err(vec![FieldError::new(
            "$",
            format!(
                "has more than {MAX_FIELDS} fields; an event has at most these {}: {}",
                KNOWN_FIELDS.len(),
                KNOWN_FIELDS.join(", ")
            ),
        )]);
    }
    let mut errors = Vec::new();
    let mut slots = [None; KNOWN_FIELDS.len()];
    for (key, raw) in object {
        match field_slot(key) {
            None => errors.push(FieldError::new(
                key.as_ref(),
                format!("unknown field; expected one of {}", KNOWN_FIELDS.join(", ")),
            )),
            Some(slot) if slots[slot].is_some() => {
                errors.push(FieldError::new(key.as_ref(), "appears more than once"));
            }
            Some(slot) => slots[slot] = Some(raw.get()),
        }
    }
    let mut fields = Fields {
        slots: &slots,
        limits,
        errors: &mut errors,
    };

    let project_id = fields.project_id(origin.project_id);
    let event_id = fields.id("event_id", false);
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
    Ok(EventRef {
        event_id: event_id.unwrap_or_else(|| Cow::Owned(origin.fallback_event_id.make())),
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
        client_ip: origin.client_ip.map(Cow::Borrowed),
        user_agent: origin
            .user_agent
            .map(|agent| Cow::Borrowed(truncate(agent, limits.max_string_bytes))),
    })
}

/// Like [`parse_event_json`], for an event already held as a JSON tree.
pub fn parse_event(
    value: &Value,
    origin: Origin<'_>,
    limits: &Limits,
) -> Result<Event, Vec<FieldError>> {
    parse_event_json(&value.to_string(), origin, limits)
}

/// Where a field's raw text goes in [`Fields`]: its place in [`KNOWN_FIELDS`].
fn field_slot(key: &str) -> Option<usize> {
    KNOWN_FIELDS.iter().position(|known| *known == key)
}

impl<'de: 'a, 'a> Deserialize<'de> for RawEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for EventVisitor<'a> {
            type Value = RawEvent<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                // Past MAX_FIELDS the event is refused whole: later fields
                // are read (they must be valid JSON) but not kept, so a
                // hostile event of a million fields costs no memory.
                let mut fields = Vec::new();
                while let Some(Text(key)) = map.next_key()? {
                    if fields.capacity() == 0 {
                        // An event's usual fields in one allocation (`{}` needs none).
                        fields.reserve(KNOWN_FIELDS.len() + 1);
                    }
                    if fields.len() < MAX_FIELDS + 1 {
                        fields.push((key, map.next_value()?));
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(RawEvent::Object(fields))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(RawEvent::Other(RawKind::Array.name()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Null.name()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Boolean.name()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Number.name()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Number.name()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Number.name()))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::String.name()))
            }
        }
        deserializer.deserialize_any(EventVisitor(std::marker::PhantomData))
    }
}

/// A JSON string, borrowed from the input unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The text of a raw JSON value that is a string. Without escapes it is the
/// raw text between the quotes (a raw value is valid JSON, so that holds no
/// quote and no control character); with escapes serde undoes them.
fn json_string(raw: &str) -> Result<Cow<'_, str>, serde_json::Error> {
    match raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) if !inner.contains('\\') => Ok(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<Text<'_>>(raw).map(|Text(text)| text),
    }
}

/// What kind of JSON value a raw value is, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl RawKind {
    fn of(raw: &str) -> Option<Self> {
        Some(match raw.as_bytes().first()? {
            b'n' => Self::Null,
            b't' | b'f' => Self::Boolean,
            b'"' => Self::String,
            b'[' => Self::Array,
            b'{' => Self::Object,
            b'-' | b'0'..=b'9' => Self::Number,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean => "a boolean",
            Self::Number => "a number",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        }
    }
}

/// Reads fields of one event object, collecting every error on the way.
struct Fields<'a, 'j> {
    /// Raw text of each known field, by its place in [`KNOWN_FIELDS`].
    slots: &'a [Option<&'j str>; KNOWN_FIELDS.len()],
    limits: &'a Limits,
    errors: &'a mut Vec<FieldError>,
}

impl<'j> Fields<'_, 'j> {
    fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    /// A present, non-null field: its raw text and kind.
    fn get(&self, name: &str) -> Option<(&'j str, RawKind)> {
        let text = self.slots[field_slot(name)?]?;
        match RawKind::of(text) {
            Some(RawKind::Null) | None => None,
            Some(kind) => Some((text, kind)),
        }
    }

    /// A string field, or why it is not one.
    fn text(&mut self, name: &str) -> Option<Cow<'j, str>> {
        let (raw, kind) = self.get(name)?;
        if kind != RawKind::String {
            self.fail(name, format!("must be a string, not {}", kind.name()));
            return None;
        }
        match json_string(raw) {
            Ok(text) => Some(text),
            Err(error) => {
                self.fail(name, format!("is not a valid string: {error}"));
                None
            }
        }
    }

    fn project_id(&mut self, from_key: Option<&'j str>) -> Option<Cow<'j, str>> {
        let named = self
            .id("project_id", from_key.is_none())
            .and_then(|named| self.checked("project_id", named, |text, _| rules::project_id(text)));
        match (from_key, named) {
            (Some(key_project), Some(named)) if named != key_project => {
                self.fail(
                    "project_id",
                    "does not match the project of the API key; leave it out",
                );
                None
            }
            (Some(key_project), _) => Some(Cow::Borrowed(key_project)),
            (None, named) => named,
        }
    }

    /// An identifier: a non-empty string without control characters.
    fn id(&mut self, name: &str, required: bool) -> Option<Cow<'j, str>> {
        if self.get(name).is_none() {
            if required {
                self.fail(name, "is required");
            }
            return None;
        }
        let text = self.text(name)?;
        self.checked(name, text, rules::id)
    }

    /// `text` if it meets `rule`, else `None` with the reason recorded.
    fn checked(
        &mut self,
        name: &str,
        text: Cow<'j, str>,
        rule: impl Fn(&str, &Limits) -> Result<(), String>,
    ) -> Option<Cow<'j, str>> {
        match rule(&text, self.limits) {
            Ok(()) => Some(text),
            Err(reason) => {
                self.fail(name, reason);
                None
            }
        }
    }

    fn string(&mut self, name: &str) -> Option<Cow<'j, str>> {
        let text = self.text(name)?;
        self.checked(name, text, rules::string)
    }

    fn timestamp(&mut self, received_at_ms: i64) -> i64 {
        let Some((raw, kind)) = self.get("timestamp") else {
            return received_at_ms;
        };
        let parsed = match kind {
            RawKind::String => self
                .text("timestamp")
                .and_then(|text| parse_rfc3339_ms(&text))
                .ok_or(
                    "must be an RFC 3339 date-time such as 2024-05-01T12:00:00.000Z, or epoch milliseconds",
                ),
            RawKind::Number => serde_json::from_str::<i64>(raw)
                .map_err(|_| "must be a whole number of milliseconds since the Unix epoch"),
            other => {
                let reason = format!(
                    "must be an RFC 3339 string or epoch milliseconds, not {}",
                    other.name()
                );
                self.fail("timestamp", reason);
                return received_at_ms;
            }
        };
        let checked = parsed.map_err(str::to_owned).and_then(|ms| {
            rules::timestamp(ms, received_at_ms, self.limits)
                .and_then(|()| rules::storable_time(ms))
                .map(|()| ms)
        });
        match checked {
            Ok(ms) => ms,
            Err(reason) => {
                self.fail("timestamp", reason);
                received_at_ms
            }
        }
    }

    fn duration(&mut self) -> Option<f64> {
        let (raw, kind) = self.get("duration_ms")?;
        if kind != RawKind::Number {
            let reason = format!("must be a number, not {}", kind.name());
            self.fail("duration_ms", reason);
            return None;
        }
        // A number no float holds (1e999) is out of the range as well.
        let ms = serde_json::from_str::<f64>(raw).unwrap_or(f64::INFINITY);
        match rules::duration(ms).map(|()| ms) {
            Ok(ms) => Some(ms),
            Err(reason) => {
                self.fail("duration_ms", reason);
                None
            }
        }
    }

    /// A status is a short string; integers (HTTP status codes) are accepted as text.
    fn status(&mut self) -> Option<Cow<'j, str>> {
        let (raw, kind) = self.get("status")?;
        match kind {
            RawKind::String => self.string("status"),
            RawKind::Number if serde_json::from_str::<i64>(raw).is_ok() => Some(Cow::Borrowed(raw)),
            other => {
                let reason = format!("must be a string or an integer, not {}", other.name());
                self.fail("status", reason);
                None
            }
        }
    }

    fn tags(&mut self) -> Vec<Cow<'j, str>> {
        let Some((raw, kind)) = self.get("tags") else {
            return Vec::new();
        };
        let items = match (kind, serde_json::from_str::<Vec<&'j RawValue>>(raw)) {
            (RawKind::Array, Ok(items)) => items,
            _ => {
                let reason = format!("must be an array of strings, not {}", kind.name());
                self.fail("tags", reason);
                return Vec::new();
            }
        };
        if let Err(reason) = rules::tag_count(items.len(), self.limits) {
            self.fail("tags", reason);
            return Vec::new();
        }
        let mut tags = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let field = || format!("tags[{index}]");
            let kind = RawKind::of(item.get()).unwrap_or(RawKind::Null);
            match json_string(item.get()) {
                Ok(tag) => match rules::tag(&tag, self.limits) {
                    Ok(()) => tags.push(tag),
                    Err(reason) => self.fail(field(), reason),
                },
                Err(_) => self.fail(field(), format!("must be a string, not {}", kind.name())),
            }
        }
        tags
    }

    fn properties(&mut self) -> Cow<'j, str> {
        let Some((raw, kind)) = self.get("properties") else {
            return Cow::Borrowed("{}");
        };
        if kind != RawKind::Object {
            let reason = format!("must be a JSON object, not {}", kind.name());
            self.fail("properties", reason);
            return Cow::Borrowed("");
        }
        match rules::properties(raw, self.limits) {
            Ok(text) => text,
            Err(error) => {
                self.errors.push(error);
                Cow::Borrowed("")
            }
        }
    }
}

fn truncate(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
            fallback_event_id: FallbackId::Given("generated".into()),
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
    fn brackets_and_quotes_inside_strings_are_not_structure() {
        let raw = r#"{"a":"[[[[ \\\" {{{{ \\","b":["]]]]"],"c":"\\\\"}"#;
        let limits = |depth| Limits {
            max_property_depth: depth,
            ..Limits::default()
        };
        assert_eq!(
            rules::properties(raw, &limits(2)).unwrap(),
            Cow::<str>::Borrowed(raw)
        );
        assert!(
            rules::properties(raw, &limits(1)).is_err(),
            "the array is level 2"
        );
        let spaced = r#"{ "a" : "x \" y" , "b" : [ 1 ] }"#;
        assert_eq!(
            rules::properties(spaced, &limits(2)).unwrap(),
            r#"{"a":"x \" y","b":[1]}"#
        );
        let pretty = "{\n\t\"é ü\": [ true,\r\n null ],\"\\\\\" : \"\\\" \"\n}";
        assert_eq!(
            rules::properties(pretty, &limits(2)).unwrap(),
            "{\"é ü\":[true,null],\"\\\\\":\"\\\" \"}"
        );
        assert_eq!(rules::string_end(br#"ab\"c"d"#, 0), 6);
        assert_eq!(rules::string_end(br#"ab\"#, 0), 3);
        assert_eq!(rules::string_end(b"abc", 0), 3);
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
    fn reads_raw_text_in_one_pass() {
        let text = r#"{ "type" : "caf\u00e9", "properties" : { "a b" : [ 1 , "x \" y" ] },
                       "tags": ["t"], "status": 404, "timestamp": 1699999999000 }"#;
        let event = parse_event_json(text, http_origin(), &Limits::default()).unwrap();
        assert_eq!(event.event_type, "café");
        assert_eq!(event.properties, r#"{"a b":[1,"x \" y"]}"#);
        assert_eq!(event.status.as_deref(), Some("404"));
        assert_eq!(event.timestamp_ms, 1_699_999_999_000);
        let errors = parse_event_json(
            r#"{"type":"a","type":"b"}"#,
            http_origin(),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(errors[0].reason, "appears more than once");
        let wide = format!(
            "{{{}}}",
            (0..30)
                .map(|i| format!(r#""k{i}":1"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let errors = parse_event_json(&wide, http_origin(), &Limits::default()).unwrap_err();
        assert_eq!((errors.len(), errors[0].field.as_str()), (1, "$"));
        let errors = parse_event_json("[1]", http_origin(), &Limits::default()).unwrap_err();
        assert!(errors[0].reason.contains("not an array"));
        let uuid = parse_event_json(
            r#"{"type":"x"}"#,
            Origin {
                fallback_event_id: FallbackId::UuidV7,
                ..http_origin()
            },
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(&uuid.event_id)
                .unwrap()
                .get_version_num(),
            7
        );
    }

    #[test]
    fn a_batch_splits_its_events_in_one_pass_with_the_same_verdicts() {
        let items = [
            json!({"type": "a", "event_id": "e1", "properties": {"x": [1, {"y": "z"}]}, "tags": ["t"]}),
            json!({"type": "b", "status": 404, "duration_ms": 1.5, "user_id": "caf\u{e9}"}),
            json!({"type": 7, "colour": "red"}),
            json!(7),
            json!("text"),
            json!([1, [2]]),
            json!(null),
            json!(true),
            json!({}),
        ];
        let body = Value::Array(items.to_vec()).to_string();
        let raw_events: Vec<RawEvent<'_>> = serde_json::from_str(&body).unwrap();
        assert_eq!(raw_events.len(), items.len());
        for (raw, item) in raw_events.iter().zip(&items) {
            let text = item.to_string();
            let one_pass = validate_raw_event(raw, http_origin(), &Limits::default());
            let alone = validate_event_json(&text, http_origin(), &Limits::default());
            assert_eq!(one_pass, alone, "{text}");
            if item.is_object() {
                assert_eq!(raw.json_len(), text.len(), "{text}");
            }
        }
        let duplicated: RawEvent<'_> = serde_json::from_str(r#"{"type":"a","type":"b"}"#).unwrap();
        let errors = validate_raw_event(&duplicated, http_origin(), &Limits::default());
        assert_eq!(errors.unwrap_err()[0].reason, "appears more than once");
    }

    /// Any JSON value, nested a few levels, with strings that need escapes.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z\"\\\\/\t\u{1}\u{7f}\u{85}é😀 ]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((field_name(), inner), 0..5)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// Mostly the event's own field names, sometimes another.
    fn field_name() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            4 => proptest::sample::select(KNOWN_FIELDS).prop_map(str::to_owned),
            1 => "[a-z_]{1,8}",
        ]
    }

    /// An event-like object: known fields with values of any type.
    fn any_event() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let members = || proptest::collection::vec((field_name(), any_json()), 0..8);
        prop_oneof![
            // Valid more often than not: a string type, most fields absent or null.
            4 => (members(), "[a-z\u{e9}\\\\\"]{1,8}").prop_map(|(members, kind)| {
                let mut event: serde_json::Map<String, Value> = members
                    .into_iter()
                    .filter(|(_, value)| value.is_string() || value.is_null())
                    .collect();
                event.insert("type".to_owned(), Value::String(kind));
                Value::Object(event)
            }),
            4 => members().prop_map(|members| Value::Object(members.into_iter().collect())),
            1 => any_json(),
        ]
    }

    proptest::proptest! {
        #[test]
        fn one_pass_batches_judge_every_event_as_it_would_be_judged_alone(
            events in proptest::collection::vec(any_event(), 1..6),
            pretty in proptest::bool::ANY,
        ) {
            let body = if pretty {
                serde_json::to_string_pretty(&events).unwrap()
            } else {
                serde_json::to_string(&events).unwrap()
            };
            let raw_events: Vec<RawEvent<'_>> = serde_json::from_str(&body).unwrap();
            proptest::prop_assert_eq!(raw_events.len(), events.len());
            for (raw, event) in raw_events.iter().zip(&events) {
                let alone = event.to_string();
                let one_pass = validate_raw_event(raw, http_origin(), &Limits::default());
                let by_itself = validate_event_json(&alone, http_origin(), &Limits::default());
                proptest::prop_assert_eq!(&one_pass, &by_itself, "{}", alone);
                // Escapes undone, nothing lost: the owned event reads the same.
                if let Ok(valid) = one_pass {
                    proptest::prop_assert_eq!(
                        Some(valid.event_type.as_ref()),
                        event["type"].as_str()
                    );
                }
                // Whitespace inside a field's value counts, between fields not.
                if event.is_object() && !pretty {
                    proptest::prop_assert_eq!(raw.json_len(), alone.len());
                } else if event.is_object() {
                    proptest::prop_assert!(raw.json_len() >= alone.len());
                }
            }
        }
    }

    #[test]
    fn borrowed_and_owned_events_agree() {
        let text =
            r#"{"type":"a\"b","event_id":"e","properties":{"k":1},"tags":["x"],"source":"s"}"#;
        let borrowed = validate_event_json(text, http_origin(), &Limits::default()).unwrap();
        assert!(
            matches!(borrowed.properties, Cow::Borrowed(_)),
            "compact properties are not copied"
        );
        assert!(
            matches!(borrowed.event_type, Cow::Owned(_)),
            "escapes are undone"
        );
        let owned = parse_event_json(text, http_origin(), &Limits::default()).unwrap();
        assert_eq!(borrowed.partition_key(), owned.partition_key());
        assert_eq!(
            crate::avro::encode_event(&borrowed),
            crate::avro::encode_event(&owned)
        );
        assert_eq!(borrowed.into_owned(), owned);
        assert_eq!(owned.clone().into_ref().into_owned(), owned);
    }

    #[test]
    fn refuses_control_characters_in_ids() {
        let errors = errors_of(&json!({"type": "bad\u{0}type"}));
        assert_eq!(errors[0].field, "type");
    }
}
