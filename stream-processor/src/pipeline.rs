//! The consume loop: read, decode, deduplicate, window, batch, insert,
//! checkpoint, then commit.
//!
//! A flush inserts raw events, then the rollup rows that windows emitted, then
//! a checkpoint per partition (its next offset and window state), and only
//! then commits the Kafka offsets. A crash at any point therefore replays from
//! the last checkpoint, with the state that checkpoint holds; replayed
//! messages make identical rows, which the tables collapse.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use sluice_runtime::clickhouse::{CLICKHOUSE_CHECK, with_cluster_cause};
use sluice_runtime::kafka::{KAFKA_CHECK, apply_properties, client_config, producer_config};
use sluice_runtime::ops::Readiness;
use sluice_runtime::progress::{
    EventNoticeRow, NoticeKind, PartitionProgressRow, ProjectActivityRow,
};
use sluice_runtime::rollups::{PropertyRollupRow, RollupRow};
use sluice_runtime::settings::KafkaSettings;
use sluice_runtime::telemetry;
use sluice_runtime::trace_context::TraceParent;
use sluice_schemas::Limits;
use sluice_schemas::time_format::now_ms;
use tokio::sync::Notify;
use tokio::time::{Instant as Deadline, MissedTickBehavior, interval, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::checkpoint::{CheckpointStore, encode_state};
use crate::config::ProcessorSettings;
use crate::context::ProcessorContext;
use crate::coverage::HeldPartitions;
use crate::decode::{MessageAt, decode, named_project};
use crate::dedup::RecentIds;
use crate::dlq::DeadLetters;
use crate::live::LivePublisher;
use crate::marker;
use crate::metrics::{PartitionLabel, ProcessorMetrics};
use crate::sink::{EventRow, EventSink};
use crate::windows::{PartitionWindows, Placement};

const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The readiness check of halted partitions (see [`Pipeline::halt`]).
pub const OFFSETS_CHECK: &str = "offsets";
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(5);
/// Most links of one insert span: the OpenTelemetry SDK keeps 128 per span
/// and drops the rest, so more would cost memory for nothing.
const MAX_TRACE_LINKS: usize = 128;

/// Rows waiting for their insert, and the partitions whose checkpoint and
/// offset follow them.
#[derive(Default)]
struct Batch {
    events: Vec<EventRow>,
    rollups: Vec<RollupRow>,
    property_rollups: Vec<PropertyRollupRow>,
    /// Late and dead-lettered messages, for `/v1/status`.
    notices: Vec<EventNoticeRow>,
    /// Each project's newest event per partition, for `/v1/status`.
    /// By partition, then project: looked up by `&str`, so an event of a
    /// project already seen in the batch allocates nothing.
    activity: HashMap<i32, HashMap<String, ProjectActivityRow>>,
    partitions: BTreeSet<i32>,
    opened: Option<Instant>,
    /// The decode spans of traced messages, for the insert span to link to
    /// (only while spans are exported).
    traces: Vec<TraceParent>,
}

impl Batch {
    fn rows(&self) -> usize {
        self.events.len() + self.rollups.len() + self.notices.len()
    }

    fn note_activity(&mut self, event: &sluice_schemas::Event, partition: i32, offset: i64) {
        let (offset, received, event_ms) = (
            u64::try_from(offset).unwrap_or(0),
            u64::try_from(event.received_at_ms).unwrap_or(0),
            u64::try_from(event.timestamp_ms).unwrap_or(0),
        );
        let projects = self.activity.entry(partition).or_default();
        match projects.get_mut(event.project_id.as_str()) {
            Some(row) => row.include(offset, received, event_ms),
            None => {
                projects.insert(
                    event.project_id.clone(),
                    ProjectActivityRow {
                        project_id: event.project_id.clone(),
                        kafka_partition: u32::try_from(partition).unwrap_or(0),
                        last_offset: offset,
                        last_received_ms: received,
                        last_event_ms: event_ms,
                        written_at_ms: 0,
                    },
                );
            }
        }
    }
}

/// One source partition's state: where it is and what its windows hold.
struct PartitionState {
    windows: PartitionWindows,
    recent: RecentIds,
    /// The next offset to process; `None` until the first message when the
    /// group never checkpointed this partition.
    next_offset: Option<i64>,
    /// The offset of the last message received, to notice a rewind.
    last_received: Option<i64>,
    /// The broker's log fell below the checkpoint: nothing of this partition
    /// is processed or committed until it is taken over again.
    halted: bool,
    last_message: Instant,
    last_marker: Option<Instant>,
}

/// What became of one message.
enum Accepted {
    /// Processed (or already processed before a restart): its offset may be committed.
    Handled,
    /// Shutdown came while a dependency was refusing it: nothing at or after
    /// it may be committed.
    Abandoned,
}

pub struct Pipeline {
    consumer: Arc<StreamConsumer<ProcessorContext>>,
    topic: String,
    sink: EventSink,
    checkpoints: CheckpointStore,
    producer: FutureProducer,
    dead_letters: DeadLetters,
    settings: ProcessorSettings,
    limits: Limits,
    metrics: ProcessorMetrics,
    readiness: Readiness,
}

impl Pipeline {
    pub fn new(
        kafka: &KafkaSettings,
        settings: ProcessorSettings,
        sink: EventSink,
        metrics: ProcessorMetrics,
        readiness: Readiness,
        held: HeldPartitions,
    ) -> anyhow::Result<Self> {
        let context = ProcessorContext::new(held);
        let mut config = client_config(kafka)?;
        config
            .set("group.id", &settings.consumer_group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Freshness: with librdkafka's 500 ms, tansu answered fetches late
            // even with data waiting; 20-50 ms cut end-to-end freshness by
            // hundreds of milliseconds (BENCHMARKS.md).
            .set("fetch.wait.max.ms", "50")
            .set(
                "session.timeout.ms",
                settings.session_timeout_ms.to_string(),
            );
        apply_properties(&mut config, kafka)?;
        let consumer: StreamConsumer<ProcessorContext> = config.create_with_context(context)?;
        consumer.subscribe(&[&kafka.events_topic])?;
        let producer: FutureProducer = producer_config(kafka)?.create()?;
        let checkpoints = CheckpointStore::new(
            sink.client().clone(),
            &settings.consumer_group,
            &kafka.events_topic,
        );
        readiness.pass(OFFSETS_CHECK);
        Ok(Self {
            consumer: Arc::new(consumer),
            topic: kafka.events_topic.clone(),
            sink,
            checkpoints,
            dead_letters: DeadLetters::new(producer.clone(), &kafka.dlq_topic),
            producer,
            settings,
            limits: Limits::default(),
            metrics,
            readiness,
        })
    }

    /// The pipeline's producer (`acks=all`, idempotent), for the live topic.
    pub fn producer(&self) -> FutureProducer {
        self.producer.clone()
    }

    /// Runs until `shutdown`, then writes, checkpoints and commits what it
    /// holds. Open windows are not written early: the checkpoint keeps them.
    /// `rejoin` asks it to leave the consumer group and join again
    /// ([`crate::coverage`]).
    pub async fn run(
        self,
        shutdown: CancellationToken,
        mut live: LivePublisher,
        rejoin: Arc<Notify>,
    ) {
        let mut batch = Batch::default();
        let mut partitions: HashMap<i32, PartitionState> = HashMap::new();
        let mut live_tick = interval(Duration::from_millis(self.settings.live_interval_ms.max(1)));
        let idle_timeout = Duration::from_millis(self.settings.idle_timeout_ms);
        let mut idle_tick =
            interval((idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(1)));
        live_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        idle_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let flush_at = batch
                .opened
                .map(|opened| Deadline::from_std(opened + self.settings.batch_max_wait()));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sleep_until(flush_at.unwrap_or_else(Deadline::now)), if flush_at.is_some() => {
                    self.flush(&mut batch, &partitions, &shutdown, CommitMode::Async).await;
                }
                _ = live_tick.tick(), if live.is_enabled() => {
                    for (partition, state) in partitions.iter_mut() {
                        state.windows.drain_dirty(|partial| live.changed(partial, *partition));
                    }
                    live.send_queued();
                }
                _ = idle_tick.tick() => {
                    self.mark_idle_partitions(&mut partitions, idle_timeout).await;
                }
                _ = rejoin.notified() => {
                    self.rejoin(&mut batch, &partitions, &shutdown).await;
                }
                received = self.consumer.recv() => match received {
                    Ok(message) => {
                        let accepted = self.accept(&message, &mut batch, &mut partitions, &mut live, &shutdown).await;
                        if let Accepted::Abandoned = accepted {
                            break;
                        }
                        if batch.rows() >= self.settings.batch_max_rows {
                            self.flush(&mut batch, &partitions, &shutdown, CommitMode::Async).await;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(cause = %error, "Kafka consume error");
                        sleep(Duration::from_millis(100)).await;
                    }
                },
            }
            let revoked = self.consumer.context().take_revoked();
            if !revoked.is_empty() {
                self.flush(&mut batch, &partitions, &shutdown, CommitMode::Async)
                    .await;
                for partition in revoked {
                    partitions.remove(&partition);
                }
                self.report_halted(&partitions);
            }
        }
        self.flush(&mut batch, &partitions, &shutdown, CommitMode::Sync)
            .await;
        tracing::info!("stream processor stopped");
    }

    /// Processes one message into the batch (or the dead-letter topic).
    async fn accept(
        &self,
        message: &BorrowedMessage<'_>,
        batch: &mut Batch,
        partitions: &mut HashMap<i32, PartitionState>,
        live: &mut LivePublisher,
        shutdown: &CancellationToken,
    ) -> Accepted {
        let at = MessageAt {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
        };
        let state = match partitions.entry(at.partition) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let Some(state) = self.resume(at.partition, shutdown).await else {
                    return Accepted::Abandoned;
                };
                if state.halted {
                    entry.insert(state);
                    self.report_halted(partitions);
                    return Accepted::Handled;
                }
                entry.insert(state)
            }
        };
        if state.halted {
            return Accepted::Handled;
        }
        let rewound = state.last_received.is_some_and(|last| at.offset <= last);
        state.last_received = Some(at.offset);
        if rewound && let Some(next) = state.next_offset {
            // The broker handed out an offset again (a reset after an error,
            // or a log that lost its tail): it is a replay only if the log
            // still reaches the checkpoint.
            let Some(end) = self.broker_end(at.partition, shutdown).await else {
                return Accepted::Abandoned;
            };
            if end < next {
                self.halt(at.partition, state, next, end);
                self.report_halted(partitions);
                return Accepted::Handled;
            }
        }
        match state.next_offset {
            // Already in effect: the checkpoint is ahead of the Kafka commit.
            // Noted in the batch so that the commit catches up with it.
            Some(next) if at.offset < next => {
                batch.partitions.insert(at.partition);
                batch.opened.get_or_insert_with(Instant::now);
                return Accepted::Handled;
            }
            Some(next) if at.offset > next => {
                tracing::warn!(
                    partition = at.partition,
                    expected = next,
                    offset = at.offset,
                    "offsets skipped (deleted by the topic's retention?)"
                );
            }
            _ => {}
        }
        state.last_message = Instant::now();
        let mut emitted = Vec::new();
        if let Some(watermark_ms) = marker::watermark_of(message.headers()) {
            state.windows.apply_marker(watermark_ms, &mut emitted);
        } else {
            match self.decode(message, at, batch) {
                Ok(event) => {
                    self.metrics.events_processed.inc();
                    if state.recent.is_repeat(
                        &event.project_id,
                        &event.event_id,
                        event.received_at_ms,
                    ) {
                        self.metrics.duplicate_events.inc();
                    } else {
                        let rolled_up = &self.settings.rollup_properties;
                        batch.note_activity(&event, at.partition, at.offset);
                        if state
                            .windows
                            .add(&event, at.offset, rolled_up, &mut emitted)
                            == Placement::Late
                        {
                            self.metrics.late_events.inc();
                            batch.notices.push(EventNoticeRow::new(
                                NoticeKind::Late,
                                event.project_id.clone(),
                                event.received_at_ms,
                                at.partition,
                                at.offset,
                                String::new(),
                            ));
                        }
                        batch
                            .events
                            .push(EventRow::new(event, at.partition, at.offset));
                    }
                }
                Err(reason) => {
                    tracing::warn!(reason = %reason, topic = at.topic, partition = at.partition, offset = at.offset, "message to dead-letter topic");
                    let sent = self
                        .retry_until_shutdown("dead-letter write", KAFKA_CHECK, shutdown, || {
                            self.dead_letters
                                .send(at, message.key(), message.payload(), &reason)
                        })
                        .await;
                    if sent.is_none() {
                        return Accepted::Abandoned;
                    }
                    self.metrics.dead_letters.inc();
                    batch.notices.push(EventNoticeRow::new(
                        NoticeKind::DeadLetter,
                        named_project(message.payload()),
                        at.timestamp_ms.unwrap_or_else(now_ms),
                        at.partition,
                        at.offset,
                        reason,
                    ));
                }
            }
        }
        let kafka_partition = u32::try_from(at.partition).unwrap_or(0);
        for closed in emitted {
            let partial = closed.partial;
            let (key, aggregate, seq) = (&partial.key, &partial.aggregate, partial.seq);
            match partial.property {
                Some(property) => batch.property_rollups.push(PropertyRollupRow::new(
                    key,
                    aggregate,
                    kafka_partition,
                    seq,
                    property.key,
                    property.value,
                )),
                None => {
                    batch
                        .rollups
                        .push(RollupRow::new(key, aggregate, kafka_partition, seq));
                    if !closed.is_correction {
                        live.closed(&partial, at.partition);
                    }
                }
            }
        }
        state.next_offset = Some(at.offset + 1);
        batch.partitions.insert(at.partition);
        batch.opened.get_or_insert_with(Instant::now);
        Accepted::Handled
    }

    /// Reads a message's value. One that carries a `traceparent` is read, while
    /// spans are exported, in a `decode` span continuing its trace, which the
    /// batch's insert span then links to.
    fn decode(
        &self,
        message: &BorrowedMessage<'_>,
        at: MessageAt<'_>,
        batch: &mut Batch,
    ) -> Result<sluice_schemas::Event, String> {
        let traced = telemetry::exporting()
            .then(|| message.headers().and_then(TraceParent::from_kafka))
            .flatten();
        let Some(parent) = traced else {
            return decode(message.payload(), at, &self.limits);
        };
        let span = tracing::info_span!("decode", partition = at.partition, offset = at.offset);
        parent.adopt(&span);
        if batch.traces.len() < MAX_TRACE_LINKS
            && let Some(own) = TraceParent::of(&span)
        {
            batch.traces.push(own);
        }
        span.in_scope(|| decode(message.payload(), at, &self.limits))
    }

    /// Loads a partition's checkpoint, retrying until ClickHouse answers.
    async fn resume(&self, partition: i32, shutdown: &CancellationToken) -> Option<PartitionState> {
        let resumed = self
            .retry_until_shutdown("checkpoint read", CLICKHOUSE_CHECK, shutdown, || {
                self.within_clickhouse_timeout(self.checkpoints.resume(
                    partition,
                    self.settings.lateness_ms(),
                    self.settings.dedup_horizon_ms(),
                ))
            })
            .await?;
        tracing::info!(
            partition,
            next_offset = ?resumed.next_offset,
            open_windows = resumed.windows.open_windows(),
            recent_ids = resumed.recent.len(),
            "partition resumed from its checkpoint"
        );
        let mut state = PartitionState {
            windows: resumed.windows,
            recent: resumed.recent,
            next_offset: resumed.next_offset,
            last_received: None,
            halted: false,
            last_message: Instant::now(),
            last_marker: None,
        };
        if let Some(next) = resumed.next_offset {
            let end = self.broker_end(partition, shutdown).await?;
            if end < next {
                self.halt(partition, &mut state, next, end);
            }
        }
        Some(state)
    }

    /// The offset the partition's next message will get, asking the broker
    /// until it answers.
    async fn broker_end(&self, partition: i32, shutdown: &CancellationToken) -> Option<i64> {
        self.retry_until_shutdown("end offset read", KAFKA_CHECK, shutdown, || {
            let consumer = self.consumer.clone();
            let topic = self.topic.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    consumer
                        .fetch_watermarks(&topic, partition, WATERMARK_TIMEOUT)
                        .map(|(_, high)| high)
                        .map_err(|error| error.to_string())
                })
                .await
                .map_err(|error| error.to_string())?
            }
        })
        .await
    }

    /// The broker's log ends below the checkpoint: the broker lost messages
    /// the group had processed, and offsets from here on may be reused by
    /// other messages. Processing on would skip them as replays, so the
    /// partition stops, paused, until an operator decides
    /// (docs/failure-modes.md).
    fn halt(&self, partition: i32, state: &mut PartitionState, checkpoint: i64, end: i64) {
        tracing::error!(
            topic = %self.topic,
            partition,
            checkpoint,
            broker_end = end,
            "the broker's log ends below the checkpoint: it lost messages; partition halted"
        );
        state.halted = true;
        let mut paused = TopicPartitionList::new();
        if paused
            .add_partition_offset(&self.topic, partition, Offset::Invalid)
            .is_ok()
            && let Err(error) = self.consumer.pause(&paused)
        {
            tracing::warn!(cause = %error, partition, "cannot pause the halted partition");
        }
    }

    /// Readiness and the gauge say which partitions are halted.
    fn report_halted(&self, partitions: &HashMap<i32, PartitionState>) {
        let mut halted: Vec<i32> = partitions
            .iter()
            .filter(|(_, state)| state.halted)
            .map(|(partition, _)| *partition)
            .collect();
        halted.sort_unstable();
        self.metrics.halted_partitions.set(halted.len() as i64);
        if halted.is_empty() {
            self.readiness.pass(OFFSETS_CHECK);
        } else {
            self.readiness.fail(
                OFFSETS_CHECK,
                format!(
                    "partitions {halted:?} of {}: the broker's log ends below the checkpoint (it lost messages); halted until an operator acts, see docs/failure-modes.md",
                    self.topic
                ),
            );
        }
    }

    /// Writes what the batch holds, leaves the consumer group and joins it
    /// again, so the broker assigns every partition afresh. The revocation
    /// that follows drops the partitions' state; whoever gets them resumes
    /// from the checkpoints just written.
    async fn rejoin(
        &self,
        batch: &mut Batch,
        partitions: &HashMap<i32, PartitionState>,
        shutdown: &CancellationToken,
    ) {
        self.flush(batch, partitions, shutdown, CommitMode::Sync)
            .await;
        tracing::warn!(topic = %self.topic, group = %self.settings.consumer_group, "leaving the consumer group and joining again");
        self.consumer.unsubscribe();
        if let Err(error) = self.consumer.subscribe(&[&self.topic]) {
            tracing::error!(cause = %error, "cannot subscribe again; retrying at the next look");
        }
    }

    /// Writes a watermark marker into each partition whose windows wait on a
    /// partition without messages (see [`marker`]); updates the gauges.
    async fn mark_idle_partitions(
        &self,
        partitions: &mut HashMap<i32, PartitionState>,
        idle_timeout: Duration,
    ) {
        let now = now_ms();
        let mut open = 0;
        for (partition, state) in partitions.iter_mut() {
            open += state.windows.open_windows();
            if let Some(watermark) = state.windows.watermark_ms() {
                self.metrics
                    .watermark_delay
                    .get_or_create(&PartitionLabel {
                        partition: *partition,
                    })
                    .set((now - watermark) as f64 / 1000.0);
            }
            let idle = state.last_message.elapsed() >= idle_timeout
                && state
                    .last_marker
                    .is_none_or(|sent| sent.elapsed() >= idle_timeout);
            if !idle || !state.windows.has_pending() {
                continue;
            }
            let watermark = now.saturating_sub(self.settings.lateness_ms());
            match marker::write(&self.producer, &self.topic, *partition, watermark).await {
                Ok(()) => state.last_marker = Some(Instant::now()),
                Err(error) => {
                    tracing::warn!(cause = %error, partition, "cannot write a watermark marker")
                }
            }
        }
        self.metrics.open_windows.set(open as i64);
    }

    /// Inserts the batch's rows and checkpoints (retrying until they land),
    /// then commits its offsets. At shutdown it stops retrying and commits
    /// nothing: Kafka and the last checkpoint keep the data. While spans are
    /// exported, all of it runs in an `insert` span linked to the traces of
    /// the batch's messages.
    async fn flush(
        &self,
        batch: &mut Batch,
        partitions: &HashMap<i32, PartitionState>,
        shutdown: &CancellationToken,
        mode: CommitMode,
    ) {
        let batch = std::mem::take(batch);
        if batch.partitions.is_empty() {
            return;
        }
        if !telemetry::exporting() {
            return self.write(batch, partitions, shutdown, mode).await;
        }
        let span = tracing::info_span!(
            "insert",
            events = batch.events.len(),
            rollups = batch.rollups.len() + batch.property_rollups.len(),
            traced = batch.traces.len()
        );
        for trace in &batch.traces {
            trace.link(&span);
        }
        self.write(batch, partitions, shutdown, mode)
            .instrument(span)
            .await;
    }

    async fn write(
        &self,
        batch: Batch,
        partitions: &HashMap<i32, PartitionState>,
        shutdown: &CancellationToken,
        mode: CommitMode,
    ) {
        let positions: Vec<(i32, i64, &PartitionState)> = batch
            .partitions
            .iter()
            .filter_map(|p| {
                partitions
                    .get(p)
                    .and_then(|s| Some((*p, s.next_offset?, s)))
            })
            .collect();
        let checkpoints: Vec<_> = positions
            .iter()
            .map(|(partition, next, state)| {
                self.checkpoints.row(
                    *partition,
                    *next,
                    encode_state(&state.windows, &state.recent),
                )
            })
            .collect();
        let written_at_ms = u64::try_from(now_ms()).unwrap_or(0);
        let progress: Vec<_> = checkpoints
            .iter()
            .zip(&positions)
            .map(|(checkpoint, (_, _, state))| PartitionProgressRow {
                consumer_group: checkpoint.consumer_group.clone(),
                topic: checkpoint.topic.clone(),
                kafka_partition: checkpoint.kafka_partition,
                next_offset: checkpoint.next_offset,
                watermark_ms: state.windows.watermark_ms().unwrap_or(0).max(0),
                written_at_ms,
            })
            .collect();
        let activity: Vec<_> = batch
            .activity
            .into_values()
            .flat_map(HashMap::into_values)
            .map(|row| ProjectActivityRow {
                written_at_ms,
                ..row
            })
            .collect();
        // Raw rows and rollup rows are independent: write them at once. The
        // checkpoint must follow all, since it claims everything below it;
        // the status rows say the same, so they go with it.
        // (Boxed: seven inserts in flight would make every caller's future large.)
        let (events, rollups, property_rollups, notices) = Box::pin(async {
            tokio::join!(
                self.insert("events", &batch.events, shutdown),
                self.insert("rollups", &batch.rollups, shutdown),
                self.insert("property_rollups", &batch.property_rollups, shutdown),
                self.insert("event_notices", &batch.notices, shutdown),
            )
        })
        .await;
        let positions_written = events && rollups && property_rollups && notices && {
            let (checkpoints, progress, activity) = Box::pin(async {
                tokio::join!(
                    self.insert("processor_checkpoints", &checkpoints, shutdown),
                    self.insert("partition_progress", &progress, shutdown),
                    self.insert("project_activity", &activity, shutdown),
                )
            })
            .await;
            checkpoints && progress && activity
        };
        if !positions_written {
            tracing::warn!(
                events = batch.events.len(),
                "shutting down with an unwritten batch; it will be replayed from Kafka"
            );
            return;
        }
        let offsets: Vec<(i32, i64)> = positions.iter().map(|(p, next, _)| (*p, *next)).collect();
        self.commit(&offsets, mode);
    }

    /// Inserts `rows` into `table`, retrying; false when shutdown stopped it.
    async fn insert<T>(&self, table: &'static str, rows: &[T], shutdown: &CancellationToken) -> bool
    where
        T: clickhouse::Row + clickhouse::RowOwned + clickhouse::RowWrite,
    {
        if rows.is_empty() {
            return true;
        }
        self.retry_until_shutdown("ClickHouse insert", CLICKHOUSE_CHECK, shutdown, || async {
            let started = Instant::now();
            let outcome = self
                .within_clickhouse_timeout(self.sink.insert_into(table, rows))
                .await;
            match &outcome {
                Ok(()) => self
                    .metrics
                    .record_insert(table, rows.len(), started.elapsed()),
                Err(_) => {
                    self.metrics.insert_failures.inc();
                }
            }
            outcome
        })
        .await
        .is_some()
    }

    /// `call`, failed when ClickHouse does not answer within
    /// `--clickhouse-timeout-ms` (a server that accepts connections and
    /// answers nothing would otherwise hold the pipeline forever). A call that
    /// timed out but landed after all is repeated harmlessly: the rows
    /// collapse. A cluster's error says what it means (a replica without
    /// ZooKeeper, a shard that does not answer).
    async fn within_clickhouse_timeout<T, E: std::fmt::Display>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        let limit = self.settings.clickhouse_timeout();
        match tokio::time::timeout(limit, call).await {
            Ok(outcome) => outcome.map_err(|error| with_cluster_cause(error.to_string())),
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        }
    }

    fn commit(&self, next_offsets: &[(i32, i64)], mode: CommitMode) {
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
        // new owner resumes from the checkpoint, which is already written.
        if let Err(error) = self.consumer.commit(&offsets, mode) {
            tracing::warn!(cause = %error, "offset commit failed; the checkpoint has the position");
        }
    }
}

impl Pipeline {
    /// Runs `attempt` until it succeeds, backing off between failures and
    /// failing readiness `check` with the cause meanwhile. Gives up,
    /// returning `None`, once shutdown has been requested.
    async fn retry_until_shutdown<T, E, Fut>(
        &self,
        what: &'static str,
        check: &'static str,
        shutdown: &CancellationToken,
        mut attempt: impl FnMut() -> Fut,
    ) -> Option<T>
    where
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut backoff = Duration::from_millis(100);
        let mut failed = false;
        loop {
            match attempt().await {
                Ok(value) => {
                    if failed {
                        self.readiness.pass(check);
                        tracing::info!(what, "recovered");
                    }
                    return Some(value);
                }
                Err(error) => {
                    tracing::error!(cause = %error, what, "failed; retrying");
                    self.readiness
                        .fail(check, format!("{what} failed: {error}"));
                    failed = true;
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
}
