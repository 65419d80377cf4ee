//! When a source offset may be committed: only once every delivery matched
//! from it, and from every message before it, is settled, meaning delivered,
//! dead-lettered, or durably written to the retry topic. A SIGKILL then
//! loses nothing: the next owner of the partition resumes at the committed
//! offset and matches again whatever was not settled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Unsettled deliveries per offset of one partition, and how far it was read.
#[derive(Debug, Default)]
struct PartitionLedger {
    /// Bumped when the partition is assigned again, so a settlement from an
    /// earlier assignment cannot move the new one's offsets.
    generation: u64,
    unsettled: BTreeMap<i64, usize>,
    /// The offset after the last message read, once one was.
    read_up_to: Option<i64>,
    /// The offset last reported as committable.
    committed: Option<i64>,
}

impl PartitionLedger {
    fn committable(&self) -> Option<i64> {
        match self.unsettled.keys().next() {
            Some(&lowest) => Some(lowest),
            None => self.read_up_to,
        }
    }
}

/// The ledgers of every partition this process holds; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OffsetLedger {
    partitions: Arc<Mutex<HashMap<i32, PartitionLedger>>>,
    /// Generations are never reused, also after a partition was revoked
    /// and its ledger dropped.
    generations: Arc<AtomicU64>,
}

/// One delivery still to settle; settling it (or dropping it, which
/// leaves it unsettled forever) is how its offset becomes committable.
#[derive(Debug)]
pub struct Pending {
    ledger: OffsetLedger,
    partition: i32,
    offset: i64,
    generation: u64,
    settled: bool,
}

impl Pending {
    /// The delivery is delivered, dead-lettered, or in the retry topic.
    pub fn settle(mut self) {
        self.settled = true;
        let mut partitions = self.ledger.lock();
        if let Some(ledger) = partitions.get_mut(&self.partition)
            && ledger.generation == self.generation
            && let Some(count) = ledger.unsettled.get_mut(&self.offset)
        {
            *count -= 1;
            if *count == 0 {
                ledger.unsettled.remove(&self.offset);
            }
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn offset(&self) -> i64 {
        self.offset
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.settled {
            tracing::debug!(
                partition = self.partition,
                offset = self.offset,
                "a delivery was dropped unsettled; its offset stays uncommitted"
            );
        }
    }
}

impl OffsetLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, PartitionLedger>> {
        self.partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The partition was assigned (again): a fresh ledger.
    pub fn assign(&self, partition: i32) {
        let generation = self.next_generation();
        let mut partitions = self.lock();
        partitions.insert(
            partition,
            PartitionLedger {
                generation,
                ..PartitionLedger::default()
            },
        );
    }

    /// The partition was revoked: its offsets are no longer this process's
    /// to commit, whatever settles later.
    pub fn revoke(&self, partition: i32) {
        let mut partitions = self.lock();
        if let Some(ledger) = partitions.get_mut(&partition) {
            ledger.generation += 1;
            ledger.unsettled.clear();
            ledger.read_up_to = None;
            ledger.committed = None;
        }
        partitions.remove(&partition);
    }

    /// Records that the message at `offset` was read and matched `matches`
    /// deliveries, returning one [`Pending`] per delivery. A partition not
    /// assigned yet is assigned now.
    pub fn read(&self, partition: i32, offset: i64, matches: usize) -> Vec<Pending> {
        let mut partitions = self.lock();
        let ledger = partitions
            .entry(partition)
            .or_insert_with(|| PartitionLedger {
                generation: self.next_generation(),
                ..PartitionLedger::default()
            });
        ledger.read_up_to = Some(offset + 1);
        if matches > 0 {
            *ledger.unsettled.entry(offset).or_default() += matches;
        }
        let generation = ledger.generation;
        drop(partitions);
        (0..matches)
            .map(|_| Pending {
                ledger: self.clone(),
                partition,
                offset,
                generation,
                settled: false,
            })
            .collect()
    }

    /// Per partition, the offset to commit now (the next message to read
    /// after a restart), when it moved since the last call.
    pub fn to_commit(&self) -> Vec<(i32, i64)> {
        let mut partitions = self.lock();
        let mut moved = Vec::new();
        for (partition, ledger) in partitions.iter_mut() {
            if let Some(offset) = ledger.committable()
                && ledger.committed != Some(offset)
            {
                ledger.committed = Some(offset);
                moved.push((*partition, offset));
            }
        }
        moved.sort_unstable();
        moved
    }

    fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether this process holds any partition.
    pub fn holds_any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// The partitions this process holds.
    pub fn held(&self) -> BTreeSet<i32> {
        self.lock().keys().copied().collect()
    }

    /// Unsettled deliveries across partitions (for metrics).
    pub fn unsettled(&self) -> usize {
        self.lock()
            .values()
            .map(|ledger| ledger.unsettled.values().sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_up_to_the_lowest_unsettled_offset() {
        let ledger = OffsetLedger::default();
        ledger.assign(0);
        assert_eq!(ledger.to_commit(), vec![]);
        let mut at_10 = ledger.read(0, 10, 2);
        let _ = ledger.read(0, 11, 0);
        let at_12 = ledger.read(0, 12, 1);
        // Offset 10 holds two unsettled deliveries: nothing from it on.
        assert_eq!(ledger.to_commit(), vec![(0, 10)]);
        at_12.into_iter().for_each(Pending::settle);
        assert_eq!(ledger.to_commit(), vec![]);
        at_10.pop().unwrap().settle();
        assert_eq!(ledger.unsettled(), 1);
        assert_eq!(ledger.to_commit(), vec![]);
        at_10.pop().unwrap().settle();
        assert_eq!(ledger.to_commit(), vec![(0, 13)]);
        assert_eq!(ledger.unsettled(), 0);
    }

    #[test]
    fn a_revoked_partition_ignores_late_settlements() {
        let ledger = OffsetLedger::default();
        ledger.assign(3);
        let pending = ledger.read(3, 5, 1);
        ledger.revoke(3);
        ledger.assign(3);
        let _ = ledger.read(3, 7, 1);
        pending.into_iter().for_each(Pending::settle);
        // The settlement of the old assignment does not move the new one.
        assert_eq!(ledger.to_commit(), vec![(3, 7)]);
    }

    #[test]
    fn a_settlement_from_before_a_revocation_never_moves_the_same_offset_again() {
        let ledger = OffsetLedger::default();
        ledger.assign(3);
        let old = ledger.read(3, 5, 1);
        ledger.revoke(3);
        assert!(!ledger.holds_any());
        // Assigned again, the partition resumes at the same offset.
        ledger.assign(3);
        let _new = ledger.read(3, 5, 1);
        old.into_iter().for_each(Pending::settle);
        assert_eq!(ledger.to_commit(), vec![(3, 5)]);
        assert_eq!(ledger.unsettled(), 1);
    }

    #[test]
    fn a_dropped_delivery_holds_its_offset_back() {
        let ledger = OffsetLedger::default();
        drop(ledger.read(1, 0, 1));
        let _ = ledger.read(1, 1, 0);
        assert_eq!(ledger.to_commit(), vec![(1, 0)]);
    }
}
