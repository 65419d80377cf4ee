//! ClickHouse tables: the SQL subset shared by 18.16 and current servers, plus
//! what [`ServerFeatures`] says the server has (`LowCardinality`, `TTL`).
//!
//! Identifiers cannot be bound as query parameters, so the one identifier that
//! operators choose, the database name, is checked by [`Database::new`] before
//! any statement is built from it.
//!
//! Event time stays `DateTime` (seconds) plus `timestamp_ms` (UInt64) on every
//! server, rather than `DateTime64(3)` where it exists: one row struct and one
//! set of queries serve both, and the millisecond column already sorts and
//! filters exactly.

use std::fmt;

use thiserror::Error;

use crate::clickhouse_features::ServerFeatures;

/// A database name that is safe to splice into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database(String);

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid ClickHouse database name {0:?}: use 1 to 64 ASCII letters, digits and underscores, not starting with a digit"
)]
pub struct InvalidDatabaseName(pub String);

impl Database {
    pub fn new(name: &str) -> Result<Self, InvalidDatabaseName> {
        let mut chars = name.chars();
        let valid_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid_start && valid_rest && name.len() <= 64 {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidDatabaseName(name.to_owned()))
        }
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// Every statement that creates the database and its tables, in order.
    /// Each is idempotent. `retention_days` keeps events that long by event
    /// time, as a `TTL` where the server has it; without TTL the caller drops
    /// day partitions instead.
    pub fn create_statements(
        &self,
        features: ServerFeatures,
        retention_days: Option<u32>,
    ) -> Vec<String> {
        vec![
            format!("CREATE DATABASE IF NOT EXISTS {self}"),
            self.events_table(features, retention_days),
            self.rollups_table(features, RollupTable::Windows),
            self.rollups_table(features, RollupTable::PropertyValues),
            self.checkpoints_table(),
            self.partition_progress_table(),
            self.project_activity_table(),
            self.event_notices_table(),
        ]
    }

    /// Raw events, one row per event.
    ///
    /// Exactly-once in effect: the processor commits Kafka offsets only after a
    /// batch is in this table, so a crash replays some messages; a replayed
    /// message yields the identical row, and ReplacingMergeTree keeps one row per
    /// sorting key (readers use `FINAL`). A client retry of an `event_id` with
    /// the same type and event time collapses the same way, the latest
    /// `received_at_ms` winning. Partitions are days, which retention drops.
    fn events_table(&self, features: ServerFeatures, retention_days: Option<u32>) -> String {
        // Few distinct values each: dictionary-encoded where the server can.
        let tag = if features.low_cardinality {
            "LowCardinality(String)"
        } else {
            "String"
        };
        let ttl = match retention_days {
            Some(days) if features.ttl => {
                format!("\n            TTL timestamp + INTERVAL {days} DAY")
            }
            _ => String::new(),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {self}.events (
                project_id String,
                type {tag},
                timestamp DateTime,
                timestamp_ms UInt64,
                event_id String,
                user_id String,
                session_id String,
                source {tag},
                duration_ms Nullable(Float64),
                status {tag},
                tags Array(String),
                properties String,
                received_at_ms UInt64,
                client_ip String,
                user_agent String,
                kafka_partition UInt32,
                kafka_offset UInt64
            ) ENGINE = ReplacingMergeTree(received_at_ms)
            PARTITION BY toYYYYMMDD(timestamp)
            ORDER BY (project_id, type, timestamp, event_id){ttl}"
        )
    }
}

/// The tables the query API reads; it waits for them to exist, since only
/// the processor (whose user may) creates them.
pub const QUERIED_TABLES: [&str; 6] = [
    "events",
    "rollups",
    "property_rollups",
    "partition_progress",
    "project_activity",
    "event_notices",
];

/// The tables partitioned by UTC day (`toYYYYMMDD`), whose partitions older
/// than the retention are dropped.
pub const DAY_PARTITIONED_TABLES: [&str; 4] =
    ["events", "rollups", "property_rollups", "event_notices"];

/// The two tables of partial window aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RollupTable {
    /// `rollups`: by type, source and status.
    Windows,
    /// `property_rollups`: the same, split further by the value of each
    /// property the processor is told to roll up.
    PropertyValues,
}

impl Database {
    /// Windowed rollups (see `sluice_schemas::rollup`): one row per partial
    /// aggregate of a window, i.e. per (window key, source Kafka partition,
    /// `seq`), where `seq` is the offset of the partial's first event. A window
    /// has one partial per partition it got events from, plus one per
    /// correction of late events. Every row depends only on the message
    /// sequence, so a replay writes the same key with the same values and
    /// ReplacingMergeTree keeps one (read with `FINAL`). Readers merge the
    /// partials: `sum(count)` in SQL, the sketch columns (`Hll`,
    /// `QuantileSketch` bytes) in Rust. `duration_sum_us` is in microseconds.
    ///
    /// `property_rollups` holds the same partials split by the value of each
    /// rolled-up property (`--rollup-properties`), so that a group-by on such
    /// a property is read from rollups too. A window's rows for one key add up
    /// to its `rollups` rows (events without the property have the empty
    /// value); readers compare the two counts to know a key covers a range.
    fn rollups_table(&self, features: ServerFeatures, table: RollupTable) -> String {
        let tag = if features.low_cardinality {
            "LowCardinality(String)"
        } else {
            "String"
        };
        let (name, property_columns, order_by) = match table {
            RollupTable::Windows => (
                "rollups",
                "",
                "project_id, minute, type, source, status, kafka_partition, seq",
            ),
            RollupTable::PropertyValues => (
                "property_rollups",
                ",\n                property_key String,\n                property_value String",
                "project_id, property_key, minute, property_value, type, source, status, \
                 kafka_partition, seq",
            ),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {self}.{name} (
                project_id String,
                minute DateTime,
                type {tag},
                source {tag},
                status {tag},
                kafka_partition UInt32,
                seq UInt64,
                count UInt64,
                duration_count UInt64,
                duration_sum_us UInt64,
                duration_min Nullable(Float64),
                duration_max Nullable(Float64),
                users String,
                sessions String,
                durations String{property_columns}
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMMDD(minute)
            ORDER BY ({order_by})"
        )
    }

    /// The stream processor's position and window state per consumer group and
    /// source partition: written after the rows of every message below
    /// `next_offset` are stored, read when a processor takes the partition
    /// over. The highest `next_offset` wins (it is the version), so a late
    /// write of an older state changes nothing.
    fn checkpoints_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {self}.processor_checkpoints (
                consumer_group String,
                topic String,
                kafka_partition UInt32,
                next_offset UInt64,
                written_at_ms UInt64,
                state String
            ) ENGINE = ReplacingMergeTree(next_offset)
            ORDER BY (consumer_group, topic, kafka_partition)"
        )
    }

    /// What `/v1/status` reads of the processor's position, per consumer
    /// group and source partition: everything below `next_offset` is
    /// queryable, and the partition's windows are closed up to
    /// `watermark_ms` (0 before its first event). Written with each
    /// checkpoint, whose `state` is the processor's own format; this is the
    /// readable part of it. The highest `next_offset` wins.
    fn partition_progress_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {self}.partition_progress (
                consumer_group String,
                topic String,
                kafka_partition UInt32,
                next_offset UInt64,
                watermark_ms Int64,
                written_at_ms UInt64
            ) ENGINE = ReplacingMergeTree(next_offset)
            ORDER BY (consumer_group, topic, kafka_partition)"
        )
    }

    /// Per project and source partition, the newest event made queryable:
    /// its `received_at_ms` and event time, and when the flush that stored
    /// it was written (`written_at_ms`). The highest `last_offset` wins, so
    /// a replay of older messages leaves the row as it is.
    fn project_activity_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {self}.project_activity (
                project_id String,
                kafka_partition UInt32,
                last_offset UInt64,
                last_received_ms UInt64,
                last_event_ms UInt64,
                written_at_ms UInt64
            ) ENGINE = ReplacingMergeTree(last_offset)
            ORDER BY (project_id, kafka_partition)"
        )
    }

    /// One row per message that was not an ordinary on-time event: `kind`
    /// `late` (stored and counted as a correction of a closed window) or
    /// `dead_letter` (sent to the dead-letter topic; `reason` says why and
    /// `project_id` is empty when the message did not name one). Keyed by
    /// source partition and offset, so a replay writes the same row again.
    /// Partitions are days of `received_at`, which retention drops.
    fn event_notices_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {self}.event_notices (
                project_id String,
                kind String,
                received_at DateTime,
                kafka_partition UInt32,
                kafka_offset UInt64,
                reason String
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMMDD(received_at)
            ORDER BY (project_id, kind, received_at, kafka_partition, kafka_offset)"
        )
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_only() {
        assert!(Database::new("sluice").is_ok());
        assert!(Database::new("_t_01").is_ok());
        for bad in [
            "",
            "1abc",
            "a-b",
            "a`b",
            "a b",
            "x; DROP TABLE y",
            &"a".repeat(65),
        ] {
            assert!(Database::new(bad).is_err(), "{bad}");
        }
    }

    const CURRENT: ServerFeatures = ServerFeatures {
        low_cardinality: true,
        ttl: true,
        row_validation: true,
    };

    fn events_table(features: ServerFeatures, retention_days: Option<u32>) -> String {
        let statements = Database::new("sluice")
            .unwrap()
            .create_statements(features, retention_days);
        assert_eq!(statements[0], "CREATE DATABASE IF NOT EXISTS `sluice`");
        assert!(statements[2].contains("`sluice`.rollups ("));
        assert!(statements[3].contains("`sluice`.property_rollups ("));
        assert!(statements[4].contains("`sluice`.processor_checkpoints ("));
        assert!(statements[5].contains("`sluice`.partition_progress ("));
        assert!(statements[6].contains("`sluice`.project_activity ("));
        assert!(statements[7].contains("`sluice`.event_notices ("));
        assert_eq!(statements.len(), 8);
        for rollups in &statements[2..4] {
            assert_eq!(rollups.contains("LowCardinality"), features.low_cardinality);
        }
        assert!(statements[3].contains("property_value String\n"));
        assert!(statements[3].ends_with(
            "ORDER BY (project_id, property_key, minute, property_value, type, source, status, \
             kafka_partition, seq)"
        ));
        assert!(statements[1].starts_with("CREATE TABLE IF NOT EXISTS `sluice`.events ("));
        statements[1].clone()
    }

    #[test]
    fn the_common_subset_has_no_newer_sql() {
        for retention in [None, Some(30)] {
            let sql = events_table(ServerFeatures::COMMON_SUBSET, retention);
            assert!(!sql.contains("LowCardinality"), "{sql}");
            assert!(!sql.contains("TTL"), "{sql}");
            assert!(sql.contains("\n                type String,"), "{sql}");
            assert!(sql.ends_with("ORDER BY (project_id, type, timestamp, event_id)"));
        }
    }

    #[test]
    fn current_servers_get_low_cardinality_and_ttl() {
        let sql = events_table(CURRENT, Some(30));
        for column in ["type", "source", "status"] {
            assert!(
                sql.contains(&format!(
                    "\n                {column} LowCardinality(String),"
                )),
                "{column}: {sql}"
            );
        }
        assert!(sql.contains("project_id String,"), "{sql}");
        assert!(sql.ends_with(
            "ORDER BY (project_id, type, timestamp, event_id)\n            TTL timestamp + INTERVAL 30 DAY"
        ));
        assert!(!events_table(CURRENT, None).contains("TTL"));
    }
}
