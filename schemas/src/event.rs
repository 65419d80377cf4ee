//! The enriched event: what the gateway publishes and the processor stores.

use std::borrow::Cow;

/// One analytics event after validation and enrichment.
///
/// This is the record on the events topic (see `avro/event.avsc`) and the source
/// of one row in the ClickHouse `events` table. Every field is deterministic once
/// the gateway has published the event, which is what makes replays idempotent.
///
/// Generic over how text is held: [`Event`] owns it, [`EventRef`] borrows it
/// from the request it was validated from (the gateway's hot path).
#[derive(Debug, Clone, PartialEq)]
pub struct EventOf<S> {
    /// Client-chosen idempotency key, else a UUIDv7 made by the gateway.
    pub event_id: S,
    /// Owner of the event.
    pub project_id: S,
    /// Event type, e.g. `page_view` (`type` on the wire).
    pub event_type: S,
    /// Event time, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// When Sluice first received the event, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    pub user_id: Option<S>,
    pub session_id: Option<S>,
    pub source: Option<S>,
    pub duration_ms: Option<f64>,
    pub status: Option<S>,
    pub tags: Vec<S>,
    /// A JSON object, as compact text (`{}` when the producer sent none).
    pub properties: S,
    pub client_ip: Option<S>,
    pub user_agent: Option<S>,
}

/// An event that owns its text.
pub type Event = EventOf<String>;

/// An event that borrows its text where it can.
pub type EventRef<'a> = EventOf<Cow<'a, str>>;

impl<S> EventOf<S> {
    /// The same event with every text field converted by `convert`.
    pub fn map_text<T>(self, convert: impl Fn(S) -> T) -> EventOf<T> {
        EventOf {
            event_id: convert(self.event_id),
            project_id: convert(self.project_id),
            event_type: convert(self.event_type),
            timestamp_ms: self.timestamp_ms,
            received_at_ms: self.received_at_ms,
            user_id: self.user_id.map(&convert),
            session_id: self.session_id.map(&convert),
            source: self.source.map(&convert),
            duration_ms: self.duration_ms,
            status: self.status.map(&convert),
            tags: self.tags.into_iter().map(&convert).collect(),
            properties: convert(self.properties),
            client_ip: self.client_ip.map(&convert),
            user_agent: self.user_agent.map(&convert),
        }
    }
}

impl<S: AsRef<str>> EventOf<S> {
    /// The Kafka message key: retries of one `event_id` in one project always
    /// hash to the same partition, so deduplication stays partition-local.
    pub fn partition_key(&self) -> String {
        let mut key = String::new();
        self.write_partition_key(&mut key);
        key
    }

    /// Appends [`Self::partition_key`] to `out`, without allocating one.
    pub fn write_partition_key(&self, out: &mut String) {
        out.push_str(self.project_id.as_ref());
        out.push('/');
        out.push_str(self.event_id.as_ref());
    }
}

impl EventRef<'_> {
    /// The same event, owning its text.
    pub fn into_owned(self) -> Event {
        self.map_text(Cow::into_owned)
    }
}

impl Event {
    /// An event with only what every event has; no optional field, no tags,
    /// `properties` `{}`.
    pub fn minimal(
        event_id: impl Into<String>,
        project_id: impl Into<String>,
        event_type: impl Into<String>,
        timestamp_ms: i64,
        received_at_ms: i64,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            project_id: project_id.into(),
            event_type: event_type.into(),
            timestamp_ms,
            received_at_ms,
            user_id: None,
            session_id: None,
            source: None,
            duration_ms: None,
            status: None,
            tags: Vec::new(),
            properties: "{}".into(),
            client_ip: None,
            user_agent: None,
        }
    }

    /// The same event as an [`EventRef`], without copying the text.
    pub fn into_ref(self) -> EventRef<'static> {
        self.map_text(Cow::Owned)
    }
}
