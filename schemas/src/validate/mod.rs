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

//!
//! - [`raw`]: the JSON scanner (one event split into its fields).
//! - [`fields`]: each field read into its type and held to its rule in
//!   [`crate::rules`].

mod fields;
mod raw;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use serde_json::Value;

use self::fields::{Fields, truncate};
pub use self::raw::RawEvent;
use crate::event::{Event, EventRef};
pub use crate::rules::{FieldError, Limits};

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

/// The fields an event may have as JSON, in the documented order.
pub const KNOWN_FIELDS: &[&str] = &[
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
pub(super) const MAX_FIELDS: usize = 2 * KNOWN_FIELDS.len();

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
pub(super) fn field_slot(key: &str) -> Option<usize> {
    KNOWN_FIELDS.iter().position(|known| *known == key)
}
