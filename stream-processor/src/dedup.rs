//! Client retries: the same `event_id` of a project counts once, as long as
//! the retry reaches its partition within the dedup horizon of the first copy.
//!
//! "Within the horizon" is measured in received time (set by the gateway, or
//! the Kafka timestamp for direct producers): a message is a duplicate when
//! an earlier message of its partition had the same (project, event_id) and
//! was received at most `horizon` before the newest received time seen in the
//! partition so far. That is a function of the message sequence alone, so a
//! replay makes the same decisions. The gateway keys messages by project and
//! event id, so retries share a partition; producers that key otherwise get
//! no deduplication across partitions.
//!
//! Ids are kept as 128-bit hashes with their received time (about 50 bytes
//! each in memory): a partition receiving R events/s holds R × horizon of them.

use std::collections::HashMap;

use sluice_schemas::rollup::hash::hash_fields;

#[derive(Debug, Clone, Default)]
pub struct RecentIds {
    horizon_ms: i64,
    newest_received_ms: i64,
    /// Hash of (project, event_id) to the received time of the first copy.
    ids: HashMap<u128, i64>,
    /// Size after the last prune; pruning again at twice that keeps it amortized.
    pruned_len: usize,
}

fn id_hash(project_id: &str, event_id: &str) -> u128 {
    let fields: [&[u8]; 2] = [project_id.as_bytes(), event_id.as_bytes()];
    (u128::from(hash_fields(0x3333, &fields)) << 64) | u128::from(hash_fields(0x4444, &fields))
}

impl RecentIds {
    pub fn new(horizon_ms: i64, newest_received_ms: i64) -> Self {
        Self {
            horizon_ms,
            newest_received_ms,
            ids: HashMap::new(),
            pruned_len: 1_024,
        }
    }

    /// The newest received time seen, kept in the checkpoint so that a
    /// restart rebuilds exactly the ids that still matter.
    pub fn newest_received_ms(&self) -> i64 {
        self.newest_received_ms
    }

    /// The oldest received time that can still make a duplicate.
    pub fn horizon_start_ms(&self) -> i64 {
        self.newest_received_ms.saturating_sub(self.horizon_ms)
    }

    /// Records a message; true when it repeats an id seen within the horizon.
    pub fn is_repeat(&mut self, project_id: &str, event_id: &str, received_ms: i64) -> bool {
        self.newest_received_ms = self.newest_received_ms.max(received_ms);
        let hash = id_hash(project_id, event_id);
        let horizon_start = self.horizon_start_ms();
        match self.ids.get(&hash) {
            Some(first) if *first >= horizon_start => true,
            _ => {
                self.ids.insert(hash, received_ms);
                if self.ids.len() >= self.pruned_len * 2 {
                    self.ids.retain(|_, received| *received >= horizon_start);
                    self.pruned_len = self.ids.len().max(1_024);
                }
                false
            }
        }
    }

    /// Restores an id stored before the checkpoint (from the `events` table).
    pub fn restore(&mut self, project_id: &str, event_id: &str, received_ms: i64) {
        let hash = id_hash(project_id, event_id);
        // The live set holds the latest copy that was not a repeat (one past
        // the horizon starts a new event), and those are what `events` holds.
        let latest = self.ids.entry(hash).or_insert(received_ms);
        *latest = (*latest).max(received_ms);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_count_within_the_horizon_only() {
        let mut ids = RecentIds::new(1_000, 0);
        assert!(!ids.is_repeat("p", "a", 10_000));
        assert!(ids.is_repeat("p", "a", 10_500));
        assert!(!ids.is_repeat("q", "a", 10_600), "projects are separate");
        assert!(ids.is_repeat("p", "a", 11_000));
        // Received 1,001 ms after the first copy: beyond the horizon, a new event.
        assert!(!ids.is_repeat("p", "a", 11_001));
        assert!(ids.is_repeat("p", "a", 11_500));
    }

    #[test]
    fn restored_ids_decide_as_the_originals_did() {
        let mut original = RecentIds::new(5_000, 0);
        let mut decisions = Vec::new();
        for n in 0..2_000i64 {
            let id = format!("e{}", (n * 7) % 600);
            decisions.push(original.is_repeat("p", &id, 1_000 + n * 10));
        }
        // Restart after message 1,000: the ids stored before it, within the horizon.
        let mut restored = RecentIds::new(5_000, 1_000 + 999 * 10);
        for n in 0..1_000i64 {
            let id = format!("e{}", (n * 7) % 600);
            if !decisions[n as usize] && 1_000 + n * 10 >= restored.horizon_start_ms() {
                restored.restore("p", &id, 1_000 + n * 10);
            }
        }
        for n in 1_000..2_000i64 {
            let id = format!("e{}", (n * 7) % 600);
            assert_eq!(
                restored.is_repeat("p", &id, 1_000 + n * 10),
                decisions[n as usize],
                "{n}"
            );
        }
        assert!(!restored.is_empty() && restored.len() <= 600);
    }
}
