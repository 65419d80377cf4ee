//! What the processor recorded in ClickHouse about its own progress (see
//! `sluice_runtime::progress`): positions and watermarks per partition, the
//! newest queryable event per project, and the late and dead-lettered
//! messages of the last day.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::Deserialize;
use sluice_runtime::progress::NoticeKind;

use crate::error::Result;

/// One partition's latest progress row.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct Progress {
    pub kafka_partition: u32,
    pub next_offset: u64,
    pub watermark_ms: i64,
    pub written_at_ms: u64,
}

/// A partition's latest checkpoint: its position without a watermark.
#[derive(Debug, Clone, Row, Deserialize)]
struct Checkpoint {
    kafka_partition: u32,
    next_offset: u64,
    written_at_ms: u64,
}

/// Each partition's progress. Positions come from `partition_progress` or,
/// where the checkpoint is ahead or alone (a partition not flushed since the
/// processor started writing progress rows, after an upgrade), from
/// `processor_checkpoints`, which every processor has always written.
pub async fn progress(
    clickhouse: &clickhouse::Client,
    group: &str,
    topic: &str,
) -> Result<Vec<Progress>> {
    let latest = |table: &str| {
        format!(
            "SELECT ?fields FROM {table} WHERE consumer_group = ? AND topic = ? \
             ORDER BY kafka_partition, next_offset DESC LIMIT 1 BY kafka_partition"
        )
    };
    let (progress, checkpoints) = tokio::try_join!(
        clickhouse
            .query(&latest("partition_progress"))
            .bind(group)
            .bind(topic)
            .fetch_all::<Progress>(),
        clickhouse
            .query(&latest("processor_checkpoints"))
            .bind(group)
            .bind(topic)
            .fetch_all::<Checkpoint>(),
    )?;
    Ok(with_checkpoints(progress, &checkpoints))
}

fn with_checkpoints(mut progress: Vec<Progress>, checkpoints: &[Checkpoint]) -> Vec<Progress> {
    for checkpoint in checkpoints {
        match progress
            .iter_mut()
            .find(|row| row.kafka_partition == checkpoint.kafka_partition)
        {
            Some(row) if row.next_offset >= checkpoint.next_offset => {}
            Some(row) => {
                row.next_offset = checkpoint.next_offset;
                row.written_at_ms = checkpoint.written_at_ms;
            }
            None => progress.push(Progress {
                kafka_partition: checkpoint.kafka_partition,
                next_offset: checkpoint.next_offset,
                watermark_ms: 0,
                written_at_ms: checkpoint.written_at_ms,
            }),
        }
    }
    progress
}

/// A project's newest queryable event (zeros when it has none).
#[derive(Debug, Clone, Default, Row, Deserialize)]
pub struct Activity {
    pub project_id: String,
    pub last_received_ms: u64,
    pub last_event_ms: u64,
    pub written_at_ms: u64,
}

/// The activity of `project`, or of every project when `None`.
pub async fn activity(
    clickhouse: &clickhouse::Client,
    project: Option<&str>,
) -> Result<Vec<Activity>> {
    let sql = format!(
        "SELECT project_id, max(last_received_ms) AS last_received_ms, \
         max(last_event_ms) AS last_event_ms, max(written_at_ms) AS written_at_ms \
         FROM project_activity {} GROUP BY project_id ORDER BY project_id",
        if project.is_some() {
            "WHERE project_id = ?"
        } else {
            ""
        }
    );
    let mut query = clickhouse.query(&sql);
    if let Some(project) = project {
        query = query.bind(project);
    }
    Ok(query.fetch_all().await?)
}

/// Messages of one kind over the last hour and the last day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub last_hour: u64,
    pub last_day: u64,
}

#[derive(Debug, Row, Deserialize)]
struct NoticeCount {
    project_id: String,
    kind: String,
    last_hour: u64,
    last_day: u64,
}

/// Per project, the late and dead-lettered messages received in the last
/// hour and day before `now_s` (Unix seconds); of `project` only, or of
/// every project (the empty id: dead letters that named none).
pub async fn notices(
    clickhouse: &clickhouse::Client,
    project: Option<&str>,
    now_s: u32,
) -> Result<BTreeMap<String, BTreeMap<&'static str, Counts>>> {
    let sql = format!(
        "SELECT project_id, kind, countIf(received_at >= toDateTime(?)) AS last_hour, \
         count() AS last_day FROM event_notices FINAL \
         WHERE received_at >= toDateTime(?) {} GROUP BY project_id, kind",
        if project.is_some() {
            "AND project_id = ?"
        } else {
            ""
        }
    );
    let mut query = clickhouse
        .query(&sql)
        .bind(now_s.saturating_sub(3_600))
        .bind(now_s.saturating_sub(86_400));
    if let Some(project) = project {
        query = query.bind(project);
    }
    let mut counts: BTreeMap<String, BTreeMap<&'static str, Counts>> = BTreeMap::new();
    for row in query.fetch_all::<NoticeCount>().await? {
        let Some(kind) = NoticeKind::ALL
            .iter()
            .find(|kind| kind.as_str() == row.kind)
        else {
            continue;
        };
        counts.entry(row.project_id).or_default().insert(
            kind.as_str(),
            Counts {
                last_hour: row.last_hour,
                last_day: row.last_day,
            },
        );
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_fill_in_partitions_without_progress_rows_and_never_move_one_back() {
        let progress = vec![
            Progress {
                kafka_partition: 0,
                next_offset: 10,
                watermark_ms: 5,
                written_at_ms: 100,
            },
            Progress {
                kafka_partition: 1,
                next_offset: 4,
                watermark_ms: 6,
                written_at_ms: 100,
            },
        ];
        let checkpoint = |kafka_partition, next_offset| Checkpoint {
            kafka_partition,
            next_offset,
            written_at_ms: 200,
        };
        let merged = with_checkpoints(
            progress,
            &[checkpoint(0, 9), checkpoint(1, 7), checkpoint(2, 3)],
        );
        let summary: Vec<_> = merged
            .iter()
            .map(|p| {
                (
                    p.kafka_partition,
                    p.next_offset,
                    p.watermark_ms,
                    p.written_at_ms,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![(0, 10, 5, 100), (1, 7, 6, 200), (2, 3, 0, 200)]
        );
    }
}
