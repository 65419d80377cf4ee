//! When each API key was last used. Every instance notes the keys it
//! authenticates in memory (a read lock and an atomic store per request) and
//! writes what changed to the access topic every [`FLUSH_EVERY`], skipping
//! keys whose stored time is less than [`RESOLUTION_MS`] old, so a busy key
//! costs one record a minute per instance, not one per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sluice_schemas::time_format::now_ms;
use tokio_util::sync::CancellationToken;

use super::records::{AccessRecord, KeyUsage};
use super::store::{AccessStore, AccessWriter};

/// How often an instance writes the keys it saw used.
pub const FLUSH_EVERY: Duration = Duration::from_secs(15);
/// How fresh "last used" is kept: a newer use within this is not written.
pub const RESOLUTION_MS: i64 = 60_000;

/// The keys this instance saw used since its last flush.
#[derive(Clone, Default)]
pub struct KeyUsageTracker {
    seen: Arc<RwLock<HashMap<String, AtomicI64>>>,
}

impl KeyUsageTracker {
    pub fn used(&self, key_id: &str) {
        let now = now_ms();
        if let Ok(seen) = self.seen.read()
            && let Some(at) = seen.get(key_id)
        {
            at.store(now, Ordering::Relaxed);
            return;
        }
        if let Ok(mut seen) = self.seen.write() {
            seen.entry(key_id.to_owned())
                .or_insert_with(|| AtomicI64::new(now))
                .store(now, Ordering::Relaxed);
        }
    }

    /// The uses noted since the last call, emptying the notes.
    pub fn take(&self) -> Vec<(String, i64)> {
        self.seen
            .write()
            .map(|mut seen| {
                seen.drain()
                    .map(|(key_id, at)| (key_id, at.into_inner()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes the noted uses every [`FLUSH_EVERY`] until `shutdown`.
    pub async fn flush_until(
        self,
        store: AccessStore,
        writer: AccessWriter,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(FLUSH_EVERY) => {}
            }
            for (key_id, at) in self.take() {
                if store
                    .key_last_used(&key_id)
                    .is_some_and(|stored| at - stored < RESOLUTION_MS)
                {
                    continue;
                }
                let record = AccessRecord::KeyUsage(KeyUsage {
                    usage_id: KeyUsage::id_of(&key_id),
                    key_id,
                    last_used_at_ms: at,
                });
                // Last-used is a hint: a broker that is down costs a
                // minute of it, never a request.
                if let Err(error) = writer.put(&record).await {
                    tracing::warn!(cause = %format!("{error:#}"), "cannot record key usage");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_each_key_once_with_its_latest_use() {
        let tracker = KeyUsageTracker::default();
        tracker.used("k1");
        tracker.used("k2");
        tracker.used("k1");
        let mut taken = tracker.take();
        taken.sort();
        assert_eq!(
            taken.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["k1", "k2"]
        );
        assert!(taken.iter().all(|(_, at)| *at > 0));
        assert!(tracker.take().is_empty());
    }
}
