//! Each known field read into the type it must have, and held to its rule
//! in [`crate::rules`], every error collected on the way.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::raw::{RawKind, json_string};
use super::{FieldError, KNOWN_FIELDS, Limits, field_slot};
use crate::rules;
use crate::time_format::parse_rfc3339_ms;

/// Reads fields of one event object, collecting every error on the way.
pub(super) struct Fields<'a, 'j> {
    /// Raw text of each known field, by its place in [`KNOWN_FIELDS`].
    pub(super) slots: &'a [Option<&'j str>; KNOWN_FIELDS.len()],
    pub(super) limits: &'a Limits,
    pub(super) errors: &'a mut Vec<FieldError>,
}

impl<'j> Fields<'_, 'j> {
    pub(super) fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    /// A present, non-null field: its raw text and kind.
    pub(super) fn get(&self, name: &str) -> Option<(&'j str, RawKind)> {
        let text = self.slots[field_slot(name)?]?;
        match RawKind::of(text) {
            Some(RawKind::Null) | None => None,
            Some(kind) => Some((text, kind)),
        }
    }

    /// A string field, or why it is not one.
    pub(super) fn text(&mut self, name: &str) -> Option<Cow<'j, str>> {
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

    pub(super) fn project_id(&mut self, from_key: Option<&'j str>) -> Option<Cow<'j, str>> {
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
    pub(super) fn id(&mut self, name: &str, required: bool) -> Option<Cow<'j, str>> {
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
    pub(super) fn checked(
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

    pub(super) fn string(&mut self, name: &str) -> Option<Cow<'j, str>> {
        let text = self.text(name)?;
        self.checked(name, text, rules::string)
    }

    pub(super) fn timestamp(&mut self, received_at_ms: i64) -> i64 {
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

    pub(super) fn duration(&mut self) -> Option<f64> {
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
    pub(super) fn status(&mut self) -> Option<Cow<'j, str>> {
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

    pub(super) fn tags(&mut self) -> Vec<Cow<'j, str>> {
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

    pub(super) fn properties(&mut self) -> Cow<'j, str> {
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

pub(super) fn truncate(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
