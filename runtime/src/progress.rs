//! The rows that say how far the pipeline has got, written by the processor
//! with each flush and read by the query API's `/v1/status`: each source
//! partition's position and watermark, each project's newest queryable
//! event, and the messages that were late or dead-lettered. The tables are
//! described in `sluice_schemas::ddl`.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// `partition_progress`: everything of `kafka_partition` below `next_offset`
/// is queryable; its windows are closed up to `watermark_ms`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct PartitionProgressRow {
    pub consumer_group: String,
    pub topic: String,
    pub kafka_partition: u32,
    pub next_offset: u64,
    /// 0 while the partition has no watermark yet.
    pub watermark_ms: i64,
    pub written_at_ms: u64,
}

/// `project_activity`: a project's newest event in one source partition.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ProjectActivityRow {
    pub project_id: String,
    pub kafka_partition: u32,
    pub last_offset: u64,
    pub last_received_ms: u64,
    pub last_event_ms: u64,
    pub written_at_ms: u64,
}

impl ProjectActivityRow {
    /// Takes in one more event of the same project and partition.
    pub fn include(&mut self, offset: u64, received_ms: u64, event_ms: u64) {
        self.last_offset = self.last_offset.max(offset);
        self.last_received_ms = self.last_received_ms.max(received_ms);
        self.last_event_ms = self.last_event_ms.max(event_ms);
    }
}

/// What an `event_notices` row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Stored and counted as a correction of a window already closed.
    Late,
    /// Sent to the dead-letter topic.
    DeadLetter,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 2] = [NoticeKind::Late, NoticeKind::DeadLetter];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Late => "late",
            NoticeKind::DeadLetter => "dead_letter",
        }
    }
}

/// `event_notices`: one late or dead-lettered message.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct EventNoticeRow {
    pub project_id: String,
    pub kind: String,
    /// Unix seconds (`DateTime`): the event's `received_at`, or the
    /// message's timestamp for a dead letter.
    pub received_at: u32,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
    pub reason: String,
}

impl EventNoticeRow {
    pub fn new(
        kind: NoticeKind,
        project_id: String,
        received_ms: i64,
        partition: i32,
        offset: i64,
        reason: String,
    ) -> Self {
        Self {
            project_id,
            kind: kind.as_str().to_owned(),
            received_at: u32::try_from(received_ms.max(0) / 1000).unwrap_or(u32::MAX),
            kafka_partition: u32::try_from(partition).unwrap_or(0),
            kafka_offset: u64::try_from(offset).unwrap_or(0),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_keeps_the_newest_of_each_figure() {
        let mut row = ProjectActivityRow {
            project_id: "p".into(),
            kafka_partition: 0,
            last_offset: 5,
            last_received_ms: 1_000,
            last_event_ms: 900,
            written_at_ms: 0,
        };
        row.include(4, 2_000, 100);
        assert_eq!(
            (row.last_offset, row.last_received_ms, row.last_event_ms),
            (5, 2_000, 900)
        );
    }

    #[test]
    fn notices_hold_whole_seconds_and_never_wrap() {
        let late = EventNoticeRow::new(NoticeKind::Late, "p".into(), 1_999, 2, 7, String::new());
        assert_eq!((late.kind.as_str(), late.received_at), ("late", 1));
        let odd = EventNoticeRow::new(
            NoticeKind::DeadLetter,
            String::new(),
            -5,
            -1,
            -1,
            "x".into(),
        );
        assert_eq!(
            (odd.received_at, odd.kafka_partition, odd.kafka_offset),
            (0, 0, 0)
        );
    }
}
