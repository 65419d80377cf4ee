//! Checkpoints: each partition's position and window state, kept in
//! ClickHouse beside the rows they account for.
//!
//! A checkpoint at `next_offset` is written only after the rows of every
//! message below it are stored, and before the Kafka offset is committed. A
//! processor that takes a partition over resumes from the checkpoint (the
//! Kafka commit may lag it after a crash), with the windows exactly as they
//! were at that offset, and rebuilds the recent event ids from `events`.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use sluice_schemas::rollup::codec::{Reader, put_zigzag};

use crate::dedup::RecentIds;
use crate::windows::PartitionWindows;

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct CheckpointRow {
    pub consumer_group: String,
    pub topic: String,
    pub kafka_partition: u32,
    pub next_offset: u64,
    pub written_at_ms: u64,
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
}

/// What a partition resumes from.
pub struct Resumed {
    pub next_offset: Option<i64>,
    pub windows: PartitionWindows,
    pub recent: RecentIds,
}

#[derive(Debug, Row, Deserialize)]
struct RecentIdRow {
    project_id: String,
    event_id: String,
    received_at_ms: u64,
}

pub struct CheckpointStore {
    client: clickhouse::Client,
    group: String,
    topic: String,
}

pub fn encode_state(windows: &PartitionWindows, recent: &RecentIds) -> Vec<u8> {
    let mut out = Vec::new();
    put_zigzag(&mut out, recent.newest_received_ms());
    windows.encode(&mut out);
    out
}

impl CheckpointStore {
    pub fn new(client: clickhouse::Client, group: &str, topic: &str) -> Self {
        Self {
            client,
            group: group.to_owned(),
            topic: topic.to_owned(),
        }
    }

    pub fn row(&self, partition: i32, next_offset: i64, state: Vec<u8>) -> CheckpointRow {
        CheckpointRow {
            consumer_group: self.group.clone(),
            topic: self.topic.clone(),
            kafka_partition: u32::try_from(partition).unwrap_or(0),
            next_offset: u64::try_from(next_offset).unwrap_or(0),
            written_at_ms: u64::try_from(sluice_schemas::time_format::now_ms()).unwrap_or(0),
            state,
        }
    }

    /// The state to resume `partition` from: its latest checkpoint, or an
    /// empty state when the group never wrote one (it then starts where Kafka
    /// says, the beginning for a new group).
    pub async fn resume(
        &self,
        partition: i32,
        lateness_ms: i64,
        horizon_ms: i64,
    ) -> anyhow::Result<Resumed> {
        let latest = self
            .client
            .query(
                "SELECT ?fields FROM processor_checkpoints \
                 WHERE consumer_group = ? AND topic = ? AND kafka_partition = ? \
                 ORDER BY next_offset DESC LIMIT 1",
            )
            .bind(&self.group)
            .bind(&self.topic)
            .bind(partition)
            .fetch_optional::<CheckpointRow>()
            .await?;
        let Some(checkpoint) = latest else {
            return Ok(Resumed {
                next_offset: None,
                windows: PartitionWindows::new(lateness_ms),
                recent: RecentIds::new(horizon_ms, i64::MIN),
            });
        };
        let mut reader = Reader(&checkpoint.state);
        let newest_received_ms = reader.zigzag()?;
        let windows = PartitionWindows::decode(reader.0)?;
        let mut recent = RecentIds::new(horizon_ms, newest_received_ms);
        let mut ids = self
            .client
            .query(
                "SELECT ?fields FROM events \
                 WHERE kafka_partition = ? AND kafka_offset < ? AND received_at_ms >= ?",
            )
            .bind(partition)
            .bind(checkpoint.next_offset)
            .bind(recent.horizon_start_ms().max(0))
            .fetch::<RecentIdRow>()?;
        while let Some(row) = ids.next().await? {
            let received = i64::try_from(row.received_at_ms).unwrap_or(i64::MAX);
            recent.restore(&row.project_id, &row.event_id, received);
        }
        Ok(Resumed {
            next_offset: i64::try_from(checkpoint.next_offset).ok(),
            windows,
            recent,
        })
    }
}
