//! Configuration kept in a compacted Kafka topic, as every instance sees
//! it: the topic is read from its start at boot and then tailed, so a
//! record written by one instance takes effect on every instance within
//! about a second, without ClickHouse. API keys ([`crate::keys`]) and the
//! destinations service's webhooks are kept this way.
//!
//! The topic has one partition, so the records of one id stay in order, and
//! is compacted, so it keeps the latest record of each id (the message key).

use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::kafka::{client_config, producer_config};
use crate::ops::Readiness;
use crate::settings::KafkaSettings;
use crate::supervise::Supervisor;

/// A record kept in a compacted topic, one per [`StoredRecord::id`].
pub trait StoredRecord: Serialize + DeserializeOwned + PartialEq + Send + Sync + 'static {
    /// What one record is, for log lines: `key`, `webhook`.
    const KIND: &'static str;
    /// The readiness check that passes once the whole topic was read.
    const READINESS_CHECK: &'static str;
    /// The name of the tailing thread (and of its supervised task).
    const THREAD_NAME: &'static str;

    /// The message key: a later record with the same id replaces this one.
    fn id(&self) -> &str;
}

/// The records of one topic, by id; cheap to clone and share.
pub struct RecordStore<R> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for RecordStore<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<R> Default for RecordStore<R> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                records: RwLock::default(),
                loaded: AtomicBool::new(false),
                version: AtomicU64::new(0),
            }),
        }
    }
}

struct Inner<R> {
    records: RwLock<HashMap<String, Held<R>>>,
    loaded: AtomicBool,
    /// Bumped by every record applied, so readers that index the records
    /// know when to index them again.
    version: AtomicU64,
}

/// A record, and when its id first arrived.
struct Held<R> {
    record: Arc<R>,
    /// The store's version when the first record with this id was applied:
    /// ids compare by it in topic order, the same on every instance that has
    /// read them both (the topics have one partition).
    first_seen: u64,
}

impl<R: StoredRecord> std::fmt::Debug for RecordStore<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordStore({} {}s)", self.len(), R::KIND)
    }
}

impl<R: StoredRecord> RecordStore<R> {
    /// A store filled by hand and already loaded, for tests of pure logic.
    pub fn with_records(records: impl IntoIterator<Item = R>) -> Self {
        let store = Self::default();
        for record in records {
            store.apply(record);
        }
        store.inner.loaded.store(true, Ordering::Release);
        store
    }

    /// Starts reading `topic` on a thread of its own, which `supervisor`
    /// watches; the store passes its readiness check once it has caught up
    /// with the topic.
    pub fn tail(
        settings: &KafkaSettings,
        topic: &str,
        readiness: &Readiness,
        supervisor: &Supervisor,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        readiness.register(R::READINESS_CHECK);
        let store = Self::default();
        let consumer: BaseConsumer<QuietEof> = client_config(settings)?
            .set(
                "group.id",
                format!("sluice-{}s-{}", R::KIND, uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "100")
            .create_with_context(QuietEof)
            .with_context(|| format!("cannot create the {} store's Kafka consumer", R::KIND))?;
        let tailer = Tailer {
            store: store.clone(),
            consumer,
            topic: topic.to_owned(),
            brokers: settings.brokers.clone(),
            readiness: readiness.clone(),
            shutdown,
        };
        supervisor
            .spawn_thread(R::THREAD_NAME, move || {
                tailer.run();
                Ok(())
            })
            .with_context(|| format!("cannot start the {} thread", R::THREAD_NAME))?;
        Ok(store)
    }

    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    pub fn get(&self, id: &str) -> Option<Arc<R>> {
        Some(self.inner.records.read().ok()?.get(id)?.record.clone())
    }

    /// Every record, in no particular order.
    pub fn all(&self) -> Vec<Arc<R>> {
        self.inner
            .records
            .read()
            .map(|records| records.values().map(|held| held.record.clone()).collect())
            .unwrap_or_default()
    }

    /// Of the records that satisfy `matches`, the one whose id arrived first
    /// (topic order: the same on every instance that has read them all).
    pub fn first_arrived(&self, matches: impl Fn(&R) -> bool) -> Option<Arc<R>> {
        let records = self.inner.records.read().ok()?;
        records
            .values()
            .filter(|held| matches(&held.record))
            .min_by_key(|held| held.first_seen)
            .map(|held| held.record.clone())
    }

    pub fn len(&self) -> usize {
        self.inner.records.read().map(|r| r.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until this store holds exactly `record`, so a record written
    /// through this instance takes effect here as soon as the write is answered.
    pub async fn wait_for(&self, record: &R, timeout: Duration) -> bool {
        let give_up = tokio::time::Instant::now() + timeout;
        loop {
            if self.get(record.id()).is_some_and(|held| *held == *record) {
                return true;
            }
            if tokio::time::Instant::now() >= give_up {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Holds `record`, replacing the one with its id.
    pub fn apply(&self, record: R) {
        if let Ok(mut records) = self.inner.records.write() {
            let version = self.inner.version.fetch_add(1, Ordering::AcqRel);
            let record = Arc::new(record);
            records
                .entry(record.id().to_owned())
                .and_modify(|held| held.record = record.clone())
                .or_insert(Held {
                    record,
                    first_seen: version,
                });
        }
    }

    /// A number that changes whenever a record is applied.
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }
}

/// Reaching the end of a partition is how the store knows it has loaded, not
/// an error worth a log line.
struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        // The end of the partition arrives here too, as a global error.
        let end_of_partition = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !end_of_partition {
            tracing::warn!(cause = %error, reason, "record store consumer error");
        }
    }
}

impl ConsumerContext for QuietEof {}

/// The thread that reads a topic into the store.
struct Tailer<R> {
    store: RecordStore<R>,
    consumer: BaseConsumer<QuietEof>,
    topic: String,
    brokers: String,
    readiness: Readiness,
    shutdown: CancellationToken,
}

impl<R: StoredRecord> Tailer<R> {
    fn run(self) {
        let Some(partitions) = self.assign_all() else {
            return;
        };
        let mut behind: BTreeSet<i32> = partitions.into_iter().collect();
        while !self.shutdown.is_cancelled() {
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(message)) => self.apply(message.payload().unwrap_or_default()),
                Some(Err(KafkaError::PartitionEOF(partition)))
                    if behind.remove(&partition) && behind.is_empty() =>
                {
                    self.store.inner.loaded.store(true, Ordering::Release);
                    self.readiness.set(R::READINESS_CHECK, true);
                    tracing::info!(records = self.store.len(), kind = R::KIND, topic = %self.topic, "record store loaded");
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    tracing::warn!(cause = %error, topic = %self.topic, "record store cannot read; retrying");
                }
            }
        }
    }

    /// Assigns every partition of the topic from its start, retrying while
    /// the broker does not answer.
    fn assign_all(&self) -> Option<Vec<i32>> {
        loop {
            if self.shutdown.is_cancelled() {
                return None;
            }
            let assigned = self
                .consumer
                .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
                .map_err(|error| error.to_string())
                .and_then(|metadata| {
                    let partitions: Vec<i32> = metadata
                        .topics()
                        .iter()
                        .flat_map(|topic| topic.partitions().iter().map(|p| p.id()))
                        .collect();
                    if partitions.is_empty() {
                        return Err(format!("topic {} has no partitions", self.topic));
                    }
                    let mut list = TopicPartitionList::new();
                    for partition in &partitions {
                        list.add_partition_offset(&self.topic, *partition, Offset::Beginning)
                            .map_err(|error| error.to_string())?;
                    }
                    self.consumer
                        .assign(&list)
                        .map_err(|error| error.to_string())?;
                    Ok(partitions)
                });
            match assigned {
                Ok(partitions) => return Some(partitions),
                Err(cause) => {
                    tracing::warn!(cause = %cause, topic = %self.topic, "record store cannot start; retrying");
                    self.readiness.fail(
                        R::READINESS_CHECK,
                        format!(
                            "cannot read the {} topic {} from {} (--kafka-brokers): {cause}",
                            R::KIND,
                            self.topic,
                            self.brokers
                        ),
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    fn apply(&self, payload: &[u8]) {
        match serde_json::from_slice::<R>(payload) {
            Ok(record) => self.store.apply(record),
            Err(error) => {
                tracing::warn!(cause = %error, kind = R::KIND, topic = %self.topic, "skipping an unreadable record");
            }
        }
    }
}

/// Writes records to their topic (`acks=all`).
pub struct RecordWriter<R> {
    producer: FutureProducer,
    topic: String,
    records: PhantomData<fn(&R)>,
}

impl<R: StoredRecord> RecordWriter<R> {
    pub fn new(settings: &KafkaSettings, topic: &str) -> anyhow::Result<Self> {
        let producer = producer_config(settings)?
            .set("message.timeout.ms", "10000")
            .create()
            .with_context(|| format!("cannot create the {} writer's Kafka producer", R::KIND))?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            records: PhantomData,
        })
    }

    /// Resolves once the broker has the record.
    pub async fn put(&self, record: &R) -> anyhow::Result<()> {
        let value = serde_json::to_vec(record)?;
        let message = FutureRecord::to(&self.topic)
            .key(record.id())
            .payload(&value);
        self.producer
            .send(message, Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)
            .with_context(|| {
                format!("cannot write {} {} to {}", R::KIND, record.id(), self.topic)
            })?;
        Ok(())
    }
}
