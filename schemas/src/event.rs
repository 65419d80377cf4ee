//! The enriched event: what the gateway publishes and the processor stores.

/// One analytics event after validation and enrichment.
///
/// This is the record on the events topic (see `avro/event.avsc`) and the source
/// of one row in the ClickHouse `events` table. Every field is deterministic once
/// the gateway has published the event, which is what makes replays idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Client-chosen idempotency key, else a UUIDv7 made by the gateway.
    pub event_id: String,
    /// Owner of the event.
    pub project_id: String,
    /// Event type, e.g. `page_view` (`type` on the wire).
    pub event_type: String,
    /// Event time, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// When Sluice first received the event, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub source: Option<String>,
    pub duration_ms: Option<f64>,
    pub status: Option<String>,
    pub tags: Vec<String>,
    /// A JSON object, as compact text (`{}` when the producer sent none).
    pub properties: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Event {
    /// The Kafka message key: retries of one `event_id` in one project always
    /// hash to the same partition, so deduplication stays partition-local.
    pub fn partition_key(&self) -> String {
        format!("{}/{}", self.project_id, self.event_id)
    }
}
