//! Writing rows into ClickHouse: raw events, rollups and checkpoints.

use clickhouse::{Row, RowOwned, RowWrite};
use serde::Serialize;
use sluice_schemas::Event;

/// One row of `events` (see `sluice_schemas::ddl`), derived only from the
/// message, so that a replayed message writes an identical row.
#[derive(Debug, Clone, Row, Serialize)]
pub struct EventRow {
    pub project_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Event time in whole seconds (ClickHouse `DateTime`).
    pub timestamp: u32,
    pub timestamp_ms: u64,
    pub event_id: String,
    pub user_id: String,
    pub session_id: String,
    pub source: String,
    pub duration_ms: Option<f64>,
    pub status: String,
    pub tags: Vec<String>,
    pub properties: String,
    pub received_at_ms: u64,
    pub client_ip: String,
    pub user_agent: String,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

impl EventRow {
    /// The decoder guarantees non-negative times that fit `DateTime`.
    pub fn new(event: Event, partition: i32, offset: i64) -> Self {
        let timestamp_ms = u64::try_from(event.timestamp_ms).unwrap_or(0);
        Self {
            project_id: event.project_id,
            event_type: event.event_type,
            timestamp: u32::try_from(timestamp_ms / 1000).unwrap_or(u32::MAX),
            timestamp_ms,
            event_id: event.event_id,
            user_id: event.user_id.unwrap_or_default(),
            session_id: event.session_id.unwrap_or_default(),
            source: event.source.unwrap_or_default(),
            duration_ms: event.duration_ms,
            status: event.status.unwrap_or_default(),
            tags: event.tags,
            properties: event.properties,
            received_at_ms: u64::try_from(event.received_at_ms).unwrap_or(0),
            client_ip: event.client_ip.unwrap_or_default(),
            user_agent: event.user_agent.unwrap_or_default(),
            kafka_partition: u32::try_from(partition).unwrap_or(0),
            kafka_offset: u64::try_from(offset).unwrap_or(0),
        }
    }
}

/// Inserts batches of rows into Sluice's tables.
pub struct EventSink {
    client: clickhouse::Client,
}

impl EventSink {
    pub fn new(client: clickhouse::Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// Inserts `rows` into `events` as one INSERT. Retrying a failed call is
    /// safe: rows that did land are collapsed with their copies by
    /// ReplacingMergeTree.
    pub async fn insert(&self, rows: &[EventRow]) -> clickhouse::error::Result<()> {
        self.insert_into("events", rows).await
    }

    /// Inserts `rows` into `table` as one INSERT; every Sluice table collapses
    /// a retried row with its first copy.
    pub async fn insert_into<T>(&self, table: &str, rows: &[T]) -> clickhouse::error::Result<()>
    where
        T: Row + RowOwned + RowWrite,
    {
        let mut insert = self.client.insert::<T>(table).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    }
}
