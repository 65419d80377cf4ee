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

/// Consumer group and batching.
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
}

impl ProcessorSettings {
    pub fn batch_max_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_ms)
    }
}
