//! The rules an event's values must meet, in one place for every way an
//! event arrives: JSON over HTTP or straight to Kafka ([`crate::validate`]
//! applies them as it reads each field), and Avro written straight to Kafka
//! ([`check_event`]). Each rule returns why a value breaks it, for the caller
//! to name the field.

use std::borrow::Cow;
use std::fmt;

use crate::event::Event;
use crate::time_format::DAY_MS;

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

/// An identifier (`event_id`, `type`, `project_id`, a tag): not empty, at
/// most `max_id_bytes`, no control characters.
pub fn id(text: &str, limits: &Limits) -> Result<(), String> {
    if text.is_empty() {
        Err("must not be empty".into())
    } else if text.len() > limits.max_id_bytes {
        Err(format!("is longer than {} bytes", limits.max_id_bytes))
    } else if text.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// The longest project id.
pub const MAX_PROJECT_ID_BYTES: usize = 64;

/// A project id, as the admin API creates keys for: 1 to 64 ASCII letters,
/// digits, `_`, `-` or `.`.
pub fn project_id(text: &str) -> Result<(), String> {
    let valid = (1..=MAX_PROJECT_ID_BYTES).contains(&text.len())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to {MAX_PROJECT_ID_BYTES} ASCII letters, digits, '_', '-' or '.'"
        ))
    }
}

/// Any other string field (`user_id`, `session_id`, `source`, `status`).
pub fn string(text: &str, limits: &Limits) -> Result<(), String> {
    if text.len() > limits.max_string_bytes {
        Err(format!("is longer than {} bytes", limits.max_string_bytes))
    } else {
        Ok(())
    }
}

/// An event time, against when the event was received.
pub fn timestamp(ms: i64, received_at_ms: i64, limits: &Limits) -> Result<(), String> {
    if ms > received_at_ms.saturating_add(limits.max_future_ms) {
        Err(format!(
            "is more than {} ms in the future (check the client clock)",
            limits.max_future_ms
        ))
    } else if ms < received_at_ms.saturating_sub(limits.max_past_ms) {
        Err(format!(
            "is more than {} days in the past",
            limits.max_past_ms / DAY_MS
        ))
    } else {
        Ok(())
    }
}

/// A time the tables can hold: from 1970 to 2106 (`DateTime`, seconds in a
/// `UInt32`).
pub fn storable_time(ms: i64) -> Result<(), String> {
    if ms < 0 {
        Err("must not be before 1970".into())
    } else if ms / 1000 > i64::from(u32::MAX) {
        Err("must not be after 2106".into())
    } else {
        Ok(())
    }
}

/// The longest duration, in milliseconds (about 31 years).
pub const MAX_DURATION_MS: f64 = 1e12;

pub fn duration(ms: f64) -> Result<(), String> {
    if ms.is_finite() && (0.0..=MAX_DURATION_MS).contains(&ms) {
        Ok(())
    } else {
        Err("must be between 0 and 1e12 milliseconds".into())
    }
}

pub fn tag_count(count: usize, limits: &Limits) -> Result<(), String> {
    if count > limits.max_tags {
        Err(format!("has more than {} tags", limits.max_tags))
    } else {
        Ok(())
    }
}

pub fn tag(text: &str, limits: &Limits) -> Result<(), String> {
    if text.is_empty() || text.len() > limits.max_id_bytes {
        Err(format!("must be 1 to {} bytes long", limits.max_id_bytes))
    } else {
        Ok(())
    }
}

/// `properties` as stored: `raw` is a JSON object's text (valid JSON),
/// nested at most `max_property_depth` deep, holding only numbers a 64-bit
/// float can hold (a reader could not read a larger one back), and at most
/// `max_properties_bytes` once compact. Returns it compact, and on failure
/// the path of the offending value (`properties.a.b[2]`) with the reason.
pub fn properties<'a>(raw: &'a str, limits: &Limits) -> Result<Cow<'a, str>, FieldError> {
    let scan = scan(raw, limits.max_property_depth);
    if scan.too_deep {
        return Err(FieldError::new(
            "properties",
            format!(
                "nests objects and arrays deeper than {} levels",
                limits.max_property_depth
            ),
        ));
    }
    if let Some(at) = scan.number_out_of_range {
        let end = raw[at..]
            .find([',', '}', ']', ' ', '\t', '\n', '\r'])
            .map_or(raw.len(), |found| at + found);
        let number = &raw[at..end];
        let shown = if number.len() > 24 {
            format!("{}... ({} characters)", &number[..20], number.len())
        } else {
            number.to_owned()
        };
        return Err(FieldError::new(
            path_at(raw, at, "properties"),
            format!(
                "the number {shown} is out of range: JSON numbers must fit a 64-bit float (at most about 1.8e308)"
            ),
        ));
    }
    let text = if scan.spaced {
        Cow::Owned(compacted(raw))
    } else {
        Cow::Borrowed(raw)
    };
    if text.len() > limits.max_properties_bytes {
        return Err(FieldError::new(
            "properties",
            format!(
                "is larger than {} bytes as JSON",
                limits.max_properties_bytes
            ),
        ));
    }
    Ok(text)
}

/// What one pass over a JSON text found.
struct Scan {
    too_deep: bool,
    spaced: bool,
    /// Where the first number that a 64-bit float cannot hold starts.
    number_out_of_range: Option<usize>,
}

/// Longest number that always fits a 64-bit float without parsing it: 15
/// digits, a sign and a point, no exponent.
const SURELY_FINITE_CHARS: usize = 17;

fn scan(raw: &str, max_depth: usize) -> Scan {
    let bytes = raw.as_bytes();
    let mut found = Scan {
        too_deep: false,
        spaced: false,
        number_out_of_range: None,
    };
    let (mut depth, mut at) = (0usize, 0);
    while let Some(&byte) = bytes.get(at) {
        at += 1;
        match byte {
            b'"' => at = string_end(bytes, at),
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    found.too_deep = true;
                    return found;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b' ' | b'\t' | b'\n' | b'\r' => found.spaced = true,
            b'-' | b'0'..=b'9' => {
                let start = at - 1;
                while bytes.get(at).is_some_and(|byte| {
                    matches!(byte, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                }) {
                    at += 1;
                }
                let number = &raw[start..at];
                let surely_finite = number.len() <= SURELY_FINITE_CHARS
                    && !number.bytes().any(|byte| matches!(byte, b'e' | b'E'));
                if !surely_finite
                    && found.number_out_of_range.is_none()
                    && !number.parse::<f64>().is_ok_and(f64::is_finite)
                {
                    found.number_out_of_range = Some(start);
                }
            }
            _ => {}
        }
    }
    found
}

/// `raw` without whitespace between tokens. Every index is at an ASCII byte
/// (or the end), so a character boundary.
fn compacted(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        let token_end = raw[at..]
            .find(['"', ' ', '\t', '\n', '\r'])
            .map_or(raw.len(), |found| at + found);
        out.push_str(&raw[at..token_end]);
        at = match bytes.get(token_end) {
            Some(b'"') => {
                let end = string_end(bytes, token_end + 1);
                out.push_str(&raw[token_end..end]);
                end
            }
            Some(_) => token_end + 1,
            None => token_end,
        };
    }
    out
}

/// Where the JSON string whose content starts at `from` ends: just past its
/// closing quote (or the end of `bytes`). Jumps from quote or backslash to
/// the next, as most of a string is neither.
pub(crate) fn string_end(bytes: &[u8], mut from: usize) -> usize {
    while let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[from.min(bytes.len())..]) {
        let at = from + found;
        if bytes[at] == b'"' {
            return at + 1;
        }
        from = at + 2;
    }
    bytes.len()
}

/// The path, from `root`, of the value that starts at byte `offset` of the
/// JSON text `raw`: `root.key[3].other`. Keys that are not plain words are
/// quoted: `root["a b"]`.
pub fn path_at(raw: &str, offset: usize, root: &str) -> String {
    enum Step {
        /// In an object: the last key read, if any.
        Key(Option<String>),
        Index(usize),
    }
    let bytes = raw.as_bytes();
    let mut steps: Vec<Step> = Vec::new();
    let mut at = 0;
    while at < offset.min(bytes.len()) {
        match bytes[at] {
            b'"' => {
                let end = string_end(bytes, at + 1);
                // A string right after `{` or `,` inside an object is a key.
                if let Some(Step::Key(key)) = steps.last_mut()
                    && raw[end..].trim_start().starts_with(':')
                {
                    *key = Some(
                        serde_json::from_str::<String>(&raw[at..end])
                            .unwrap_or_else(|_| raw[at + 1..end.saturating_sub(1)].to_owned()),
                    );
                }
                at = end;
                continue;
            }
            b'{' => steps.push(Step::Key(None)),
            b'[' => steps.push(Step::Index(0)),
            b'}' | b']' => {
                steps.pop();
            }
            b',' => {
                if let Some(Step::Index(index)) = steps.last_mut() {
                    *index += 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    let mut path = root.to_owned();
    for step in steps {
        match step {
            Step::Key(None) => {}
            Step::Key(Some(key))
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '$') =>
            {
                path.push('.');
                path.push_str(&key);
            }
            Step::Key(Some(key)) => {
                path.push_str(&format!("[{}]", serde_json::Value::String(key)));
            }
            Step::Index(index) => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// Holds an event read from Avro (written straight to Kafka, so not checked
/// by the gateway) to the rules an event sent over HTTP or as JSON meets;
/// every broken rule is listed.
pub fn check_event(event: &Event, limits: &Limits) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut check = |field: &str, result: Result<(), String>| {
        if let Err(reason) = result {
            errors.push(FieldError::new(field, reason));
        }
    };
    check("event_id", id(&event.event_id, limits));
    check(
        "project_id",
        id(&event.project_id, limits).and_then(|()| project_id(&event.project_id)),
    );
    check("type", id(&event.event_type, limits));
    check("received_at", storable_time(event.received_at_ms));
    check(
        "timestamp",
        storable_time(event.timestamp_ms)
            .and_then(|()| timestamp(event.timestamp_ms, event.received_at_ms, limits)),
    );
    for (field, value) in [
        ("user_id", &event.user_id),
        ("session_id", &event.session_id),
        ("source", &event.source),
        ("status", &event.status),
    ] {
        if let Some(value) = value {
            check(field, string(value, limits));
        }
    }
    if let Some(ms) = event.duration_ms {
        check("duration_ms", duration(ms));
    }
    check("tags", tag_count(event.tags.len(), limits));
    for (index, value) in event.tags.iter().enumerate() {
        check(&format!("tags[{index}]"), tag(value, limits));
    }
    // Avro carries `properties` as text: it must be a JSON object first.
    let is_object = event.properties.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(&event.properties).is_ok();
    if !is_object {
        errors.push(FieldError::new("properties", "must be a JSON object"));
    } else if let Err(error) = properties(&event.properties, limits) {
        errors.push(error);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_value_at_an_offset() {
        let raw = r#"{"a":1,"b":{"c":[1,2,{"d e":3}]},"f":4}"#;
        assert_eq!(
            path_at(raw, raw.find('4').unwrap(), "properties"),
            "properties.f"
        );
        assert_eq!(
            path_at(raw, raw.find('3').unwrap(), "properties"),
            "properties.b.c[2][\"d e\"]"
        );
        assert_eq!(path_at(raw, raw.find('2').unwrap(), "x"), "x.b.c[1]");
        assert_eq!(path_at(raw, 1, "x"), "x");
    }

    #[test]
    fn numbers_a_float_cannot_hold_are_refused_with_their_path() {
        let limits = Limits::default();
        for (raw, path) in [
            (r#"{"x":1e999}"#, "properties.x"),
            (r#"{"a":[0, -1e400]}"#, "properties.a[1]"),
            (
                &format!(r#"{{"big":{}}}"#, "9".repeat(5000)),
                "properties.big",
            ),
        ] {
            let error = properties(raw, &limits).unwrap_err();
            assert_eq!(error.field, path, "{raw}");
            assert!(error.reason.contains("out of range"), "{}", error.reason);
            assert!(error.reason.len() < 200, "{}", error.reason);
        }
        for fine in [
            r#"{"x":1.7976931348623157e308,"y":-5e-324,"z":12345678901234567890}"#,
            r#"{"s":"1e999 in a string","n":[1,2.5,-3e10]}"#,
        ] {
            assert_eq!(properties(fine, &limits).unwrap(), fine);
        }
        assert_eq!(
            properties("{ \"a\" : [1, 2] }", &limits).unwrap(),
            r#"{"a":[1,2]}"#
        );
    }

    #[test]
    fn project_ids_follow_the_admin_apis_rule() {
        assert!(project_id("shop-1.eu_west").is_ok());
        for bad in ["", "bad project!", "é", &"p".repeat(65)] {
            assert!(project_id(bad).is_err(), "{bad}");
        }
    }
}
