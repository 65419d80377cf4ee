//! Every service's view of the keys: the keys topic, read from its start at
//! boot and then tailed, so a new or revoked key takes effect on every
//! gateway and query API within about a second, without ClickHouse.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::record::{KeyDigest, KeyRecord, MAX_KEY_BYTES, Scope};
use crate::kafka::{client_config, producer_config};
use crate::ops::Readiness;
use crate::settings::KafkaSettings;
use crate::supervise::Supervisor;

/// The readiness check that the store sets once it has read the whole topic.
pub const READINESS_CHECK: &str = "keys";

/// Why a presented key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no API key: send `Authorization: Bearer KEY`")]
    Missing,
    #[error("unknown API key")]
    Unknown,
    #[error("this API key was revoked")]
    Revoked,
    #[error("this API key lacks the `{0}` scope")]
    MissingScope(Scope),
    #[error("the key store is still loading")]
    NotLoaded,
}

/// The keys, by `key_id`; cheap to clone and share.
#[derive(Clone, Default)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    records: RwLock<HashMap<String, Arc<KeyRecord>>>,
    loaded: AtomicBool,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.inner.records.read().map(|r| r.len()).unwrap_or(0);
        write!(f, "KeyStore({count} keys)")
    }
}

impl KeyStore {
    /// A store filled by hand and already loaded, for tests of pure logic.
    pub fn with_records(records: impl IntoIterator<Item = KeyRecord>) -> Self {
        let store = Self::default();
        for record in records {
            store.apply(record);
        }
        store.inner.loaded.store(true, Ordering::Release);
        store
    }

    /// Starts reading `settings.keys_topic` on a thread of its own, which
    /// `supervisor` watches; the store sets the `keys` readiness check once it
    /// has caught up with the topic.
    pub fn tail(
        settings: &KafkaSettings,
        readiness: &Readiness,
        supervisor: &Supervisor,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        readiness.register(READINESS_CHECK);
        let store = Self::default();
        let consumer: BaseConsumer<QuietEof> = client_config(settings)?
            .set("group.id", format!("sluice-keys-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "100")
            .create_with_context(QuietEof)
            .context("cannot create the key store's Kafka consumer")?;
        let tailer = Tailer {
            store: store.clone(),
            consumer,
            topic: settings.keys_topic.clone(),
            brokers: settings.brokers.clone(),
            readiness: readiness.clone(),
            shutdown,
        };
        supervisor
            .spawn_thread("key store", move || {
                tailer.run();
                Ok(())
            })
            .context("cannot start the key store thread")?;
        Ok(store)
    }

    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// The record of `presented` if it is a live key with `scope`.
    pub fn authorize(&self, presented: &str, scope: Scope) -> Result<Arc<KeyRecord>, AuthError> {
        if !self.is_loaded() {
            return Err(AuthError::NotLoaded);
        }
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        if presented.len() > MAX_KEY_BYTES {
            return Err(AuthError::Unknown);
        }
        let digest = KeyDigest::of(presented);
        let record = self
            .get(&digest.key_id())
            .filter(|record| record.matches(&digest))
            .ok_or(AuthError::Unknown)?;
        if record.is_revoked() {
            return Err(AuthError::Revoked);
        }
        if !record.allows(scope) {
            return Err(AuthError::MissingScope(scope));
        }
        Ok(record)
    }

    pub fn get(&self, key_id: &str) -> Option<Arc<KeyRecord>> {
        self.inner.records.read().ok()?.get(key_id).cloned()
    }

    /// Every record, or a project's, ordered by creation.
    pub fn list(&self, project_id: Option<&str>) -> Vec<Arc<KeyRecord>> {
        let Ok(records) = self.inner.records.read() else {
            return Vec::new();
        };
        let mut list: Vec<_> = records
            .values()
            .filter(|record| project_id.is_none_or(|p| record.project_id == p))
            .cloned()
            .collect();
        list.sort_by(|a, b| (a.created_at_ms, &a.key_id).cmp(&(b.created_at_ms, &b.key_id)));
        list
    }

    /// Waits until this store holds exactly `record`, so a key written through
    /// this service works here as soon as the write is answered.
    pub async fn wait_for(&self, record: &KeyRecord, timeout: Duration) -> bool {
        let give_up = tokio::time::Instant::now() + timeout;
        loop {
            if self
                .get(&record.key_id)
                .is_some_and(|held| *held == *record)
            {
                return true;
            }
            if tokio::time::Instant::now() >= give_up {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn apply(&self, record: KeyRecord) {
        if let Ok(mut records) = self.inner.records.write() {
            records.insert(record.key_id.clone(), Arc::new(record));
        }
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
            tracing::warn!(cause = %error, reason, "key store consumer error");
        }
    }
}

impl ConsumerContext for QuietEof {}

/// The thread that reads the keys topic into the store.
struct Tailer {
    store: KeyStore,
    consumer: BaseConsumer<QuietEof>,
    topic: String,
    brokers: String,
    readiness: Readiness,
    shutdown: CancellationToken,
}

impl Tailer {
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
                    self.readiness.set(READINESS_CHECK, true);
                    tracing::info!(keys = self.store.list(None).len(), topic = %self.topic, "key store loaded");
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    tracing::warn!(cause = %error, topic = %self.topic, "key store cannot read; retrying");
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
                    tracing::warn!(cause = %cause, topic = %self.topic, "key store cannot start; retrying");
                    self.readiness.fail(
                        READINESS_CHECK,
                        format!(
                            "cannot read the keys topic {} from {} (--kafka-brokers): {cause}",
                            self.topic, self.brokers
                        ),
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    fn apply(&self, payload: &[u8]) {
        match serde_json::from_slice::<KeyRecord>(payload) {
            Ok(record) => self.store.apply(record),
            Err(error) => {
                tracing::warn!(cause = %error, topic = %self.topic, "skipping an unreadable key record");
            }
        }
    }
}

/// Writes key records to the keys topic (`acks=all`).
pub struct KeyWriter {
    producer: FutureProducer,
    topic: String,
}

impl KeyWriter {
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        let producer = producer_config(settings)?
            .set("message.timeout.ms", "10000")
            .create()
            .context("cannot create the key writer's Kafka producer")?;
        Ok(Self {
            producer,
            topic: settings.keys_topic.clone(),
        })
    }

    /// Resolves once the broker has the record.
    pub async fn put(&self, record: &KeyRecord) -> anyhow::Result<()> {
        let value = serde_json::to_vec(record)?;
        let message = FutureRecord::to(&self.topic)
            .key(&record.key_id)
            .payload(&value);
        self.producer
            .send(message, Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)
            .with_context(|| format!("cannot write key {} to {}", record.key_id, self.topic))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::record::KeyLimits;

    fn record(key: &str, scopes: Vec<Scope>) -> KeyRecord {
        KeyRecord::for_key(key, "demo", scopes, String::new(), KeyLimits::default(), 1)
    }

    #[test]
    fn authorizes_live_keys_with_the_scope() {
        let mut revoked = record("revoked-key-1", vec![Scope::Ingest]);
        revoked.revoked_at_ms = Some(2);
        let store = KeyStore::with_records([
            record("ingest-key-1", vec![Scope::Ingest]),
            record("reader-key-1", vec![Scope::Read]),
            revoked,
        ]);
        let ok = store.authorize("ingest-key-1", Scope::Ingest).unwrap();
        assert_eq!(ok.project_id, "demo");
        assert_eq!(
            store.authorize("reader-key-1", Scope::Ingest),
            Err(AuthError::MissingScope(Scope::Ingest))
        );
        assert_eq!(
            store.authorize("revoked-key-1", Scope::Ingest),
            Err(AuthError::Revoked)
        );
        assert_eq!(
            store.authorize("ingest-key-2", Scope::Ingest),
            Err(AuthError::Unknown)
        );
        assert_eq!(store.authorize("", Scope::Ingest), Err(AuthError::Missing));
        assert_eq!(
            store.authorize(&"k".repeat(MAX_KEY_BYTES + 1), Scope::Ingest),
            Err(AuthError::Unknown)
        );
    }

    #[test]
    fn refuses_everything_until_loaded() {
        let store = KeyStore::default();
        store.apply(record("ingest-key-1", vec![Scope::Ingest]));
        assert_eq!(
            store.authorize("ingest-key-1", Scope::Ingest),
            Err(AuthError::NotLoaded)
        );
    }

    #[test]
    fn a_later_record_replaces_an_earlier_one() {
        let store = KeyStore::with_records([record("ingest-key-1", vec![Scope::Ingest])]);
        let mut revoked = record("ingest-key-1", vec![Scope::Ingest]);
        revoked.revoked_at_ms = Some(3);
        store.apply(revoked);
        assert_eq!(store.list(Some("demo")).len(), 1);
        assert_eq!(
            store.authorize("ingest-key-1", Scope::Ingest),
            Err(AuthError::Revoked)
        );
    }
}
