//! The deliveries log in ClickHouse (`webhook_deliveries`): a row per
//! attempt, written in batches about once a second, and read by the
//! management API with the project bound into every query.
//!
//! The log is a record of what happened, not the delivery mechanism (that is
//! Kafka): while ClickHouse does not answer, rows wait in a bounded buffer,
//! and past it are dropped and counted (`sluice_destination_log_rows_dropped`).
//! The buffer is bounded by rows and by bytes: a row carries its delivery's
//! body (redelivery reads it back), up to the gateway's 32 KiB per event.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::DestinationMetrics;

/// Rows buffered for the next insert, at most.
const BUFFERED_ROWS: usize = 20_000;
/// Bytes of rows buffered (waiting in the channel or in a batch), at most.
pub const BUFFERED_BYTES: usize = 64 * 1024 * 1024;
/// What a row holds besides its strings, roughly.
const ROW_OVERHEAD: usize = 160;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct LogRow {
    pub project_id: String,
    pub webhook_id: String,
    pub delivery_id: String,
    pub event_id: String,
    pub attempt: u32,
    pub status: String,
    pub response_status: u16,
    pub latency_ms: u32,
    pub error: String,
    /// `DateTime`: seconds.
    pub at: u32,
    pub at_ms: u64,
    pub kafka_partition: u32,
    pub body: String,
}

impl LogRow {
    /// The bytes it holds, about.
    fn weight(&self) -> usize {
        ROW_OVERHEAD
            + self.project_id.len()
            + self.webhook_id.len()
            + self.delivery_id.len()
            + self.event_id.len()
            + self.status.len()
            + self.error.len()
            + self.body.len()
    }
}

/// Where the workers hand their rows; cheap to clone.
#[derive(Clone)]
pub struct DeliveryLog {
    rows: mpsc::Sender<LogRow>,
    metrics: DestinationMetrics,
    /// Bytes of the rows not written yet.
    buffered: Arc<AtomicUsize>,
}

impl DeliveryLog {
    /// The log and the task that writes it until `shutdown` (then once more).
    pub fn start(
        client: clickhouse::Client,
        metrics: DestinationMetrics,
        shutdown: CancellationToken,
    ) -> (Self, impl Future<Output = anyhow::Result<()>>) {
        let (rows, receiver) = mpsc::channel(BUFFERED_ROWS);
        let buffered = Arc::new(AtomicUsize::new(0));
        let log = Self {
            rows,
            metrics,
            buffered: buffered.clone(),
        };
        (log, write_rows(client, receiver, buffered, shutdown))
    }

    pub fn record(&self, row: LogRow) {
        let weight = row.weight();
        let before = self.buffered.fetch_add(weight, Ordering::Relaxed);
        if before + weight > BUFFERED_BYTES || self.rows.try_send(row).is_err() {
            self.buffered.fetch_sub(weight, Ordering::Relaxed);
            self.metrics.log_rows_dropped.inc();
        }
    }

    /// Bytes of the rows not written yet.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }
}

async fn write_rows(
    client: clickhouse::Client,
    mut receiver: mpsc::Receiver<LogRow>,
    buffered: Arc<AtomicUsize>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let release = |rows: &[LogRow]| {
        let weight: usize = rows.iter().map(LogRow::weight).sum();
        buffered.fetch_sub(weight, Ordering::Relaxed);
    };
    let mut batch: Vec<LogRow> = Vec::new();
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(FLUSH_EVERY) => false,
        };
        while let Ok(row) = receiver.try_recv() {
            batch.push(row);
        }
        if !batch.is_empty() {
            match insert(&client, &batch).await {
                Ok(()) => {
                    release(&batch);
                    batch.clear();
                }
                Err(error) => {
                    tracing::warn!(cause = %error, rows = batch.len(), "cannot write the deliveries log; retrying");
                    if batch.len() > BUFFERED_ROWS {
                        let dropped: Vec<LogRow> =
                            batch.drain(..batch.len() - BUFFERED_ROWS).collect();
                        release(&dropped);
                    }
                }
            }
        }
        if stopping {
            return Ok(());
        }
    }
}

async fn insert(client: &clickhouse::Client, rows: &[LogRow]) -> anyhow::Result<()> {
    let mut insert = client.insert::<LogRow>("webhook_deliveries").await?;
    for row in rows {
        insert.write(row).await?;
    }
    tokio::time::timeout(Duration::from_secs(30), insert.end())
        .await
        .map_err(|_| anyhow::anyhow!("the insert took longer than 30 s"))??;
    Ok(())
}

/// One delivery as listed: its latest attempt.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct DeliverySummary {
    pub delivery_id: String,
    pub event_id: String,
    #[serde(rename = "last_status")]
    pub status: String,
    pub attempts: u32,
    pub response_status: u16,
    pub latency_ms: u32,
    pub error: String,
    pub first_at_ms: u64,
    pub last_at_ms: u64,
}

/// What a listing asks for.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub status: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Resume after this (last_at_ms, delivery_id), newest first.
    pub after: Option<(u64, String)>,
    pub limit: u32,
}

/// The deliveries of one webhook of `project_id`, newest first.
pub async fn list(
    client: &clickhouse::Client,
    project_id: &str,
    webhook_id: &str,
    query: &DeliveryQuery,
) -> clickhouse::error::Result<Vec<DeliverySummary>> {
    // The order key of a row within a delivery: its time, then its attempt.
    let mut sql = String::from(
        "SELECT delivery_id, any(event_id) AS event_id, \
           argMax(status, at_ms * 1000 + attempt) AS last_status, max(attempt) AS attempts, \
           argMax(response_status, at_ms * 1000 + attempt) AS response_status, \
           argMax(latency_ms, at_ms * 1000 + attempt) AS latency_ms, \
           argMax(error, at_ms * 1000 + attempt) AS error, \
           min(at_ms) AS first_at_ms, max(at_ms) AS last_at_ms \
         FROM webhook_deliveries \
         WHERE project_id = ? AND webhook_id = ? \
           AND at >= toDateTime(?) AND at <= toDateTime(?) AND at_ms >= ? AND at_ms < ? \
         GROUP BY delivery_id HAVING 1",
    );
    if query.status.is_some() {
        sql.push_str(" AND last_status = ?");
    }
    if query.after.is_some() {
        sql.push_str(" AND (last_at_ms < ? OR (last_at_ms = ? AND delivery_id < ?))");
    }
    sql.push_str(" ORDER BY last_at_ms DESC, delivery_id DESC LIMIT ?");
    let mut bound = client
        .query(&sql)
        .bind(project_id)
        .bind(webhook_id)
        .bind(query.from_ms / 1000)
        .bind(query.to_ms / 1000)
        .bind(query.from_ms)
        .bind(query.to_ms);
    if let Some(status) = &query.status {
        bound = bound.bind(status);
    }
    if let Some((at_ms, delivery_id)) = &query.after {
        bound = bound.bind(at_ms).bind(at_ms).bind(delivery_id);
    }
    bound.bind(query.limit).fetch_all().await
}

/// A delivery to send again: its event and body.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct Redeliverable {
    pub delivery_id: String,
    pub event_id: String,
    pub body: String,
    pub kafka_partition: u32,
}

/// The deliveries of one webhook of `project_id` to send again: one by id,
/// or every one in a time range whose latest status is `status` (any when
/// `None`), at most `limit`.
pub async fn redeliverable(
    client: &clickhouse::Client,
    project_id: &str,
    webhook_id: &str,
    delivery_id: Option<&str>,
    range_ms: (i64, i64),
    status: Option<&str>,
    limit: u32,
) -> clickhouse::error::Result<Vec<Redeliverable>> {
    let mut sql = String::from(
        "SELECT delivery_id, any(event_id) AS event_id, any(body) AS body, \
           any(kafka_partition) AS kafka_partition \
         FROM webhook_deliveries \
         WHERE project_id = ? AND webhook_id = ? AND at_ms >= ? AND at_ms < ?",
    );
    if delivery_id.is_some() {
        sql.push_str(" AND delivery_id = ?");
    }
    sql.push_str(" GROUP BY delivery_id HAVING 1");
    if status.is_some() {
        sql.push_str(" AND argMax(status, at_ms * 1000 + attempt) = ?");
    }
    sql.push_str(" ORDER BY delivery_id LIMIT ?");
    let mut bound = client
        .query(&sql)
        .bind(project_id)
        .bind(webhook_id)
        .bind(range_ms.0)
        .bind(range_ms.1);
    if let Some(id) = delivery_id {
        bound = bound.bind(id);
    }
    if let Some(status) = status {
        bound = bound.bind(status);
    }
    bound.bind(limit).fetch_all().await
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    fn row(body_bytes: usize) -> LogRow {
        LogRow {
            project_id: "p".into(),
            webhook_id: "wh_1".into(),
            delivery_id: "msg_1".into(),
            event_id: "e1".into(),
            attempt: 1,
            status: "retrying".into(),
            response_status: 500,
            latency_ms: 1,
            error: String::new(),
            at: 0,
            at_ms: 0,
            kafka_partition: 0,
            body: "x".repeat(body_bytes),
        }
    }

    #[tokio::test]
    async fn the_buffer_is_bounded_by_bytes_while_nothing_is_written() {
        let metrics = DestinationMetrics::register(&mut Registry::default());
        // The writer never runs: as if ClickHouse did not answer.
        let (log, _writer) = DeliveryLog::start(
            clickhouse::Client::default(),
            metrics.clone(),
            CancellationToken::new(),
        );
        for _ in 0..100 {
            log.record(row(1024 * 1024));
        }
        assert!(log.buffered_bytes() <= BUFFERED_BYTES);
        assert!(log.buffered_bytes() > BUFFERED_BYTES - 2 * 1024 * 1024);
        assert_eq!(metrics.log_rows_dropped.get(), 100 - 63);
    }
}
