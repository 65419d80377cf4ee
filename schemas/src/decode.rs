//! Topic values to events: Avro from the gateway or from direct producers, or
//! JSON from direct producers. Whatever cannot be read says why. Every
//! consumer of the events topic (the stream processor, the destinations
//! service) reads it through here, so they agree on what is an event: a
//! message the processor dead-letters is one no destination delivers.

use crate::avro::{decode_event, is_single_object};
use crate::rules::{self, check_event};
use crate::validate::parse_event_json;
use crate::{Event, FallbackId, FieldError, Limits, Origin};

/// The header of a watermark marker (see the stream processor's `marker`
/// module): an empty message that closes idle windows, never an event.
pub const WATERMARK_HEADER: &str = "sluice.watermark";

/// Whether a message with these header names and this value is a watermark
/// marker rather than an event.
pub fn is_marker<'a>(
    mut header_names: impl Iterator<Item = &'a str>,
    value: Option<&[u8]>,
) -> bool {
    value.is_none_or(<[u8]>::is_empty) && header_names.any(|name| name == WATERMARK_HEADER)
}

/// Where a message sits in Kafka: enough to name it, and to derive stable
/// defaults from it.
#[derive(Debug, Clone, Copy)]
pub struct MessageAt<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The message's Kafka timestamp, epoch milliseconds.
    pub timestamp_ms: Option<i64>,
}

/// Reads one topic value. The result depends only on the message, so a replay
/// of the same message yields the same event.
pub fn decode(value: Option<&[u8]>, at: MessageAt<'_>, limits: &Limits) -> Result<Event, String> {
    let value = value
        .filter(|bytes| !bytes.is_empty())
        .ok_or("empty message value")?;
    if is_single_object(value) {
        let event = decode_event(value).map_err(|error| format!("Avro: {error}"))?;
        // Avro from direct producers bypassed the gateway: the same rules.
        check_event(&event, limits).map_err(|errors| invalid(&errors))?;
        return Ok(event);
    }
    if value.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{') {
        let json = std::str::from_utf8(value).map_err(|error| format!("JSON: {error}"))?;
        let received_at_ms = at
            .timestamp_ms
            .ok_or("JSON value without a Kafka timestamp")?;
        let origin = Origin {
            project_id: None,
            received_at_ms,
            client_ip: None,
            user_agent: None,
            fallback_event_id: FallbackId::Given(format!(
                "{}-{}-{}",
                at.topic, at.partition, at.offset
            )),
        };
        return parse_event_json(json, origin, limits).map_err(|errors| invalid(&errors));
    }
    Err("neither Avro single-object encoding (C3 01) nor a JSON object".to_owned())
}

/// The project an unreadable message names, when it names a valid one, for
/// the dead-letter counts of `/v1/status`; empty otherwise.
pub fn named_project(value: Option<&[u8]>) -> String {
    let Some(value) = value else {
        return String::new();
    };
    let named = if is_single_object(value) {
        decode_event(value).ok().map(|event| event.project_id)
    } else {
        serde_json::from_slice::<serde_json::Value>(value)
            .ok()
            .and_then(|json| Some(json.get("project_id")?.as_str()?.to_owned()))
    };
    named
        .filter(|project| rules::project_id(project).is_ok())
        .unwrap_or_default()
}

/// The dead letter's reason: every broken rule, each with its field.
fn invalid(errors: &[FieldError]) -> String {
    let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("invalid event: {}", reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use crate::avro::encode_event;

    use super::*;

    const AT: MessageAt<'static> = MessageAt {
        topic: "events",
        partition: 2,
        offset: 41,
        timestamp_ms: Some(1_700_000_000_000),
    };

    fn event() -> Event {
        Event::minimal("e1", "p", "click", 1_700_000_000_000, 1_700_000_000_001)
    }

    #[test]
    fn markers_are_empty_messages_with_the_watermark_header() {
        assert!(is_marker(["x", WATERMARK_HEADER].into_iter(), None));
        assert!(is_marker([WATERMARK_HEADER].into_iter(), Some(b"")));
        assert!(!is_marker([WATERMARK_HEADER].into_iter(), Some(b"{}")));
        assert!(!is_marker(["x"].into_iter(), None));
    }

    #[test]
    fn reads_avro() {
        let decoded = decode(Some(&encode_event(&event())), AT, &Limits::default()).unwrap();
        assert_eq!(decoded, event());
    }

    #[test]
    fn reads_json_with_stable_defaults() {
        let json = br#" {"type": "click", "project_id": "p"}"#;
        let first = decode(Some(json), AT, &Limits::default()).unwrap();
        let again = decode(Some(json), AT, &Limits::default()).unwrap();
        assert_eq!(first, again);
        assert_eq!(first.event_id, "events-2-41");
        assert_eq!(first.timestamp_ms, 1_700_000_000_000);
    }

    #[test]
    fn names_the_project_of_an_unreadable_message_when_it_can() {
        let mut late_rule = event();
        late_rule.properties = "[1]".into();
        assert_eq!(named_project(Some(&encode_event(&late_rule))), "p");
        assert_eq!(
            named_project(Some(br#"{"project_id": "p2", "type": 5}"#)),
            "p2"
        );
        for unnamed in [
            &b"{\"project_id\": 5}"[..],
            b"{\"project_id\": \"a b\"}",
            b"{",
            b"",
            &[0xC3, 0x01, 1],
        ] {
            assert_eq!(named_project(Some(unnamed)), "", "{unnamed:?}");
        }
        assert_eq!(named_project(None), "");
    }

    #[test]
    fn explains_what_it_cannot_read() {
        let reason = |value: &[u8]| decode(Some(value), AT, &Limits::default()).unwrap_err();
        assert!(reason(b"").contains("empty"));
        assert!(reason(b"hello").contains("neither"));
        assert!(reason(b"{\"type\":").contains("JSON"));
        assert!(reason(br#"{"type":"x"}"#).contains("project_id"));
        let mut bad = event();
        bad.project_id.clear();
        assert!(reason(&encode_event(&bad)).contains("project_id"));
        assert!(reason(&[0xC3, 0x01, 1, 2]).contains("Avro"));
        assert_eq!(named_project(Some(&encode_event(&bad))), "");
        for properties in ["[1]", "{\"open\": ", "  "] {
            let mut bad = event();
            bad.properties = properties.into();
            assert!(
                reason(&encode_event(&bad)).contains("properties"),
                "{properties}"
            );
        }
    }
}
