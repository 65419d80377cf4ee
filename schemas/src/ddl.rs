//! ClickHouse tables: the SQL subset shared by 18.16 and current servers, plus
//! what [`ServerFeatures`] says the server has (`LowCardinality`, `TTL`).
//!
//! Identifiers cannot be bound as query parameters, so the identifiers that
//! operators choose, the database and cluster names, are checked by
//! [`Database::new`] and [`ClusterName::new`] before any statement is built
//! from them.
//!
//! On a replicated, sharded cluster ([`Database::create_cluster_statements`])
//! every table becomes a shard-local `<table>_local` with the Replicated
//! variant of its engine, plus a Distributed table named as the single-node
//! table, sharded by `kafka_partition`.
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
        if plain_identifier(name) {
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
        let mut statements = vec![format!("CREATE DATABASE IF NOT EXISTS {self}")];
        statements.extend(
            Self::tables(features, retention_days)
                .iter()
                .map(|table| table.create(self)),
        );
        statements
    }

    /// The statements of [`Database::create_statements`] for `cluster`, run
    /// on any one of its servers: the database and, per table, a shard-local
    /// table `<table>_local` with the Replicated variant of its engine and a
    /// Distributed table under the table's own name over them, all `ON
    /// CLUSTER`. Readers keep their SQL (the Distributed table has the
    /// name they read); writers insert into the shard-local tables of the
    /// shard [`shard_of`] names, so that the write is durable when the
    /// insert returns. Each replica set keeps its table in ZooKeeper at
    /// `/clickhouse/tables/{shard}/<database>/<table>_local`.
    pub fn create_cluster_statements(
        &self,
        cluster: &ClusterName,
        features: ServerFeatures,
        retention_days: Option<u32>,
    ) -> Vec<String> {
        let mut statements = vec![format!(
            "CREATE DATABASE IF NOT EXISTS {self} ON CLUSTER {cluster}"
        )];
        for table in Self::tables(features, retention_days) {
            statements.push(table.create_replicated(self, cluster));
            statements.push(table.create_distributed(self, cluster));
        }
        statements
    }

    /// Every table, in creation order.
    fn tables(features: ServerFeatures, retention_days: Option<u32>) -> [Table; 8] {
        [
            Self::events_table(features, retention_days),
            Self::rollups_table(features, RollupTable::Windows),
            Self::rollups_table(features, RollupTable::PropertyValues),
            Self::checkpoints_table(),
            Self::partition_progress_table(),
            Self::project_activity_table(),
            Self::event_notices_table(),
            Self::webhook_deliveries_table(),
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
    fn events_table(features: ServerFeatures, retention_days: Option<u32>) -> Table {
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
        Table {
            name: "events",
            columns: format!(
                "
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
                kafka_offset UInt64"
            ),
            version: Some("received_at_ms"),
            clauses: format!(
                "
            PARTITION BY toYYYYMMDD(timestamp)
            ORDER BY (project_id, type, timestamp, event_id){ttl}"
            ),
        }
    }
}

/// A table: its columns, its ReplacingMergeTree version column (if any)
/// and what follows the engine (partitioning, order, TTL), rendered for one
/// server or for a cluster.
struct Table {
    name: &'static str,
    /// The column list between the parentheses, from a newline on.
    columns: String,
    version: Option<&'static str>,
    clauses: String,
}

impl Table {
    fn create(&self, database: &Database) -> String {
        let version = self
            .version
            .map_or_else(String::new, |version| format!("({version})"));
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.{name} ({columns}\n            ) \
             ENGINE = ReplacingMergeTree{version}{clauses}",
            name = self.name,
            columns = self.columns,
            clauses = self.clauses,
        )
    }

    /// The shard-local table: 18.16's syntax for the Replicated engines
    /// (ZooKeeper path and replica name first, then the engine's own
    /// arguments), which current servers accept too.
    fn create_replicated(&self, database: &Database, cluster: &ClusterName) -> String {
        let local = local_table(self.name);
        let version = self
            .version
            .map_or_else(String::new, |version| format!(", {version}"));
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.{local} ON CLUSTER {cluster} ({columns}\n            ) \
             ENGINE = ReplicatedReplacingMergeTree('{path}', '{{replica}}'{version}){clauses}",
            path = zookeeper_path(database, self.name),
            columns = self.columns,
            clauses = self.clauses,
        )
    }

    /// The table readers query, over the shard-local tables of every shard.
    fn create_distributed(&self, database: &Database, cluster: &ClusterName) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.{name} ON CLUSTER {cluster} ({columns}\n            ) \
             ENGINE = Distributed('{cluster_name}', '{database_name}', '{local}', {SHARDING_KEY})",
            name = self.name,
            columns = self.columns,
            cluster_name = cluster.name(),
            database_name = database.name(),
            local = local_table(self.name),
        )
    }
}

/// A cluster of the servers' `remote_servers`, safe to splice into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterName(String);

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid ClickHouse cluster name {0:?}: use 1 to 64 ASCII letters, digits and underscores, not starting with a digit"
)]
pub struct InvalidClusterName(pub String);

impl ClusterName {
    pub fn new(name: &str) -> Result<Self, InvalidClusterName> {
        if plain_identifier(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidClusterName(name.to_owned()))
        }
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0)
    }
}

/// On a cluster, the shard-local table under the Distributed table `table`.
pub fn local_table(table: &str) -> String {
    format!("{table}_local")
}

/// Where the replicas of one shard keep the shard-local table `table` in
/// ZooKeeper; `{shard}` is each server's macro.
pub fn zookeeper_path(database: &Database, table: &str) -> String {
    format!(
        "/clickhouse/tables/{{shard}}/{}/{}",
        database.name(),
        local_table(table)
    )
}

/// The Distributed tables' sharding key. Every table has the column, and
/// every row of one Kafka partition (its replays, retries and corrections
/// included) goes to one shard, where ReplacingMergeTree collapses copies.
pub const SHARDING_KEY: &str = "kafka_partition";

/// The shard (0-based, in `remote_servers` order) that a Distributed table
/// sends a row of `kafka_partition` to when the shards have equal weights
/// (ClickHouse takes the key modulo the total weight): writers that insert
/// into the shard-local tables themselves choose the same one.
pub fn shard_of(kafka_partition: u32, shards: u32) -> u32 {
    kafka_partition % shards.max(1)
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
pub const DAY_PARTITIONED_TABLES: [&str; 5] = [
    "events",
    "rollups",
    "property_rollups",
    "event_notices",
    "webhook_deliveries",
];

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
    fn rollups_table(features: ServerFeatures, table: RollupTable) -> Table {
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
        Table {
            name,
            columns: format!(
                "
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
                durations String{property_columns}"
            ),
            version: None,
            clauses: format!(
                "
            PARTITION BY toYYYYMMDD(minute)
            ORDER BY ({order_by})"
            ),
        }
    }

    /// The stream processor's position and window state per consumer group and
    /// source partition: written after the rows of every message below
    /// `next_offset` are stored, read when a processor takes the partition
    /// over. The highest `next_offset` wins (it is the version), so a late
    /// write of an older state changes nothing.
    fn checkpoints_table() -> Table {
        Table {
            name: "processor_checkpoints",
            columns: "
                consumer_group String,
                topic String,
                kafka_partition UInt32,
                next_offset UInt64,
                written_at_ms UInt64,
                state String"
                .to_owned(),
            version: Some("next_offset"),
            clauses: "
            ORDER BY (consumer_group, topic, kafka_partition)"
                .to_owned(),
        }
    }

    /// What `/v1/status` reads of the processor's position, per consumer
    /// group and source partition: everything below `next_offset` is
    /// queryable, and the partition's windows are closed up to
    /// `watermark_ms` (0 before its first event). Written with each
    /// checkpoint, whose `state` is the processor's own format; this is the
    /// readable part of it. The highest `next_offset` wins.
    fn partition_progress_table() -> Table {
        Table {
            name: "partition_progress",
            columns: "
                consumer_group String,
                topic String,
                kafka_partition UInt32,
                next_offset UInt64,
                watermark_ms Int64,
                written_at_ms UInt64"
                .to_owned(),
            version: Some("next_offset"),
            clauses: "
            ORDER BY (consumer_group, topic, kafka_partition)"
                .to_owned(),
        }
    }

    /// Per project and source partition, the newest event made queryable:
    /// its `received_at_ms` and event time, and when the flush that stored
    /// it was written (`written_at_ms`). The highest `last_offset` wins, so
    /// a replay of older messages leaves the row as it is.
    fn project_activity_table() -> Table {
        Table {
            name: "project_activity",
            columns: "
                project_id String,
                kafka_partition UInt32,
                last_offset UInt64,
                last_received_ms UInt64,
                last_event_ms UInt64,
                written_at_ms UInt64"
                .to_owned(),
            version: Some("last_offset"),
            clauses: "
            ORDER BY (project_id, kafka_partition)"
                .to_owned(),
        }
    }

    /// One row per message that was not an ordinary on-time event: `kind`
    /// `late` (stored and counted as a correction of a closed window) or
    /// `dead_letter` (sent to the dead-letter topic; `reason` says why and
    /// `project_id` is empty when the message did not name one). Keyed by
    /// source partition and offset, so a replay writes the same row again.
    /// Partitions are days of `received_at`, which retention drops.
    fn event_notices_table() -> Table {
        Table {
            name: "event_notices",
            columns: "
                project_id String,
                kind String,
                received_at DateTime,
                kafka_partition UInt32,
                kafka_offset UInt64,
                reason String"
                .to_owned(),
            version: None,
            clauses: "
            PARTITION BY toYYYYMMDD(received_at)
            ORDER BY (project_id, kind, received_at, kafka_partition, kafka_offset)"
                .to_owned(),
        }
    }
}

impl Database {
    /// The destinations service's deliveries log: one row per attempt of a
    /// delivery (an event on its way to one webhook), with the receiver's
    /// status (0 without an answer), the latency and, for redelivery, the
    /// body. `status` is `delivered`, `retrying`, `dead` (the last attempt
    /// failed) or `refused` (a 4xx). A delivery's state is its row with the
    /// highest (`at_ms`, `attempt`). `kafka_partition` is the source
    /// partition of the event, which shards the table on a cluster. An
    /// attempt made again after a crash is a real attempt and has its own
    /// row. Partitions are days of `at`, which retention drops.
    fn webhook_deliveries_table() -> Table {
        Table {
            name: "webhook_deliveries",
            columns: "
                project_id String,
                webhook_id String,
                delivery_id String,
                event_id String,
                attempt UInt32,
                status String,
                response_status UInt16,
                latency_ms UInt32,
                error String,
                at DateTime,
                at_ms UInt64,
                kafka_partition UInt32,
                body String"
                .to_owned(),
            version: None,
            clauses: "
            PARTITION BY toYYYYMMDD(at)
            ORDER BY (project_id, webhook_id, at, delivery_id, attempt)"
                .to_owned(),
        }
    }
}

/// 1 to 64 ASCII letters, digits and underscores, not starting with a digit.
fn plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid_start && valid_rest && name.len() <= 64
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
        shared_merge_tree: false,
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
        assert_eq!(statements.len(), 9);
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

    fn cluster_statements(features: ServerFeatures) -> Vec<String> {
        Database::new("sluice").unwrap().create_cluster_statements(
            &ClusterName::new("sluice_cluster").unwrap(),
            features,
            Some(30),
        )
    }

    /// The column list of a CREATE TABLE, between the name and the engine.
    fn columns(statement: &str) -> &str {
        let start = statement.find(" (").unwrap();
        let end = statement.find(") ENGINE").unwrap();
        &statement[start..end]
    }

    #[test]
    fn a_cluster_gets_replicated_shard_local_tables_and_distributed_ones_over_them() {
        let statements = cluster_statements(ServerFeatures::COMMON_SUBSET);
        assert_eq!(statements.len(), 17);
        assert_eq!(
            statements[0],
            "CREATE DATABASE IF NOT EXISTS `sluice` ON CLUSTER `sluice_cluster`"
        );
        let single = Database::new("sluice")
            .unwrap()
            .create_statements(ServerFeatures::COMMON_SUBSET, Some(30));
        let names = [
            "events",
            "rollups",
            "property_rollups",
            "processor_checkpoints",
            "partition_progress",
            "project_activity",
            "event_notices",
        ];
        for (index, name) in names.iter().enumerate() {
            let (local, distributed) = (&statements[1 + 2 * index], &statements[2 + 2 * index]);
            assert!(
                local.starts_with(&format!(
                    "CREATE TABLE IF NOT EXISTS `sluice`.{name}_local ON CLUSTER `sluice_cluster` ("
                )),
                "{local}"
            );
            assert!(
                local.contains(&format!(
                    ") ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/sluice/{name}_local', '{{replica}}'"
                )),
                "{local}"
            );
            assert!(
                distributed.starts_with(&format!(
                    "CREATE TABLE IF NOT EXISTS `sluice`.{name} ON CLUSTER `sluice_cluster` ("
                )),
                "{distributed}"
            );
            assert!(
                distributed.ends_with(&format!(
                    ") ENGINE = Distributed('sluice_cluster', 'sluice', '{name}_local', kafka_partition)"
                )),
                "{distributed}"
            );
            // Same columns as each other and as the single-node table.
            assert_eq!(columns(local), columns(distributed), "{name}");
            assert_eq!(columns(local), columns(&single[1 + index]), "{name}");
            // The engine's arguments and clauses are the single-node ones.
            let single_tail = &single[1 + index][single[1 + index].find(") ENGINE").unwrap()..];
            let version = single_tail
                .strip_prefix(") ENGINE = ReplacingMergeTree")
                .unwrap();
            let (version, clauses) = match version.strip_prefix('(') {
                Some(rest) => rest.split_once(')').unwrap(),
                None => ("", version),
            };
            let arguments = if version.is_empty() {
                "'{replica}')".to_owned()
            } else {
                format!("'{{replica}}', {version})")
            };
            assert!(local.ends_with(&format!("{arguments}{clauses}")), "{local}");
        }
        assert!(statements[1].contains("'{replica}', received_at_ms)\n"));
        assert!(statements[3].contains("'{replica}')\n"));
    }

    #[test]
    fn cluster_tables_follow_the_detected_features() {
        let subset = cluster_statements(ServerFeatures::COMMON_SUBSET).join("\n");
        assert!(!subset.contains("LowCardinality") && !subset.contains("TTL"));
        let current = cluster_statements(CURRENT);
        assert!(current[1].ends_with(
            "ORDER BY (project_id, type, timestamp, event_id)\n            TTL timestamp + INTERVAL 30 DAY"
        ));
        assert!(current[2].contains("type LowCardinality(String),"));
        assert!(!current[2].contains("TTL"), "no TTL on a Distributed table");
    }

    #[test]
    fn one_node_has_neither_replication_nor_clusters() {
        for features in [ServerFeatures::COMMON_SUBSET, CURRENT] {
            for statement in Database::new("sluice")
                .unwrap()
                .create_statements(features, Some(30))
            {
                assert!(!statement.contains("ON CLUSTER"), "{statement}");
                assert!(!statement.contains("Replicated"), "{statement}");
                assert!(!statement.contains("_local"), "{statement}");
            }
        }
    }

    #[test]
    fn cluster_names_are_plain_and_partitions_pick_one_shard() {
        assert!(ClusterName::new("sluice").is_ok());
        for bad in ["", "a-b", "a`b", "x' OR 1", "1x"] {
            assert_eq!(
                ClusterName::new(bad),
                Err(InvalidClusterName(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            zookeeper_path(&Database::new("db").unwrap(), "events"),
            "/clickhouse/tables/{shard}/db/events_local"
        );
        let shards: Vec<u32> = (0..6).map(|partition| shard_of(partition, 2)).collect();
        assert_eq!(shards, [0, 1, 0, 1, 0, 1]);
        assert_eq!(shard_of(5, 1), 0);
        assert_eq!(shard_of(5, 0), 0, "no shards reads as one");
    }
}
