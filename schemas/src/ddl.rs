//! ClickHouse tables, in the SQL subset shared by 18.16 and current servers.
//!
//! Identifiers cannot be bound as query parameters, so the one identifier that
//! operators choose, the database name, is checked by [`Database::new`] before
//! any statement is built from it.

use std::fmt;

use thiserror::Error;

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
    /// Each is idempotent.
    pub fn create_statements(&self) -> Vec<String> {
        vec![
            format!("CREATE DATABASE IF NOT EXISTS {self}"),
            self.events_table(),
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
    fn events_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {self}.events (
                project_id String,
                type String,
                timestamp DateTime,
                timestamp_ms UInt64,
                event_id String,
                user_id String,
                session_id String,
                source String,
                duration_ms Nullable(Float64),
                status String,
                tags Array(String),
                properties String,
                received_at_ms UInt64,
                client_ip String,
                user_agent String,
                kafka_partition UInt32,
                kafka_offset UInt64
            ) ENGINE = ReplacingMergeTree(received_at_ms)
            PARTITION BY toYYYYMMDD(timestamp)
            ORDER BY (project_id, type, timestamp, event_id)"
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

    #[test]
    fn statements_name_the_database() {
        let statements = Database::new("sluice").unwrap().create_statements();
        assert_eq!(statements[0], "CREATE DATABASE IF NOT EXISTS `sluice`");
        assert!(statements[1].contains("`sluice`.events"));
    }
}
