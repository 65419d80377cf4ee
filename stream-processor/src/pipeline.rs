//! The consume loop: read, decode, batch, insert, then commit.
//!
//! Offsets are committed only after the rows of every message below them are
//! in ClickHouse (or the message is on the dead-letter topic). A crash at any
//! point therefore replays messages, never skips them; replays write identical
//! rows, which the `events` table collapses.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_runtime::kafka::client_config;
use sluice_runtime::settings::KafkaSettings;
use sluice_schemas::Limits;
use tokio::time::{Instant as Deadline, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::config::ProcessorSettings;
use crate::decode::{MessageAt, decode};
use crate::dlq::DeadLetters;
use crate::metrics::ProcessorMetrics;
use crate::sink::{EventRow, EventSink};

const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Rows waiting for their insert, and the offsets to commit once they land.
#[derive(Default)]
struct Batch {
    rows: Vec<EventRow>,
    /// Next offset to consume, per partition of the events topic.
    next_offsets: BTreeMap<i32, i64>,
    opened: Option<Instant>,
}

impl Batch {
    fn note_offset(&mut self, partition: i32, offset: i64) {
        self.next_offsets.insert(partition, offset + 1);
        self.opened.get_or_insert_with(Instant::now);
    }

    fn is_empty(&self) -> bool {
        self.next_offsets.is_empty()
    }
}

/// What became of one message.
enum Accepted {
    /// Batched, or on the dead-letter topic: its offset may be committed.
    Handled,
    /// Shutdown came while the dead-letter topic was refusing it: neither
    /// stored nor dead-lettered, so nothing at or after it may be committed.
    Abandoned,
}

pub struct Pipeline {
    consumer: StreamConsumer,
    topic: String,
    sink: EventSink,
    dead_letters: DeadLetters,
    settings: ProcessorSettings,
    limits: Limits,
    metrics: ProcessorMetrics,
}

impl Pipeline {
    pub fn new(
        kafka: &KafkaSettings,
        settings: ProcessorSettings,
        sink: EventSink,
        metrics: ProcessorMetrics,
    ) -> anyhow::Result<Self> {
        let consumer: StreamConsumer = client_config(kafka)?
            .set("group.id", &settings.consumer_group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "session.timeout.ms",
                settings.session_timeout_ms.to_string(),
            )
            .create()?;
        consumer.subscribe(&[&kafka.events_topic])?;
        Ok(Self {
            consumer,
            topic: kafka.events_topic.clone(),
            sink,
            dead_letters: DeadLetters::new(kafka)?,
            settings,
            limits: Limits::default(),
            metrics,
        })
    }

    /// Runs until `shutdown`, then writes and commits what it holds.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut batch = Batch::default();
        loop {
            let flush_at = batch
                .opened
                .map(|opened| Deadline::from_std(opened + self.settings.batch_max_wait()));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sleep_until(flush_at.unwrap_or_else(Deadline::now)), if flush_at.is_some() => {
                    self.flush(&mut batch, &shutdown, CommitMode::Async).await;
                }
                received = self.consumer.recv() => match received {
                    Ok(message) => {
                        if let Accepted::Abandoned = self.accept(&message, &mut batch, &shutdown).await {
                            break;
                        }
                        if batch.rows.len() >= self.settings.batch_max_rows {
                            self.flush(&mut batch, &shutdown, CommitMode::Async).await;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(cause = %error, "Kafka consume error");
                        sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        self.flush(&mut batch, &shutdown, CommitMode::Sync).await;
        tracing::info!("stream processor stopped");
    }

    /// Adds one message to the batch, or to the dead-letter topic.
    async fn accept(
        &self,
        message: &BorrowedMessage<'_>,
        batch: &mut Batch,
        shutdown: &CancellationToken,
    ) -> Accepted {
        let at = MessageAt {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
        };
        match decode(message.payload(), at, &self.limits) {
            Ok(event) => batch
                .rows
                .push(EventRow::new(event, at.partition, at.offset)),
            Err(reason) => {
                tracing::warn!(reason = %reason, topic = at.topic, partition = at.partition, offset = at.offset, "message to dead-letter topic");
                let sent = retry_until_shutdown("dead-letter write", shutdown, || {
                    self.dead_letters
                        .send(at, message.key(), message.payload(), &reason)
                })
                .await;
                if sent.is_none() {
                    return Accepted::Abandoned;
                }
                self.metrics.dead_letters.inc();
            }
        }
        batch.note_offset(at.partition, at.offset);
        Accepted::Handled
    }

    /// Inserts the batch (retrying until it lands), then commits its offsets.
    /// At shutdown it stops retrying and commits nothing: Kafka keeps the data.
    async fn flush(&self, batch: &mut Batch, shutdown: &CancellationToken, mode: CommitMode) {
        let batch = std::mem::take(batch);
        if batch.is_empty() {
            return;
        }
        if !batch.rows.is_empty() {
            let inserted = retry_until_shutdown("ClickHouse insert", shutdown, || async {
                let started = Instant::now();
                let outcome = self.sink.insert(&batch.rows).await;
                match &outcome {
                    Ok(()) => self
                        .metrics
                        .record_insert(batch.rows.len(), started.elapsed()),
                    Err(_) => {
                        self.metrics.insert_failures.inc();
                    }
                }
                outcome
            })
            .await;
            if inserted.is_none() {
                tracing::warn!(
                    rows = batch.rows.len(),
                    "shutting down with an unwritten batch; it will be replayed from Kafka"
                );
                return;
            }
        }
        self.commit(&batch.next_offsets, mode);
    }

    fn commit(&self, next_offsets: &BTreeMap<i32, i64>, mode: CommitMode) {
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in next_offsets {
            if let Err(error) =
                offsets.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))
            {
                tracing::error!(cause = %error, "cannot build the offset list");
                return;
            }
        }
        // A commit can fail after a rebalance took the partition away; the
        // new owner replays from the last commit and the table collapses the copies.
        if let Err(error) = self.consumer.commit(&offsets, mode) {
            tracing::warn!(cause = %error, "offset commit failed; the batch may be replayed");
        }
    }
}

/// Runs `attempt` until it succeeds, backing off between failures. Gives up,
/// returning `None`, once shutdown has been requested.
async fn retry_until_shutdown<T, E, Fut>(
    what: &'static str,
    shutdown: &CancellationToken,
    mut attempt: impl FnMut() -> Fut,
) -> Option<T>
where
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(error) => {
                tracing::error!(cause = %error, what, "failed; retrying");
                if shutdown.is_cancelled() {
                    return None;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
    }
}
