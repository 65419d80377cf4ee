//! Every service's view of the keys: the keys topic, read from its start at
//! boot and then tailed ([`crate::record_topic`]), so a new or revoked key
//! takes effect on every gateway and query API within about a second,
//! without ClickHouse.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::record::{KeyDigest, KeyRecord, MAX_KEY_BYTES};
use sluice_schemas::time_format::format_rfc3339_ms;

use crate::ops::Readiness;
use crate::record_topic::{RecordStore, RecordWriter, StoredRecord};
use crate::settings::KafkaSettings;
use crate::supervise::Supervisor;

/// The readiness check that the store sets once it has read the whole topic.
pub const READINESS_CHECK: &str = "keys";

/// Why a presented key is not a live one ([`crate::access::AuthError`]
/// says it to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    /// The topic is still being read.
    NotLoaded,
    /// No key was presented.
    Missing,
    Unknown,
    Revoked,
    /// Expired at this instant (RFC 3339).
    Expired(String),
}

impl StoredRecord for KeyRecord {
    const KIND: &'static str = "key";
    const READINESS_CHECK: &'static str = READINESS_CHECK;
    const THREAD_NAME: &'static str = "key store";

    fn id(&self) -> &str {
        &self.key_id
    }
}

/// The keys, by `key_id`; cheap to clone and share.
#[derive(Clone, Default)]
pub struct KeyStore {
    records: RecordStore<KeyRecord>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyStore({} keys)", self.records.len())
    }
}

impl KeyStore {
    /// A store filled by hand and already loaded, for tests of pure logic.
    pub fn with_records(records: impl IntoIterator<Item = KeyRecord>) -> Self {
        Self {
            records: RecordStore::with_records(records),
        }
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
        let records = RecordStore::tail(
            settings,
            &settings.keys_topic,
            readiness,
            supervisor,
            shutdown,
        )?;
        Ok(Self { records })
    }

    pub fn is_loaded(&self) -> bool {
        self.records.is_loaded()
    }

    /// The record of `presented` if it is a live key (known, not revoked,
    /// not expired at `now_ms`).
    pub fn live(&self, presented: &str, now_ms: i64) -> Result<Arc<KeyRecord>, KeyRefusal> {
        if !self.is_loaded() {
            return Err(KeyRefusal::NotLoaded);
        }
        if presented.is_empty() {
            return Err(KeyRefusal::Missing);
        }
        if presented.len() > MAX_KEY_BYTES {
            return Err(KeyRefusal::Unknown);
        }
        let digest = KeyDigest::of(presented);
        let record = self
            .get(&digest.key_id())
            .filter(|record| record.matches(&digest))
            .ok_or(KeyRefusal::Unknown)?;
        if record.is_revoked() {
            return Err(KeyRefusal::Revoked);
        }
        if let Some(at) = record.expires_at_ms.filter(|at| *at <= now_ms) {
            return Err(KeyRefusal::Expired(format_rfc3339_ms(at)));
        }
        Ok(record)
    }

    pub fn get(&self, key_id: &str) -> Option<Arc<KeyRecord>> {
        self.records.get(key_id)
    }

    /// Every record, or a project's, ordered by creation.
    pub fn list(&self, project_id: Option<&str>) -> Vec<Arc<KeyRecord>> {
        let mut list: Vec<_> = self
            .records
            .all()
            .into_iter()
            .filter(|record| project_id.is_none_or(|p| record.project_id == p))
            .collect();
        list.sort_by(|a, b| (a.created_at_ms, &a.key_id).cmp(&(b.created_at_ms, &b.key_id)));
        list
    }

    /// Waits until this store holds exactly `record`, so a key written through
    /// this service works here as soon as the write is answered.
    pub async fn wait_for(&self, record: &KeyRecord, timeout: Duration) -> bool {
        self.records.wait_for(record, timeout).await
    }

    #[cfg(test)]
    fn apply(&self, record: KeyRecord) {
        self.records.apply(record);
    }
}

/// Writes key records to the keys topic (`acks=all`).
pub struct KeyWriter {
    writer: RecordWriter<KeyRecord>,
}

impl KeyWriter {
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        Ok(Self {
            writer: RecordWriter::new(settings, &settings.keys_topic)?,
        })
    }

    /// Resolves once the broker has the record.
    pub async fn put(&self, record: &KeyRecord) -> anyhow::Result<()> {
        self.writer.put(record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::record::{KeyLimits, Scope};
    use sluice_schemas::time_format::now_ms;

    fn record(key: &str, scopes: Vec<Scope>) -> KeyRecord {
        KeyRecord::for_key(key, "demo", scopes, String::new(), KeyLimits::default(), 1)
    }

    #[test]
    fn finds_live_keys_only() {
        let mut revoked = record("revoked-key-1", vec![Scope::Ingest]);
        revoked.revoked_at_ms = Some(2);
        let mut expiring = record("expiring-key-1", vec![Scope::Read]);
        expiring.expires_at_ms = Some(1_000);
        let store = KeyStore::with_records([
            record("ingest-key-1", vec![Scope::Ingest]),
            revoked,
            expiring,
        ]);
        let ok = store.live("ingest-key-1", 5).unwrap();
        assert_eq!(ok.project_id, "demo");
        assert!(ok.allows(Scope::Ingest));
        assert_eq!(store.live("revoked-key-1", 5), Err(KeyRefusal::Revoked));
        assert_eq!(store.live("ingest-key-2", 5), Err(KeyRefusal::Unknown));
        assert_eq!(store.live("", 5), Err(KeyRefusal::Missing));
        assert_eq!(
            store.live(&"k".repeat(MAX_KEY_BYTES + 1), 5),
            Err(KeyRefusal::Unknown)
        );
        assert!(store.live("expiring-key-1", 999).is_ok());
        assert_eq!(
            store.live("expiring-key-1", 1_000),
            Err(KeyRefusal::Expired(format_rfc3339_ms(1_000)))
        );
    }

    #[test]
    fn refuses_everything_until_loaded() {
        let store = KeyStore::default();
        store.apply(record("ingest-key-1", vec![Scope::Ingest]));
        assert_eq!(
            store.live("ingest-key-1", now_ms()),
            Err(KeyRefusal::NotLoaded)
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
            store.live("ingest-key-1", now_ms()),
            Err(KeyRefusal::Revoked)
        );
    }
}
