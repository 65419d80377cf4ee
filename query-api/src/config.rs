//! The query API's settings; `sluice-query-api --help` lists them all.

use clap::Parser;
use sluice_runtime::settings::{
    ApiSettings, ClickhouseSettings, ConfigFile, KafkaSettings, TelemetrySettings,
};
use std::net::SocketAddr;

/// Sluice query API: serves raw events and analytics from ClickHouse.
#[derive(Debug, Clone, Parser)]
#[command(name = "sluice-query-api", version)]
pub struct QueryConfig {
    /// Address the HTTP API listens on.
    #[arg(
        long = "listen",
        env = "SLUICE_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: SocketAddr,

    #[command(flatten, next_help_heading = "API")]
    pub api: ApiSettings,

    #[command(flatten, next_help_heading = "ClickHouse")]
    pub clickhouse: ClickhouseSettings,

    /// The broker, for the keys topic.
    #[command(flatten, next_help_heading = "Kafka")]
    pub kafka: KafkaSettings,

    #[command(flatten, next_help_heading = "Telemetry")]
    pub telemetry: TelemetrySettings,

    #[command(flatten)]
    pub config_file: ConfigFile,
}
