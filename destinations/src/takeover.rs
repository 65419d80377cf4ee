//! When a consumer leaves its group and joins again, so that every
//! partition is read while an instance lives.
//!
//! tansu 0.6.0 (docs/failure-modes.md) gets two things wrong that a member
//! cannot see from inside the group:
//! - a member that joins within the session timeout of a dead one (a
//!   restart right after a SIGKILL) may be assigned no partition at all;
//! - a member that dies keeps its partitions after the broker removed it:
//!   the survivors go on with their own share, and the dead one's is read
//!   by nobody.
//!
//! Leaving the group and joining again makes the broker assign every
//! partition afresh. [`Rejoin`] decides when: after holding nothing for
//! [`REJOIN_GRACE`], or when the [`StallWatch`] sees a partition that this
//! instance does not hold with messages waiting and the group's committed
//! offset still for the stall timeout. The watch is a client of the group
//! that never joins it and looks every two seconds (DescribeGroups fails on
//! tansu, so nobody can be asked who holds what). Rejoins back off
//! (doubling up to 16 graces), so that a spare instance, or one that sees
//! another's partition held back by a slow endpoint, rarely rebalances the
//! group.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use sluice_runtime::kafka::client_config;
use sluice_runtime::settings::KafkaSettings;
use sluice_runtime::supervise::Supervisor;
use tokio_util::sync::CancellationToken;

use crate::offsets::OffsetLedger;

/// How long a consumer may hold no partition before it joins its group
/// again; longer than the session timeout, so a dead member is gone by then.
pub const REJOIN_GRACE: Duration = Duration::from_secs(15);

const LOOK_INTERVAL: Duration = Duration::from_secs(2);
const LOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// The partitions the watch last found stalled and not held here; shared
/// by the watch (writer) and the consumer's [`Rejoin`] (reader).
#[derive(Debug, Clone, Default)]
pub struct Orphans(Arc<Mutex<Vec<i32>>>);

impl Orphans {
    fn set(&self, partitions: Vec<i32>) {
        if let Ok(mut orphans) = self.0.lock() {
            *orphans = partitions;
        }
    }

    fn get(&self) -> Vec<i32> {
        self.0.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

/// Decides when a consumer leaves its group and joins again.
#[derive(Debug)]
pub struct Rejoin {
    orphans: Orphans,
    empty_since: Option<Instant>,
    /// No rejoin before this, once one was made.
    not_before: Option<Instant>,
    backoff: Duration,
}

impl Rejoin {
    pub fn new(orphans: Orphans) -> Self {
        Self {
            orphans,
            empty_since: None,
            not_before: None,
            backoff: REJOIN_GRACE,
        }
    }

    /// Whether to join again now, given whether the consumer holds any
    /// partition and whether another's partition looks orphaned.
    fn due(&mut self, holds_any: bool, orphaned: bool, now: Instant) -> bool {
        let empty_for = if holds_any {
            self.empty_since = None;
            Duration::ZERO
        } else {
            now.duration_since(*self.empty_since.get_or_insert(now))
        };
        if !orphaned && empty_for < REJOIN_GRACE {
            if holds_any {
                self.not_before = None;
                self.backoff = REJOIN_GRACE;
            }
            return false;
        }
        if self.not_before.is_some_and(|at| now < at) {
            return false;
        }
        self.backoff = (self.backoff * 2).min(REJOIN_GRACE * 16);
        self.not_before = Some(now + self.backoff);
        self.empty_since = Some(now);
        true
    }

    /// Joins again if due.
    pub fn check<C: ConsumerContext>(
        &mut self,
        consumer: &impl Consumer<C>,
        topic: &str,
        ledger: &OffsetLedger,
    ) {
        let orphans = self.orphans.get();
        if !self.due(ledger.holds_any(), !orphans.is_empty(), Instant::now()) {
            return;
        }
        tracing::warn!(
            topic,
            ?orphans,
            "no partition held, or partitions that nobody reads; leaving the consumer group and joining again"
        );
        consumer.unsubscribe();
        if let Err(error) = consumer.subscribe(&[topic]) {
            tracing::warn!(cause = %error, topic, "cannot subscribe again; the next check retries");
        }
    }
}

/// One partition seen from outside the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    partition: i32,
    /// The group's committed offset, else the first offset stored.
    position: i64,
    /// The offset the next message will get.
    end: i64,
}

/// Since when each partition's position has not moved while messages wait.
#[derive(Debug)]
struct Stalls {
    timeout: Duration,
    still: HashMap<i32, (i64, Instant)>,
}

impl Stalls {
    /// The partitions not in `held` whose position has been still for the
    /// timeout with messages behind it. A partition held here is this
    /// instance's own business (a slow endpoint), never a reason to rejoin.
    fn orphaned(&mut self, seen: &[Seen], held: &BTreeSet<i32>, now: Instant) -> Vec<i32> {
        self.still
            .retain(|partition, _| seen.iter().any(|s| s.partition == *partition));
        let mut orphaned = Vec::new();
        for s in seen {
            if held.contains(&s.partition) || s.position >= s.end {
                self.still.remove(&s.partition);
                continue;
            }
            let (position, since) = self.still.entry(s.partition).or_insert((s.position, now));
            if *position != s.position {
                (*position, *since) = (s.position, now);
            }
            if now.duration_since(*since) >= self.timeout {
                orphaned.push(s.partition);
            }
        }
        orphaned
    }
}

/// Looks at one topic's partitions from outside the group; see the module docs.
pub struct StallWatch {
    observer: BaseConsumer,
    topic: String,
    stalls: Stalls,
    ledger: OffsetLedger,
    orphans: Orphans,
}

impl StallWatch {
    /// A watch of `group` on `topic`, where a partition is orphaned when its
    /// position has been still for `timeout`; `ledger` says what this
    /// consumer holds.
    pub fn new(
        kafka: &KafkaSettings,
        group: &str,
        topic: &str,
        timeout: Duration,
        ledger: OffsetLedger,
    ) -> anyhow::Result<Self> {
        // The group's id, to read its commits; it never subscribes.
        let observer: BaseConsumer = client_config(kafka)?
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .with_context(|| format!("cannot create the watch of {topic}"))?;
        Ok(Self {
            observer,
            topic: topic.to_owned(),
            stalls: Stalls {
                timeout,
                still: HashMap::new(),
            },
            ledger,
            orphans: Orphans::default(),
        })
    }

    /// What the consumer's [`Rejoin`] reads.
    pub fn orphans(&self) -> Orphans {
        self.orphans.clone()
    }

    /// Looks every two seconds until `shutdown`, on a thread of its own.
    pub fn spawn(
        mut self,
        name: &'static str,
        supervisor: &Supervisor,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        supervisor.spawn_thread(name, move || {
            while !shutdown.is_cancelled() {
                match self.look() {
                    Ok(seen) => {
                        let held = self.ledger.held();
                        let orphaned = self.stalls.orphaned(&seen, &held, Instant::now());
                        self.orphans.set(orphaned);
                    }
                    // The consumer itself reports a broker that does not answer.
                    Err(error) => {
                        tracing::debug!(cause = %format!("{error:#}"), topic = %self.topic, "cannot look at the group");
                    }
                }
                std::thread::sleep(LOOK_INTERVAL);
            }
            Ok(())
        })
    }

    fn look(&self) -> anyhow::Result<Vec<Seen>> {
        let metadata = self
            .observer
            .fetch_metadata(Some(&self.topic), LOOK_TIMEOUT)?;
        let mut list = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            list.add_partition(&self.topic, partition.id());
        }
        let committed = self.observer.committed_offsets(list, LOOK_TIMEOUT)?;
        let mut seen = Vec::new();
        for element in committed.elements() {
            let partition = element.partition();
            let (low, end) =
                self.observer
                    .fetch_watermarks(&self.topic, partition, LOOK_TIMEOUT)?;
            let position = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            seen.push(Seen {
                partition,
                position,
                end,
            });
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_without_partitions_rejoins_after_a_growing_grace() {
        let mut rejoin = Rejoin::new(Orphans::default());
        let start = Instant::now();
        assert!(!rejoin.due(false, false, start));
        assert!(!rejoin.due(false, false, start + REJOIN_GRACE / 2));
        assert!(rejoin.due(false, false, start + REJOIN_GRACE));
        // Still nothing: the next rejoin waits twice as long.
        let again = start + REJOIN_GRACE;
        assert!(!rejoin.due(false, false, again + REJOIN_GRACE));
        assert!(rejoin.due(false, false, again + REJOIN_GRACE * 2));
        // A partition held resets it.
        assert!(!rejoin.due(true, false, again + REJOIN_GRACE * 3));
        assert!(!rejoin.due(false, false, again + REJOIN_GRACE * 3));
        assert!(rejoin.due(false, false, again + REJOIN_GRACE * 4));
    }

    #[test]
    fn an_orphaned_partition_makes_a_holder_rejoin_at_once_then_backs_off() {
        let mut rejoin = Rejoin::new(Orphans::default());
        let start = Instant::now();
        assert!(!rejoin.due(true, false, start));
        assert!(rejoin.due(true, true, start));
        // Still orphaned after the rejoin: not again before two graces.
        assert!(!rejoin.due(true, true, start + REJOIN_GRACE));
        assert!(rejoin.due(true, true, start + REJOIN_GRACE * 2));
        // Nothing orphaned any more: the backoff starts over.
        assert!(!rejoin.due(true, false, start + REJOIN_GRACE * 3));
        assert!(rejoin.due(true, true, start + REJOIN_GRACE * 3));
    }

    fn seen(partition: i32, position: i64, end: i64) -> Seen {
        Seen {
            partition,
            position,
            end,
        }
    }

    #[test]
    fn a_partition_not_held_here_whose_position_stays_still_is_orphaned() {
        let timeout = Duration::from_secs(30);
        let mut stalls = Stalls {
            timeout,
            still: HashMap::new(),
        };
        let held = BTreeSet::from([0]);
        let start = Instant::now();
        // 0 is held here, 1 is still with messages waiting, 2 is read to the end.
        let look = [seen(0, 5, 90), seen(1, 7, 50), seen(2, 40, 40)];
        assert!(stalls.orphaned(&look, &held, start).is_empty());
        assert!(
            stalls
                .orphaned(&look, &held, start + timeout / 2)
                .is_empty()
        );
        assert_eq!(stalls.orphaned(&look, &held, start + timeout), vec![1]);
        // 1 moves: its clock starts over.
        let moved = [seen(0, 5, 90), seen(1, 8, 50), seen(2, 40, 41)];
        assert!(stalls.orphaned(&moved, &held, start + timeout).is_empty());
        assert!(
            stalls
                .orphaned(&moved, &held, start + timeout * 3 / 2)
                .is_empty()
        );
        assert_eq!(
            stalls.orphaned(&moved, &held, start + timeout * 2),
            vec![1, 2]
        );
        // Taken over here: no longer a reason to rejoin.
        let all = BTreeSet::from([0, 1, 2]);
        assert!(
            stalls
                .orphaned(&moved, &all, start + timeout * 3)
                .is_empty()
        );
    }
}
