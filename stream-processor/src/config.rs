//! The processor's settings; `sluice-stream-processor --help` lists them all.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};
use sluice_runtime::settings::{ClickhouseSettings, ConfigFile, KafkaSettings, TelemetrySettings};

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

    #[command(flatten, next_help_heading = "Telemetry")]
    pub telemetry: TelemetrySettings,

    #[command(flatten)]
    pub config_file: ConfigFile,
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

    /// Longest time an event waits in a batch before the batch is written, in milliseconds.
    #[arg(
        long = "batch-max-ms",
        env = "SLUICE_BATCH_MAX_MS",
        default_value_t = 1_000
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
}

impl Default for ProcessorSettings {
    /// The defaults that `--help` shows (`SLUICE_*` variables still apply), for
    /// code that builds settings as a struct literal.
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            settings: ProcessorSettings,
        }
        Defaults::parse_from(["sluice-stream-processor"]).settings
    }
}

impl ProcessorSettings {
    pub fn batch_max_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_ms)
    }

    pub fn lateness_ms(&self) -> i64 {
        i64::try_from(self.allowed_lateness_ms).unwrap_or(i64::MAX)
    }

    pub fn dedup_horizon_ms(&self) -> i64 {
        i64::try_from(self.dedup_horizon_ms).unwrap_or(i64::MAX)
    }
}
