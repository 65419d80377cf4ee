//! The gateway's settings; `sluice-ingest-gateway --help` lists them all.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};
use sluice_runtime::settings::{ApiSettings, ConfigFile, KafkaSettings, TelemetrySettings};

/// Sluice ingest gateway: accepts events over HTTP, validates and enriches
/// them, and answers 202 once Kafka has them.
#[derive(Debug, Clone, Parser)]
#[command(name = "sluice-ingest-gateway", version)]
pub struct GatewayConfig {
    /// Address the HTTP API listens on.
    #[arg(
        long = "listen",
        env = "SLUICE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    #[command(flatten, next_help_heading = "API")]
    pub api: ApiSettings,

    #[command(flatten, next_help_heading = "Ingest")]
    pub ingest: IngestSettings,

    #[command(flatten, next_help_heading = "Kafka")]
    pub kafka: KafkaSettings,

    #[command(flatten, next_help_heading = "Telemetry")]
    pub telemetry: TelemetrySettings,

    #[command(flatten)]
    pub config_file: ConfigFile,
}

/// What the gateway accepts and how it publishes.
#[derive(Debug, Clone, Args)]
pub struct IngestSettings {
    /// Largest request body for one event, in bytes.
    #[arg(
        long = "max-event-bytes",
        env = "SLUICE_MAX_EVENT_BYTES",
        default_value_t = 32 * 1024
    )]
    pub max_event_bytes: usize,

    /// How long the broker may take to acknowledge an event before the request fails with 503.
    #[arg(
        long = "produce-timeout-ms",
        env = "SLUICE_PRODUCE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub produce_timeout_ms: u64,

    /// Compression of produced batches: none, gzip, snappy, lz4 or zstd.
    #[arg(
        long = "kafka-compression",
        env = "SLUICE_KAFKA_COMPRESSION",
        default_value = "none"
    )]
    pub compression: String,
}

impl IngestSettings {
    pub fn produce_timeout(&self) -> Duration {
        Duration::from_millis(self.produce_timeout_ms)
    }
}
