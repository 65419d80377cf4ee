//! The pipeline's position, from what the processor stored and what the
//! broker holds: per partition how many messages are not queryable yet and
//! how old the oldest of them is, the watermarks, and the one freshness
//! figure.
//!
//! Freshness is how far behind now the queryable data is complete: 0 when
//! every message in the events topic is stored, else the age of the oldest
//! message not stored yet. The partitions are shared by every project, so
//! the figure is the pipeline's, the same for each project.

use serde::Serialize;
use sluice_schemas::time_format::Rfc3339Ms;

use super::broker::{BrokerLook, PartitionLog};
use super::stored::Progress;

const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PipelineStatus {
    pub consumer_group: String,
    pub topic: String,
    /// Seconds by which the queryable data trails now; `null` when the broker
    /// did not answer.
    pub freshness_seconds: Option<f64>,
    /// Every message written to the events topic before this instant is
    /// queryable.
    pub complete_through: Option<Rfc3339Ms>,
    pub lag_messages: Option<u64>,
    pub lag_seconds: Option<f64>,
    /// The lowest watermark of the partitions that have one.
    pub watermark: Option<Rfc3339Ms>,
    /// Rollups of minutes that start before this are final (their windows
    /// closed; later late events arrive as corrections).
    pub rollups_final_before: Option<Rfc3339Ms>,
    pub partitions: Vec<PartitionStatus>,
    /// Why the broker's side is missing, when it is.
    pub broker_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionStatus {
    pub partition: i32,
    /// The offset the next message will get.
    pub end_offset: Option<i64>,
    /// Every message below this offset is queryable.
    pub stored_offset: Option<u64>,
    pub lag_messages: Option<u64>,
    pub lag_seconds: Option<f64>,
    pub oldest_unstored_at: Option<Rfc3339Ms>,
    pub watermark: Option<Rfc3339Ms>,
    pub stored_at: Option<Rfc3339Ms>,
}

/// The first offset of each partition that is not stored yet, for the
/// partitions that have such messages.
pub fn unstored_positions(progress: &[Progress], logs: &[PartitionLog]) -> Vec<(i32, i64)> {
    logs.iter()
        .filter_map(|log| {
            let first = first_unstored(progress, log);
            (first < log.end).then_some((log.partition, first))
        })
        .collect()
}

fn stored_offset(progress: &[Progress], partition: i32) -> Option<&Progress> {
    progress
        .iter()
        .find(|row| i64::from(row.kafka_partition) == i64::from(partition))
}

/// Messages below the log's start are gone: they cannot wait any longer.
fn first_unstored(progress: &[Progress], log: &PartitionLog) -> i64 {
    let stored = stored_offset(progress, log.partition)
        .map_or(0, |row| i64::try_from(row.next_offset).unwrap_or(i64::MAX));
    stored.max(log.start)
}

pub fn summarize(
    group: &str,
    topic: &str,
    progress: &[Progress],
    look: &Result<BrokerLook, String>,
    now_ms: i64,
) -> PipelineStatus {
    let seconds = |ms: i64| (now_ms - ms).max(0) as f64 / 1000.0;
    let watermark = |row: &Progress| (row.watermark_ms > 0).then_some(row.watermark_ms);
    let mut partitions: Vec<PartitionStatus> = match look {
        Ok(look) => look
            .logs
            .iter()
            .map(|log| {
                let lag = (log.end - first_unstored(progress, log)).max(0);
                let oldest = (lag > 0)
                    .then(|| look.written_ms.get(&log.partition).copied())
                    .flatten();
                let row = stored_offset(progress, log.partition);
                PartitionStatus {
                    partition: log.partition,
                    end_offset: Some(log.end),
                    stored_offset: row.map(|row| row.next_offset),
                    lag_messages: Some(lag.unsigned_abs()),
                    lag_seconds: if lag == 0 {
                        Some(0.0)
                    } else {
                        oldest.map(seconds)
                    },
                    oldest_unstored_at: oldest.map(Rfc3339Ms),
                    watermark: row.and_then(watermark).map(Rfc3339Ms),
                    stored_at: row.map(|row| Rfc3339Ms(row.written_at_ms as i64)),
                }
            })
            .collect(),
        Err(_) => progress
            .iter()
            .map(|row| PartitionStatus {
                partition: row.kafka_partition as i32,
                end_offset: None,
                stored_offset: Some(row.next_offset),
                lag_messages: None,
                lag_seconds: None,
                oldest_unstored_at: None,
                watermark: watermark(row).map(Rfc3339Ms),
                stored_at: Some(Rfc3339Ms(row.written_at_ms as i64)),
            })
            .collect(),
    };
    partitions.sort_by_key(|partition| partition.partition);
    let known = look.is_ok();
    let lag_messages = known.then(|| partitions.iter().filter_map(|p| p.lag_messages).sum());
    // A lagging partition whose oldest message could not be read leaves the
    // figure unknown rather than too low.
    let lag_seconds = partitions
        .iter()
        .map(|p| p.lag_seconds)
        .try_fold(0.0_f64, |worst, lag| Some(worst.max(lag?)))
        .filter(|_| known);
    let lowest_watermark = progress.iter().filter_map(watermark).min();
    PipelineStatus {
        consumer_group: group.to_owned(),
        topic: topic.to_owned(),
        freshness_seconds: lag_seconds,
        complete_through: lag_seconds.map(|lag| Rfc3339Ms(now_ms - (lag * 1000.0) as i64)),
        lag_messages,
        lag_seconds,
        watermark: lowest_watermark.map(Rfc3339Ms),
        rollups_final_before: lowest_watermark
            .map(|ms| Rfc3339Ms(ms.div_euclid(MINUTE_MS) * MINUTE_MS)),
        partitions,
        broker_error: look.as_ref().err().cloned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const NOW: i64 = 1_700_000_100_000;

    fn progress(partition: u32, next_offset: u64, watermark_ms: i64) -> Progress {
        Progress {
            kafka_partition: partition,
            next_offset,
            watermark_ms,
            written_at_ms: 1_700_000_000_000,
        }
    }

    fn log(partition: i32, start: i64, end: i64) -> PartitionLog {
        PartitionLog {
            partition,
            start,
            end,
        }
    }

    #[test]
    fn fresh_when_every_message_is_stored() {
        let stored = [progress(0, 10, 1_700_000_050_500), progress(1, 4, 0)];
        let logs = vec![log(0, 0, 10), log(1, 0, 4), log(2, 0, 0)];
        assert!(unstored_positions(&stored, &logs).is_empty());
        let look = Ok(BrokerLook {
            logs,
            written_ms: HashMap::new(),
        });
        let status = summarize("g", "t", &stored, &look, NOW);
        assert_eq!(status.freshness_seconds, Some(0.0));
        assert_eq!(status.lag_messages, Some(0));
        assert_eq!(status.complete_through, Some(Rfc3339Ms(NOW)));
        assert_eq!(status.watermark, Some(Rfc3339Ms(1_700_000_050_500)));
        assert_eq!(
            status.rollups_final_before,
            Some(Rfc3339Ms(1_700_000_040_000))
        );
        assert_eq!(status.partitions.len(), 3);
        assert_eq!(status.partitions[2].stored_offset, None);
    }

    #[test]
    fn the_oldest_unstored_message_sets_the_freshness() {
        let stored = [progress(0, 10, 0)];
        // Partition 1 was never stored; its log starts at 5 (older ones deleted).
        let logs = vec![log(0, 0, 15), log(1, 5, 8)];
        assert_eq!(unstored_positions(&stored, &logs), vec![(0, 10), (1, 5)]);
        let look = Ok(BrokerLook {
            logs,
            written_ms: HashMap::from([(0, NOW - 2_500), (1, NOW - 7_000)]),
        });
        let status = summarize("g", "t", &stored, &look, NOW);
        assert_eq!(status.lag_messages, Some(5 + 3));
        assert_eq!(status.freshness_seconds, Some(7.0));
        assert_eq!(status.partitions[0].lag_seconds, Some(2.5));
        assert_eq!(status.complete_through, Some(Rfc3339Ms(NOW - 7_000)));
        assert_eq!(status.watermark, None);
    }

    #[test]
    fn unknown_ages_and_a_silent_broker_leave_the_figure_unknown() {
        let stored = [progress(0, 10, 0)];
        let look = Ok(BrokerLook {
            logs: vec![log(0, 0, 11)],
            written_ms: HashMap::new(),
        });
        let status = summarize("g", "t", &stored, &look, NOW);
        assert_eq!(
            (status.lag_messages, status.freshness_seconds),
            (Some(1), None)
        );
        let silent = summarize("g", "t", &stored, &Err("down".into()), NOW);
        assert_eq!(silent.freshness_seconds, None);
        assert_eq!(silent.lag_messages, None);
        assert_eq!(silent.broker_error.as_deref(), Some("down"));
        assert_eq!(silent.partitions[0].stored_offset, Some(10));
    }
}
