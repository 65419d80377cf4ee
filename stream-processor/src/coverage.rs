//! Watching that the group reads every partition, and saying so.
//!
//! A consumer group can look healthy to its members while partitions go
//! unread: tansu 0.6.0 stores an empty assignment when a member restarts
//! within the session timeout of a dead leader, and keeps a dead member's
//! partitions assigned to it after removing it from the group
//! (docs/failure-modes.md). Its DescribeGroups fails, so the group's members
//! cannot be asked; instead, every two seconds a separate client of the same
//! group (it never joins) reads each partition's end offset and the group's
//! committed offset. From that:
//! - **lag per partition** is the group's (end minus committed), so a
//!   partition that nobody reads shows its backlog, whoever holds it;
//! - a processor that **holds no partition** for longer than
//!   `--rebalance-grace-ms`, or sees a partition it does not hold **stall**
//!   (messages waiting, no committed progress for `--stall-timeout-ms`),
//!   leaves the group and joins again (the pipeline does it, on
//!   [`CoverageWatch::rejoin`]), which makes the broker assign every
//!   partition afresh. Rejoins back off (doubling up to 16 graces), so a
//!   spare processor (more processors than partitions) rebalances the group
//!   rarely;
//! - either, and a committed offset **past the partition's end** (the broker
//!   lost data), fails readiness with the cause.
//!
//! The judgement ([`CoverageJudge`]) is pure; the look ([`CoverageWatch`])
//! is blocking librdkafka calls on a thread of its own.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_runtime::kafka::{KAFKA_CHECK, client_config};
use sluice_runtime::ops::Readiness;
use sluice_runtime::settings::KafkaSettings;
use sluice_runtime::supervise::Supervisor;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::ProcessorSettings;
use crate::metrics::{PartitionLabel, ProcessorMetrics};

/// The readiness check this module owns.
pub const GROUP_CHECK: &str = "group";

const LOOK_INTERVAL: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const LOG_EVERY: Duration = Duration::from_secs(30);
/// Failed looks in a row before readiness says the broker does not answer.
const FAILED_LOOKS_TOLERATED: u32 = 2;

/// The partitions this processor holds, kept by the rebalance callbacks.
#[derive(Debug, Clone, Default)]
pub struct HeldPartitions(Arc<Mutex<BTreeSet<i32>>>);

impl HeldPartitions {
    pub fn add(&self, partitions: impl IntoIterator<Item = i32>) {
        if let Ok(mut held) = self.0.lock() {
            held.extend(partitions);
        }
    }

    pub fn remove(&self, partitions: impl IntoIterator<Item = i32>) {
        if let Ok(mut held) = self.0.lock() {
            for partition in partitions {
                held.remove(&partition);
            }
        }
    }

    pub fn snapshot(&self) -> BTreeSet<i32> {
        self.0.lock().map(|held| held.clone()).unwrap_or_default()
    }
}

/// One partition as the broker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionView {
    pub partition: i32,
    /// First offset still stored.
    pub low: i64,
    /// The offset the next message will get.
    pub high: i64,
    /// The group's committed offset, if it committed one.
    pub committed: Option<i64>,
}

impl PartitionView {
    /// Where the group stands: its commit, else the start of the log.
    fn position(&self) -> i64 {
        self.committed.unwrap_or(self.low)
    }

    /// Messages waiting for the group (0 when the log fell behind it).
    pub fn lag(&self) -> i64 {
        (self.high - self.position()).max(0)
    }
}

/// One look at the group from outside: every partition of the topic.
pub type GroupView = [PartitionView];

/// What a look means.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Leave the group and join again.
    pub rejoin: bool,
    /// Why the group is not reading everything (readiness), if it is not.
    pub problem: Option<String>,
}

/// The longest pause between two rejoins, in graces.
const MAX_BACKOFF_GRACES: u32 = 16;

/// Judges successive looks: remembers since when this processor has held
/// nothing, since when each partition has not moved, and when it may rejoin
/// next.
#[derive(Debug)]
pub struct CoverageJudge {
    grace: Duration,
    stall_timeout: Duration,
    empty_since: Option<Instant>,
    /// Per partition: the position last seen, and since when it has not
    /// moved while messages waited.
    still: HashMap<i32, (i64, Instant)>,
    /// No rejoin before this; doubles with each rejoin that did not help.
    next_rejoin: Option<Instant>,
    backoff: Duration,
}

impl CoverageJudge {
    pub fn new(grace: Duration, stall_timeout: Duration) -> Self {
        Self {
            grace,
            stall_timeout,
            empty_since: None,
            still: HashMap::new(),
            next_rejoin: None,
            backoff: grace,
        }
    }

    pub fn judge(&mut self, view: &GroupView, held: &BTreeSet<i32>, now: Instant) -> Verdict {
        let mut problems = Vec::new();
        let mut wants_rejoin = false;

        if held.is_empty() && !view.is_empty() {
            let since = *self.empty_since.get_or_insert(now);
            let waited = now.duration_since(since);
            if waited >= self.grace {
                problems.push(format!(
                    "holds none of the {} partitions for {} s (more processors than partitions, or the broker assigned none)",
                    view.len(),
                    waited.as_secs()
                ));
                wants_rejoin = true;
            }
        } else {
            self.empty_since = None;
        }

        for partition in view {
            if let Some(committed) = partition.committed
                && committed > partition.high
            {
                problems.push(format!(
                    "partition {}: the group's committed offset {committed} is past the broker's end {}; the broker lost messages",
                    partition.partition, partition.high
                ));
            }
            if partition.lag() == 0 {
                self.still.remove(&partition.partition);
                continue;
            }
            let position = partition.position();
            let (_, since) = *self
                .still
                .entry(partition.partition)
                .and_modify(|(seen, since)| {
                    if *seen != position {
                        *seen = position;
                        *since = now;
                    }
                })
                .or_insert((position, now));
            let still_for = now.duration_since(since);
            if still_for >= self.stall_timeout {
                let holder = if held.contains(&partition.partition) {
                    "held here"
                } else {
                    wants_rejoin = true;
                    "not held here"
                };
                problems.push(format!(
                    "partition {} ({holder}): {} messages waiting and no progress for {} s",
                    partition.partition,
                    partition.lag(),
                    still_for.as_secs()
                ));
            }
        }
        self.still
            .retain(|partition, _| view.iter().any(|p| p.partition == *partition));

        let rejoin = wants_rejoin && self.next_rejoin.is_none_or(|next| now >= next);
        if rejoin {
            self.next_rejoin = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(self.grace * MAX_BACKOFF_GRACES);
            if let Some(problem) = problems.last_mut() {
                problem.push_str("; rejoining the group");
            }
        } else if !wants_rejoin {
            self.next_rejoin = None;
            self.backoff = self.grace;
        }
        Verdict {
            rejoin,
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }
}

/// The look from outside, on a thread of its own; see the module docs.
pub struct CoverageWatch {
    observer: BaseConsumer,
    topic: String,
    group: String,
    brokers: String,
    held: HeldPartitions,
    judge: CoverageJudge,
    readiness: Readiness,
    metrics: ProcessorMetrics,
    rejoin: Arc<Notify>,
    /// When a problem was last logged, while there is one.
    logged: Option<Instant>,
}

impl CoverageWatch {
    pub fn new(
        kafka: &KafkaSettings,
        settings: &ProcessorSettings,
        held: HeldPartitions,
        readiness: Readiness,
        metrics: ProcessorMetrics,
    ) -> anyhow::Result<Self> {
        readiness.register(GROUP_CHECK);
        // The group's id, to read its commits and members; it never subscribes.
        let observer: BaseConsumer = client_config(kafka)?
            .set("group.id", &settings.consumer_group)
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(Self {
            observer,
            topic: kafka.events_topic.clone(),
            group: settings.consumer_group.clone(),
            brokers: kafka.brokers.clone(),
            held,
            judge: CoverageJudge::new(
                Duration::from_millis(settings.rebalance_grace_ms),
                Duration::from_millis(settings.stall_timeout_ms),
            ),
            readiness,
            metrics,
            rejoin: Arc::new(Notify::new()),
            logged: None,
        })
    }

    /// Notified when this processor should leave the group and join again.
    pub fn rejoin(&self) -> Arc<Notify> {
        self.rejoin.clone()
    }

    /// Looks every two seconds until `shutdown`, on a thread of its own
    /// that `supervisor` watches.
    pub fn spawn(
        mut self,
        supervisor: &Supervisor,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        supervisor.spawn_thread("group coverage", move || {
            let mut failed_looks = 0;
            while !shutdown.is_cancelled() {
                match self.look() {
                    Ok(view) => {
                        failed_looks = 0;
                        self.readiness.pass(KAFKA_CHECK);
                        self.act_on(&view);
                    }
                    Err(cause) => {
                        failed_looks += 1;
                        tracing::warn!(%cause, "cannot look at the consumer group");
                        if failed_looks >= FAILED_LOOKS_TOLERATED {
                            self.readiness.fail(
                                KAFKA_CHECK,
                                format!(
                                    "the broker at {} (--kafka-brokers) does not answer: {cause}",
                                    self.brokers
                                ),
                            );
                        }
                    }
                }
                std::thread::sleep(LOOK_INTERVAL);
            }
            Ok(())
        })
    }

    fn act_on(&mut self, view: &GroupView) {
        for partition in view {
            self.metrics
                .consumer_lag
                .get_or_create(&PartitionLabel {
                    partition: partition.partition,
                })
                .set(partition.lag());
        }
        let held = self.held.snapshot();
        self.metrics.assigned_partitions.set(held.len() as i64);
        let verdict = self.judge.judge(view, &held, Instant::now());
        match &verdict.problem {
            Some(problem) => {
                // Logged when it starts, on each rejoin, and every half minute.
                if verdict.rejoin || self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                    tracing::warn!(%problem, group = %self.group, topic = %self.topic, "the group is not reading every partition");
                    self.logged = Some(Instant::now());
                }
                self.readiness.fail(GROUP_CHECK, problem.clone());
            }
            None => {
                if self.logged.take().is_some() {
                    tracing::info!(group = %self.group, topic = %self.topic, "the group reads every partition again");
                }
                self.readiness.pass(GROUP_CHECK);
            }
        }
        if verdict.rejoin {
            self.metrics.rejoins.inc();
            self.rejoin.notify_one();
        }
    }

    fn look(&self) -> Result<Vec<PartitionView>, String> {
        let metadata = self
            .observer
            .fetch_metadata(Some(&self.topic), REQUEST_TIMEOUT)
            .map_err(|error| format!("metadata of {}: {error}", self.topic))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|topic| topic.partitions().iter().map(|p| p.id()))
            .collect();
        let mut wanted = TopicPartitionList::new();
        for partition in &partitions {
            wanted
                .add_partition_offset(&self.topic, *partition, Offset::Invalid)
                .map_err(|error| error.to_string())?;
        }
        let committed = self
            .observer
            .committed_offsets(wanted, REQUEST_TIMEOUT)
            .map_err(|error| format!("committed offsets of group {}: {error}", self.group))?;
        let mut views = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let (low, high) = self
                .observer
                .fetch_watermarks(&self.topic, partition, REQUEST_TIMEOUT)
                .map_err(|error| format!("end offsets of partition {partition}: {error}"))?;
            let committed = committed
                .find_partition(&self.topic, partition)
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
            views.push(PartitionView {
                partition,
                low,
                high,
                committed,
            });
        }
        Ok(views)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);
    const STALL: Duration = Duration::from_secs(30);

    fn view(partitions: &[(i64, Option<i64>)]) -> Vec<PartitionView> {
        partitions
            .iter()
            .enumerate()
            .map(|(partition, &(high, committed))| PartitionView {
                partition: partition as i32,
                low: 0,
                high,
                committed,
            })
            .collect()
    }

    fn held(partitions: &[i32]) -> BTreeSet<i32> {
        partitions.iter().copied().collect()
    }

    #[test]
    fn holding_nothing_rejoins_after_the_grace_then_backs_off() {
        let mut judge = CoverageJudge::new(GRACE, STALL);
        let t0 = Instant::now();
        // None of four idle partitions (tansu's empty assignment after a restart).
        let idle = view(&[(0, None); 4]);
        let none = held(&[]);
        assert_eq!(judge.judge(&idle, &none, t0), Verdict::default());
        assert_eq!(
            judge.judge(&idle, &none, t0 + GRACE / 2),
            Verdict::default()
        );
        let verdict = judge.judge(&idle, &none, t0 + GRACE);
        assert!(verdict.rejoin);
        assert_eq!(
            verdict.problem.as_deref(),
            Some(
                "holds none of the 4 partitions for 10 s (more processors than partitions, or the broker assigned none); rejoining the group"
            )
        );
        // Still nothing: the next rejoins wait one grace, then two, ...
        let at = |graces: u32| t0 + GRACE * graces;
        assert!(
            !judge
                .judge(&idle, &none, at(2) - Duration::from_secs(1))
                .rejoin
        );
        assert!(judge.judge(&idle, &none, at(2)).rejoin);
        assert!(!judge.judge(&idle, &none, at(3)).rejoin);
        assert!(judge.judge(&idle, &none, at(4)).rejoin);
        assert!(!judge.judge(&idle, &none, at(7)).rejoin);
        assert!(judge.judge(&idle, &none, at(8)).rejoin);
        // Holding a partition ends it, and resets the backoff.
        assert_eq!(judge.judge(&idle, &held(&[0]), at(9)), Verdict::default());
        judge.judge(&idle, &none, at(10));
        assert!(judge.judge(&idle, &none, at(11)).rejoin);
        assert!(judge.judge(&idle, &none, at(12)).rejoin);
    }

    #[test]
    fn a_stalled_partition_held_elsewhere_rejoins_one_held_here_is_reported() {
        let mut judge = CoverageJudge::new(GRACE, STALL);
        let t0 = Instant::now();
        // The survivor holds 0 and 1; 2 and 3 went with a dead member.
        let waiting = view(&[(10, Some(10)), (10, Some(10)), (70, Some(40)), (0, None)]);
        let mine = held(&[0, 1]);
        assert_eq!(judge.judge(&waiting, &mine, t0).problem, None);
        assert_eq!(judge.judge(&waiting, &mine, t0 + STALL / 2).problem, None);
        let verdict = judge.judge(&waiting, &mine, t0 + STALL);
        assert!(verdict.rejoin);
        assert_eq!(
            verdict.problem.as_deref(),
            Some(
                "partition 2 (not held here): 30 messages waiting and no progress for 30 s; rejoining the group"
            )
        );
        // Held here, a stall (ClickHouse down, say) is reported, not rejoined over.
        let mut judge = CoverageJudge::new(GRACE, STALL);
        judge.judge(&waiting, &held(&[2]), t0);
        let verdict = judge.judge(&waiting, &held(&[2]), t0 + STALL);
        assert!(!verdict.rejoin);
        assert_eq!(
            verdict.problem.as_deref(),
            Some("partition 2 (held here): 30 messages waiting and no progress for 30 s")
        );
    }

    #[test]
    fn progress_restarts_the_stall_clock_and_catching_up_clears_it() {
        let mut judge = CoverageJudge::new(GRACE, STALL);
        let t0 = Instant::now();
        let mine = held(&[0, 1]);
        judge.judge(&view(&[(100, Some(40)), (50, Some(50))]), &mine, t0);
        let moved = view(&[(120, Some(90)), (50, Some(50))]);
        assert_eq!(judge.judge(&moved, &mine, t0 + STALL).problem, None);
        assert_eq!(
            judge
                .judge(&moved, &mine, t0 + STALL * 2 - Duration::from_secs(1))
                .problem,
            None
        );
        assert!(judge.judge(&moved, &mine, t0 + STALL * 2).problem.is_some());
        let caught_up = view(&[(120, Some(120)), (50, Some(50))]);
        assert_eq!(judge.judge(&caught_up, &mine, t0 + STALL * 3).problem, None);
        // A partition never committed counts from the start of its log.
        let fresh = view(&[(120, Some(120)), (50, None)]);
        judge.judge(&fresh, &mine, t0 + STALL * 4);
        assert_eq!(
            judge
                .judge(&fresh, &mine, t0 + STALL * 5)
                .problem
                .as_deref(),
            Some("partition 1 (held here): 50 messages waiting and no progress for 30 s")
        );
    }

    #[test]
    fn a_commit_past_the_end_of_the_log_is_reported_at_once() {
        let mut judge = CoverageJudge::new(GRACE, STALL);
        let lost = view(&[(10, Some(500)), (0, None)]);
        let verdict = judge.judge(&lost, &held(&[0, 1]), Instant::now());
        assert_eq!(
            verdict.problem.as_deref(),
            Some(
                "partition 0: the group's committed offset 500 is past the broker's end 10; the broker lost messages"
            )
        );
        assert!(!verdict.rejoin);
        assert_eq!(lost[0].lag(), 0);
    }
}
