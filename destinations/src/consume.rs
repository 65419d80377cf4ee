//! The two consumers: the events topic (in the service's own group, so it
//! never slows the processor), where each event is matched against its
//! project's webhooks, and the retry topic, whose deliveries wait in memory
//! until due (at most `--max-scheduled-retries` events, a batch counting its
//! members, so that the bound in bytes holds in batch mode too; past that
//! the topic is not read further until some are handed over).
//!
//! Offsets: a source offset is committed only once every delivery matched
//! from it and from the messages before it is settled (delivered,
//! dead-lettered, or written to the retry topic, acknowledged by the
//! broker), see [`crate::offsets`]. A SIGKILL loses nothing: the next owner
//! resumes at the committed offset. What it may repeat: deliveries the
//! receiver answered 2xx for whose offset was not committed yet, that is
//! those answered within about `--commit-interval-ms` plus the longest
//! attempt in flight (a webhook's timeout) before the crash. Receivers
//! deduplicate them by `webhook-id`, which is the same on every attempt.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use sluice_runtime::kafka::client_config;
use sluice_runtime::record_topic::RecordStore;
use sluice_runtime::settings::KafkaSettings;
use sluice_runtime::supervise::Supervisor;
use sluice_schemas::Limits;
use sluice_schemas::decode::{MessageAt, decode, is_marker};
use sluice_schemas::time_format::now_ms;
use tokio_util::sync::CancellationToken;

use crate::delivery::Delivery;
use crate::dispatch::{Dispatcher, Job};
use crate::metrics::DestinationMetrics;
use crate::offsets::OffsetLedger;
use crate::rules::Matcher;
use crate::takeover::{Rejoin, StallWatch};
use crate::webhook::WebhookRecord;

/// Keeps the ledger in step with the group's assignments.
struct LedgerContext {
    ledger: OffsetLedger,
}

impl ClientContext for LedgerContext {}

impl ConsumerContext for LedgerContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            for element in list.elements() {
                self.ledger.revoke(element.partition());
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            for element in list.elements() {
                self.ledger.assign(element.partition());
            }
        }
    }
}

type LedgerConsumer = StreamConsumer<LedgerContext>;

/// What each consumer may hold prefetched: part of the memory bound
/// (docs/destinations.md), whatever the backlog behind it.
const PREFETCH_KBYTES: &str = "8192";
const PREFETCH_MESSAGES: &str = "10000";

fn subscribe(
    settings: &KafkaSettings,
    group: &str,
    topic: &str,
    ledger: &OffsetLedger,
) -> anyhow::Result<LedgerConsumer> {
    let consumer: LedgerConsumer = client_config(settings)?
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("fetch.wait.max.ms", "50")
        // librdkafka prefetches up to 64 MiB by default: with a dead
        // endpoint and a backlog, that would be the backlog itself in
        // memory. A few seconds of deliveries at full speed is enough.
        .set("queued.max.messages.kbytes", PREFETCH_KBYTES)
        .set("queued.min.messages", PREFETCH_MESSAGES)
        .create_with_context(LedgerContext {
            ledger: ledger.clone(),
        })
        .with_context(|| format!("cannot create the consumer of {topic}"))?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("cannot subscribe to {topic}"))?;
    Ok(consumer)
}

/// Commits the offsets the ledger says moved.
fn commit(consumer: &LedgerConsumer, topic: &str, ledger: &OffsetLedger) {
    let moved = ledger.to_commit();
    if moved.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in moved {
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    if let Err(error) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(cause = %error, topic, "cannot commit offsets; the next commit retries");
    }
}

/// The webhooks of each project, matched and ready; rebuilt when the store changes.
struct WebhookIndex {
    store: RecordStore<WebhookRecord>,
    version: Option<u64>,
    by_project: HashMap<String, Vec<(String, Matcher)>>,
}

impl WebhookIndex {
    fn new(store: RecordStore<WebhookRecord>) -> Self {
        Self {
            store,
            version: None,
            by_project: HashMap::new(),
        }
    }

    fn for_project(&mut self, project_id: &str) -> &[(String, Matcher)] {
        let version = self.store.version();
        if self.version != Some(version) {
            self.by_project.clear();
            for webhook in self.store.all() {
                if webhook.is_active() {
                    self.by_project
                        .entry(webhook.project_id.clone())
                        .or_default()
                        .push((webhook.webhook_id.clone(), webhook.matcher()));
                }
            }
            self.version = Some(version);
        }
        self.by_project.get(project_id).map_or(&[], Vec::as_slice)
    }
}

/// Shared by both loops.
pub struct ConsumeContext {
    pub kafka: KafkaSettings,
    pub group: String,
    pub commit_interval: Duration,
    /// A partition not held here, with messages waiting and its committed
    /// offset still this long, is taken to be a dead instance's
    /// ([`crate::takeover`]).
    pub stall_timeout: Duration,
    /// The longest a retry waits until due (`--backoff-max-ms`): an offset
    /// of the retry topic may rightly stay still that much longer.
    pub longest_wait: Duration,
    pub supervisor: Supervisor,
    pub dispatcher: Dispatcher,
    pub metrics: DestinationMetrics,
    pub shutdown: CancellationToken,
}

/// The rejoin rule of the consumer of `topic` in `group`, with its watch
/// started (named `name`).
fn rejoin_rule(
    context: &ConsumeContext,
    (group, topic, name): (&str, &str, &'static str),
    stall_timeout: Duration,
    ledger: &OffsetLedger,
) -> anyhow::Result<Rejoin> {
    let watch = StallWatch::new(&context.kafka, group, topic, stall_timeout, ledger.clone())?;
    let rejoin = Rejoin::new(watch.orphans());
    watch.spawn(name, &context.supervisor, context.shutdown.clone())?;
    Ok(rejoin)
}

/// Reads the events topic until shutdown, matching and dispatching.
pub async fn events(
    context: Arc<ConsumeContext>,
    webhooks: RecordStore<WebhookRecord>,
) -> anyhow::Result<()> {
    let ledger = OffsetLedger::default();
    let topic = context.kafka.events_topic.clone();
    let consumer = subscribe(&context.kafka, &context.group, &topic, &ledger)?;
    let mut index = WebhookIndex::new(webhooks);
    let limits = Limits::default();
    let mut tick = tokio::time::interval(context.commit_interval);
    let watched = (context.group.as_str(), topic.as_str(), "events watch");
    let mut rejoin = rejoin_rule(&context, watched, context.stall_timeout, &ledger)?;
    let assigned = context.metrics.assigned("events");
    loop {
        tokio::select! {
            () = context.shutdown.cancelled() => break,
            _ = tick.tick() => {
                commit(&consumer, &topic, &ledger);
                rejoin.check(&consumer, &topic, &ledger);
                assigned.set(ledger.held().len() as i64);
                context.metrics.unsettled.set(ledger.unsettled() as i64);
            }
            message = consumer.recv() => match message {
                Ok(message) => {
                    let jobs = matched(&message, &topic, &limits, &mut index, &ledger, &context.metrics);
                    for job in jobs {
                        context.dispatcher.dispatch(job).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(cause = %error, %topic, "cannot read the events topic; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
    commit(&consumer, &topic, &ledger);
    Ok(())
}

/// The deliveries one events-topic message makes. Markers and messages the
/// processor dead-letters (unreadable, invalid) make none.
fn matched(
    message: &BorrowedMessage<'_>,
    topic: &str,
    limits: &Limits,
    index: &mut WebhookIndex,
    ledger: &OffsetLedger,
    metrics: &DestinationMetrics,
) -> Vec<Job> {
    let (partition, offset) = (message.partition(), message.offset());
    let header_names: Vec<&str> = message
        .headers()
        .map(|headers| headers.iter().map(|header| header.key).collect())
        .unwrap_or_default();
    if is_marker(header_names.into_iter(), message.payload()) {
        ledger.read(partition, offset, 0);
        return Vec::new();
    }
    let at = MessageAt {
        topic,
        partition,
        offset,
        timestamp_ms: message.timestamp().to_millis(),
    };
    let Ok(event) = decode(message.payload(), at, limits) else {
        ledger.read(partition, offset, 0);
        return Vec::new();
    };
    let now = now_ms();
    let deliveries: Vec<Delivery> = index
        .for_project(&event.project_id)
        .iter()
        .filter(|(webhook_id, matcher)| matcher.matches(webhook_id, &event))
        .map(|(webhook_id, _)| {
            metrics
                .matches
                .get_or_create(&DestinationMetrics::webhook(webhook_id))
                .inc();
            Delivery::of_event(webhook_id, &event, now)
        })
        .collect();
    let pending = ledger.read(partition, offset, deliveries.len());
    deliveries
        .into_iter()
        .zip(pending)
        .map(|(delivery, pending)| Job {
            delivery,
            pending: vec![pending],
        })
        .collect()
}

/// A retry waiting until due; ordered by due time, then arrival.
struct Scheduled {
    due_ms: i64,
    seq: u64,
    job: Job,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due_ms, self.seq) == (other.due_ms, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due_ms, self.seq).cmp(&(other.due_ms, other.seq))
    }
}

/// Reads the retry topic until shutdown, handing each delivery over when due.
pub async fn retries(
    context: Arc<ConsumeContext>,
    retry_topic: String,
    max_scheduled: usize,
) -> anyhow::Result<()> {
    let ledger = OffsetLedger::default();
    let group = format!("{}-retries", context.group);
    let consumer = subscribe(&context.kafka, &group, &retry_topic, &ledger)?;
    let mut waiting: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    let mut seq = 0u64;
    // Events in `waiting`: a batch counts its members.
    let mut held_events = 0usize;
    let mut tick = tokio::time::interval(context.commit_interval);
    let stall_timeout = context.stall_timeout + context.longest_wait;
    let watched = (group.as_str(), retry_topic.as_str(), "retries watch");
    let mut rejoin = rejoin_rule(&context, watched, stall_timeout, &ledger)?;
    let assigned = context.metrics.assigned("retries");
    loop {
        let next_due = waiting
            .peek()
            .map(|Reverse(first)| Duration::from_millis((first.due_ms - now_ms()).max(0) as u64))
            .unwrap_or(Duration::from_secs(3600));
        let room = held_events < max_scheduled.max(1);
        tokio::select! {
            () = context.shutdown.cancelled() => break,
            _ = tick.tick() => {
                commit(&consumer, &retry_topic, &ledger);
                rejoin.check(&consumer, &retry_topic, &ledger);
                assigned.set(ledger.held().len() as i64);
                context.metrics.scheduled_retries.set(held_events as i64);
            }
            () = tokio::time::sleep(next_due), if !waiting.is_empty() => {
                let now = now_ms();
                while waiting.peek().is_some_and(|Reverse(first)| first.due_ms <= now) {
                    if let Some(Reverse(due)) = waiting.pop() {
                        held_events -= due.job.delivery.events();
                        context.dispatcher.dispatch(due.job).await;
                    }
                }
            }
            message = consumer.recv(), if room => match message {
                Ok(message) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    match message.payload().map(serde_json::from_slice::<Delivery>) {
                        Some(Ok(delivery)) => {
                            let pending = ledger.read(partition, offset, 1).pop().expect("one pending");
                            seq += 1;
                            held_events += delivery.events();
                            waiting.push(Reverse(Scheduled {
                                due_ms: delivery.not_before_ms,
                                seq,
                                job: Job { delivery, pending: vec![pending] },
                            }));
                        }
                        _ => {
                            tracing::warn!(topic = %retry_topic, partition, offset, "skipping an unreadable retry record");
                            ledger.read(partition, offset, 0);
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(cause = %error, topic = %retry_topic, "cannot read the retry topic; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
    commit(&consumer, &retry_topic, &ledger);
    Ok(())
}
