//! The processor's settings; `sluice-stream-processor --help` lists them all.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};
use sluice_runtime::settings::{ClickhouseSettings, KafkaSettings, ProcessSettings};
use sluice_schemas::rollup::property::valid_property_key;

/// Sluice stream processor: reads the events topic and writes every event into
/// ClickHouse exactly once in effect.
#[derive(Debug, Clone, Parser)]
#[command(name = "sluice-stream-processor", version)]
pub struct ProcessorConfig {
    /// Address of the health and metrics endpoints.
    #[arg(
        long = "listen",
        env = "SLUICE_LISTEN",
        default_value = "127.0.0.1:8082"
    )]
    pub listen: SocketAddr,

    #[command(flatten, next_help_heading = "Processing")]
    pub processor: ProcessorSettings,

    #[command(flatten, next_help_heading = "Kafka")]
    pub kafka: KafkaSettings,

    #[command(flatten, next_help_heading = "ClickHouse")]
    pub clickhouse: ClickhouseSettings,

    #[command(flatten)]
    pub process: ProcessSettings,
}

/// Consumer group, batching, windows and retention.
#[derive(Debug, Clone, Args)]
pub struct ProcessorSettings {
    /// Kafka consumer group; processors in one group share the partitions.
    #[arg(
        long = "consumer-group",
        env = "SLUICE_CONSUMER_GROUP",
        default_value = "sluice-stream-processor"
    )]
    pub consumer_group: String,

    /// Rows that fill an insert batch; a full batch is written at once.
    #[arg(
        long = "batch-max-rows",
        env = "SLUICE_BATCH_MAX_ROWS",
        default_value_t = 50_000
    )]
    pub batch_max_rows: usize,

    /// Longest time an event waits in a batch before the batch is written,
    /// in milliseconds. Freshness costs inserts: 250 ms is four inserts a
    /// second per table at low load, and batches fill by rows at high load.
    #[arg(
        long = "batch-max-ms",
        env = "SLUICE_BATCH_MAX_MS",
        default_value_t = 250
    )]
    pub batch_max_ms: u64,

    /// How long the group waits for a silent processor before giving its
    /// partitions to the others, in milliseconds (librdkafka session.timeout.ms).
    #[arg(
        long = "kafka-session-timeout-ms",
        env = "SLUICE_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub session_timeout_ms: u64,

    /// How long a processor may hold fewer partitions than its share of the
    /// group (partitions / members, rounded down) before it leaves the group
    /// and joins again, in milliseconds. A rebalance normally settles well
    /// within it; some brokers (tansu 0.6.0) can leave a partition assigned
    /// to a dead member, or none, until a member rejoins
    /// (docs/failure-modes.md).
    #[arg(
        long = "rebalance-grace-ms",
        env = "SLUICE_REBALANCE_GRACE_MS",
        default_value_t = 10_000
    )]
    pub rebalance_grace_ms: u64,

    /// A partition with messages waiting and no committed progress for this
    /// long is reported stalled: readiness fails and names it, in milliseconds.
    #[arg(
        long = "stall-timeout-ms",
        env = "SLUICE_STALL_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub stall_timeout_ms: u64,

    /// Longest wait for one ClickHouse insert or checkpoint read, in
    /// milliseconds; past it the call fails, readiness says so, and it is
    /// retried. Bounds the stall when ClickHouse accepts connections but
    /// answers nothing.
    #[arg(
        long = "clickhouse-timeout-ms",
        env = "SLUICE_CLICKHOUSE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub clickhouse_timeout_ms: u64,

    /// How far behind the newest event time (capped at its received time) the
    /// watermark trails, in milliseconds. A window closes when the watermark
    /// passes its end; later events are still counted, as a correction row.
    #[arg(
        long = "allowed-lateness-ms",
        env = "SLUICE_ALLOWED_LATENESS_MS",
        default_value_t = 5_000
    )]
    pub allowed_lateness_ms: u64,

    /// A partition that has open windows and no message for this long gets a
    /// watermark marker (wall clock minus the lateness), so its windows close.
    #[arg(
        long = "idle-timeout-ms",
        env = "SLUICE_IDLE_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub idle_timeout_ms: u64,

    /// A repeated event_id (a client retry) counts once when received within
    /// this long of the first copy, in milliseconds. Memory grows with it:
    /// about 50 bytes per event received in the horizon.
    #[arg(
        long = "dedup-horizon-ms",
        env = "SLUICE_DEDUP_HORIZON_MS",
        default_value_t = 600_000
    )]
    pub dedup_horizon_ms: u64,

    /// Shortest interval between two live updates of one window, in milliseconds.
    #[arg(
        long = "live-interval-ms",
        env = "SLUICE_LIVE_INTERVAL_MS",
        default_value_t = 250
    )]
    pub live_interval_ms: u64,

    /// Days of raw events and rollups to keep, by event time; older day
    /// partitions are dropped hourly. 0 keeps everything.
    #[arg(
        long = "retention-days",
        env = "SLUICE_RETENTION_DAYS",
        default_value_t = 0
    )]
    pub retention_days: u32,

    /// Property keys to roll up (comma-separated, e.g. `plan,country`): each
    /// window is also split by the value of each, into `property_rollups`,
    /// so that a group-by on one of them is answered from rollups. Each key
    /// costs about one more aggregate update per event.
    #[arg(
        long = "rollup-properties",
        env = "SLUICE_ROLLUP_PROPERTIES",
        default_value = "",
        value_parser = parse_property_keys
    )]
    pub rollup_properties: PropertyKeys,
}

/// Property keys from a comma-separated list (empty items skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyKeys(pub Vec<String>);

impl std::ops::Deref for PropertyKeys {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

fn parse_property_keys(list: &str) -> Result<PropertyKeys, String> {
    let mut keys = Vec::new();
    for key in list.split(',').map(str::trim).filter(|key| !key.is_empty()) {
        if !valid_property_key(key) {
            return Err(format!(
                "{key:?} is not a property key: 1 to 128 of A-Z a-z 0-9 _ - . $ :"
            ));
        }
        if !keys.iter().any(|known| known == key) {
            keys.push(key.to_owned());
        }
    }
    Ok(PropertyKeys(keys))
}

impl Default for ProcessorSettings {
    /// The defaults that `--help` shows, whatever `SLUICE_*` variables the
    /// environment holds, for code that builds settings as a struct literal.
    fn default() -> Self {
        sluice_runtime::settings::defaults()
    }
}

impl ProcessorSettings {
    pub fn batch_max_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_ms)
    }

    pub fn clickhouse_timeout(&self) -> Duration {
        Duration::from_millis(self.clickhouse_timeout_ms)
    }

    pub fn lateness_ms(&self) -> i64 {
        i64::try_from(self.allowed_lateness_ms).unwrap_or(i64::MAX)
    }

    pub fn dedup_horizon_ms(&self) -> i64 {
        i64::try_from(self.dedup_horizon_ms).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_properties_are_a_comma_list_of_keys() {
        let keys = |list: &str| parse_property_keys(list).map(|keys| keys.0);
        assert_eq!(keys(""), Ok(vec![]));
        assert_eq!(
            keys(" plan, country,,plan "),
            Ok(vec!["plan".into(), "country".into()])
        );
        assert!(
            keys("plan,a b")
                .unwrap_err()
                .contains("\"a b\" is not a property key")
        );
        assert_eq!(
            ProcessorSettings::default().rollup_properties,
            PropertyKeys::default()
        );
    }
}
