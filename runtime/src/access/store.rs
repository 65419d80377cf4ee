//! Every service's view of the access topic ([`crate::record_topic`]):
//! users, sessions and key usage, by id, with the lookups sign-in needs.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::records::{AccessRecord, KeyUsage, SessionRecord, UserRecord};
use crate::ops::Readiness;
use crate::record_topic::{RecordStore, RecordWriter};
use crate::settings::KafkaSettings;
use crate::supervise::Supervisor;

/// The records of the access topic; cheap to clone and share.
#[derive(Clone, Default)]
pub struct AccessStore {
    records: RecordStore<AccessRecord>,
}

impl std::fmt::Debug for AccessStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessStore({} records)", self.records.len())
    }
}

impl AccessStore {
    /// A store filled by hand and already loaded, for tests of pure logic.
    pub fn with_records(records: impl IntoIterator<Item = AccessRecord>) -> Self {
        Self {
            records: RecordStore::with_records(records),
        }
    }

    /// Starts tailing `settings.access_topic` (see [`RecordStore::tail`]).
    pub fn tail(
        settings: &KafkaSettings,
        readiness: &Readiness,
        supervisor: &Supervisor,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let records = RecordStore::tail(
            settings,
            &settings.access_topic,
            readiness,
            supervisor,
            shutdown,
        )?;
        Ok(Self { records })
    }

    pub fn is_loaded(&self) -> bool {
        self.records.is_loaded()
    }

    pub fn user(&self, user_id: &str) -> Option<Arc<UserRecord>> {
        match self.records.get(user_id)?.as_ref() {
            AccessRecord::User(user) => Some(Arc::new(user.clone())),
            _ => None,
        }
    }

    /// The live user with `email` (compared lower-cased). Should two
    /// instances have created one at the same moment, the first in the
    /// topic holds it, on every instance alike (see [`Self::holds_email`]).
    pub fn user_by_email(&self, email: &str) -> Option<Arc<UserRecord>> {
        let email = email.trim().to_lowercase();
        let held = self.records.first_arrived(|record| {
            matches!(record, AccessRecord::User(user) if user.email == email && !user.is_deleted())
        })?;
        match held.as_ref() {
            AccessRecord::User(user) => Some(Arc::new(user.clone())),
            _ => None,
        }
    }

    /// Whether `user`, just written and read back here, holds its email:
    /// no live user with that email came before it in the topic. Every
    /// instance that has read both answers alike, so of two users created
    /// with one email at once, exactly one creator finds its user holds it.
    pub fn holds_email(&self, user: &UserRecord) -> bool {
        self.user_by_email(&user.email)
            .is_some_and(|holder| holder.user_id == user.user_id)
    }

    /// Every user not deleted, ordered by creation.
    pub fn users(&self) -> Vec<Arc<UserRecord>> {
        let mut users: Vec<_> = self
            .records
            .all()
            .iter()
            .filter_map(|record| match record.as_ref() {
                AccessRecord::User(user) if !user.is_deleted() => Some(Arc::new(user.clone())),
                _ => None,
            })
            .collect();
        users.sort_by(|a, b| (a.created_at_ms, &a.user_id).cmp(&(b.created_at_ms, &b.user_id)));
        users
    }

    pub fn session(&self, session_id: &str) -> Option<SessionRecord> {
        match self.records.get(session_id)?.as_ref() {
            AccessRecord::Session(session) => Some(session.clone()),
            _ => None,
        }
    }

    /// When the key `key_id` was last used, as far as any instance wrote.
    pub fn key_last_used(&self, key_id: &str) -> Option<i64> {
        match self.records.get(&KeyUsage::id_of(key_id))?.as_ref() {
            AccessRecord::KeyUsage(usage) => Some(usage.last_used_at_ms),
            _ => None,
        }
    }

    /// Waits until this store holds exactly `record` (read-your-write).
    pub async fn wait_for(&self, record: &AccessRecord, timeout: Duration) -> bool {
        self.records.wait_for(record, timeout).await
    }

    #[cfg(test)]
    pub(crate) fn apply(&self, record: AccessRecord) {
        self.records.apply(record);
    }
}

/// Writes access records (`acks=all`).
pub struct AccessWriter {
    writer: RecordWriter<AccessRecord>,
}

impl AccessWriter {
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        Ok(Self {
            writer: RecordWriter::new(settings, &settings.access_topic)?,
        })
    }

    /// Resolves once the broker has the record.
    pub async fn put(&self, record: &AccessRecord) -> anyhow::Result<()> {
        self.writer.put(record).await
    }
}
