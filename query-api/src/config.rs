//! The query API's settings; `sluice-query-api --help` lists them all.

use clap::{Args, Parser};
use sluice_runtime::settings::{ApiSettings, ClickhouseSettings, KafkaSettings, ProcessSettings};
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

    #[command(flatten, next_help_heading = "Queries")]
    pub query: QuerySettings,

    #[command(flatten, next_help_heading = "ClickHouse")]
    pub clickhouse: ClickhouseSettings,

    /// The broker, for the keys topic and the live topic.
    #[command(flatten, next_help_heading = "Kafka")]
    pub kafka: KafkaSettings,

    #[command(flatten)]
    pub process: ProcessSettings,
}

/// How questions are answered and live pushes sent.
#[derive(Debug, Clone, Args)]
pub struct QuerySettings {
    /// Buckets that ended less than this long ago are read from raw events,
    /// older ones from rollups (where rollups cover the question), in
    /// milliseconds. It must exceed how long the processor takes to close and
    /// store a window: its allowed lateness plus idle timeout plus batch wait.
    #[arg(
        long = "rollup-delay-ms",
        env = "SLUICE_ROLLUP_DELAY_MS",
        default_value_t = 120_000
    )]
    pub rollup_delay_ms: i64,

    /// Interval of WebSocket heartbeats (a ping, and a `heartbeat` message),
    /// in milliseconds; a client silent for three intervals is dropped.
    #[arg(
        long = "live-heartbeat-ms",
        env = "SLUICE_LIVE_HEARTBEAT_MS",
        default_value_t = 10_000
    )]
    pub live_heartbeat_ms: u64,

    /// Pushes a WebSocket client may have unsent before it counts as slow and
    /// is dropped; the others never wait for it.
    #[arg(
        long = "live-client-buffer",
        env = "SLUICE_LIVE_CLIENT_BUFFER",
        default_value_t = 64
    )]
    pub live_client_buffer: usize,

    /// Events an event export reads per query, about: the range is cut into
    /// slices of whole hours this big, and ClickHouse sorts the next slice
    /// while the current one is sent.
    #[arg(
        long = "export-slice-rows",
        env = "SLUICE_EXPORT_SLICE_ROWS",
        default_value_t = 500_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub export_slice_rows: u64,

    /// The stream processor's consumer group (its `--consumer-group`), whose
    /// progress `/v1/status` reports.
    #[arg(
        long = "processor-group",
        env = "SLUICE_PROCESSOR_GROUP",
        default_value = "sluice-stream-processor"
    )]
    pub processor_group: String,

    /// Other services whose readiness `/v1/admin/status` shows beside this
    /// API's, as `NAME=URL,…` with each service's ops base URL, e.g.
    /// `gateway=http://10.0.0.5:8080,processor=http://10.0.0.6:8082`.
    #[arg(long = "status-peers", env = "SLUICE_STATUS_PEERS", default_value = "")]
    pub status_peers: String,

    /// The destinations service's base URL (e.g. `http://127.0.0.1:8083`):
    /// `/v1/webhooks` here is forwarded to it, so the dashboard can manage
    /// webhooks. Empty: those routes answer 404 saying so.
    #[arg(
        long = "destinations-url",
        env = "SLUICE_DESTINATIONS_URL",
        default_value = ""
    )]
    pub destinations_url: String,
}

impl Default for QuerySettings {
    /// The defaults that `--help` shows, whatever `SLUICE_*` variables the
    /// environment holds, for code that builds settings as a struct literal.
    fn default() -> Self {
        sluice_runtime::settings::defaults()
    }
}
