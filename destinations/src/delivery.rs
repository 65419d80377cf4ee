//! One delivery: an event on its way to one webhook, as it travels between
//! attempts through the retry topic and ends in the dead-letter topic. The
//! body is fixed when the event is matched, so every attempt and every
//! redelivery sends the same bytes under the same `webhook-id`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sluice_schemas::Event;
use sluice_schemas::time_format::format_rfc3339_ms;

use crate::signing::message_id;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// The `webhook-id` header: stable for this event and webhook.
    pub delivery_id: String,
    pub webhook_id: String,
    pub project_id: String,
    pub event_id: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not to be attempted before this time (epoch ms).
    pub not_before_ms: i64,
    /// When the gateway received the event (epoch ms), for the latency from
    /// acceptance to delivery.
    pub received_at_ms: i64,
    /// The request body (JSON).
    pub body: String,
    /// The deliveries a batch holds (see [`crate::batch`]); empty for one
    /// event. Records written before batch mode have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
}

/// One event of a batch: what its settlement, metrics and log need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub delivery_id: String,
    pub event_id: String,
    pub received_at_ms: i64,
}

/// The body of a delivery: `{"type": "event", "webhook_id": ..., "data": EVENT}`.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    webhook_id: &'a str,
    data: EventView<'a>,
}

/// The event as the API shows it: RFC 3339 times, properties as JSON.
#[derive(Serialize)]
struct EventView<'a> {
    event_id: &'a str,
    project_id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    tags: &'a [String],
    properties: &'a RawValue,
}

impl Delivery {
    /// The first delivery of `event` to `webhook_id`, due now.
    pub fn of_event(webhook_id: &str, event: &Event, now_ms: i64) -> Self {
        let empty = RawValue::from_string("{}".into()).expect("valid JSON");
        let properties: Box<RawValue> = serde_json::from_str(&event.properties).unwrap_or(empty);
        let body = Body {
            kind: "event",
            webhook_id,
            data: EventView {
                event_id: &event.event_id,
                project_id: &event.project_id,
                event_type: &event.event_type,
                timestamp: format_rfc3339_ms(event.timestamp_ms),
                received_at: format_rfc3339_ms(event.received_at_ms),
                user_id: event.user_id.as_deref(),
                session_id: event.session_id.as_deref(),
                source: event.source.as_deref(),
                duration_ms: event.duration_ms,
                status: event.status.as_deref(),
                tags: &event.tags,
                properties: &properties,
            },
        };
        Self {
            delivery_id: message_id(webhook_id, &event.event_id),
            webhook_id: webhook_id.to_owned(),
            project_id: event.project_id.clone(),
            event_id: event.event_id.clone(),
            attempts: 0,
            not_before_ms: now_ms,
            received_at_ms: event.received_at_ms,
            body: serde_json::to_string(&body).expect("an event serializes"),
            members: Vec::new(),
        }
    }

    /// The bytes this delivery holds in memory, roughly.
    pub fn size(&self) -> usize {
        self.body.len() + self.delivery_id.len() + self.webhook_id.len() + self.event_id.len() + 64
    }

    /// The events it carries: its members, or 1.
    pub fn events(&self) -> usize {
        self.members.len().max(1)
    }

    /// When each event it carries was received (epoch ms).
    pub fn received_at(&self) -> Vec<i64> {
        if self.members.is_empty() {
            vec![self.received_at_ms]
        } else {
            self.members.iter().map(|m| m.received_at_ms).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_the_event_and_the_id_is_stable() {
        let mut event = Event::minimal(
            "e1",
            "shop",
            "checkout",
            1_700_000_000_000,
            1_700_000_000_500,
        );
        event.properties = r#"{"plan":"pro","n":[1,2]}"#.into();
        let first = Delivery::of_event("wh_1", &event, 5);
        let again = Delivery::of_event("wh_1", &event, 9);
        assert_eq!(first.delivery_id, again.delivery_id);
        assert_eq!(first.body, again.body);
        let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
        assert_eq!(body["type"], "event");
        assert_eq!(body["data"]["type"], "checkout");
        assert_eq!(body["data"]["properties"]["n"][1], 2);
        assert_eq!(body["data"]["timestamp"], "2023-11-14T22:13:20.000Z");
        let text = serde_json::to_string(&first).unwrap();
        assert_eq!(serde_json::from_str::<Delivery>(&text).unwrap(), first);
    }
}
