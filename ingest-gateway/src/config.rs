//! The gateway's settings; `sluice-ingest-gateway --help` lists them all.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};
use sluice_runtime::settings::{ApiSettings, KafkaSettings, ProcessSettings};

// Defaults, shared by the flags and by `Default` (which tests use).
const MAX_EVENT_BYTES: usize = 32 * 1024;
const MAX_BATCH_EVENTS: usize = 1000;
const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
const PRODUCE_TIMEOUT_MS: u64 = 10_000;
const PRODUCER_QUEUE_MESSAGES: usize = 100_000;
const MAX_IN_FLIGHT_BYTES: usize = 64 * 1024 * 1024;
const REQUESTS_PER_SECOND: u32 = 1000;
const REQUEST_BURST: u32 = 2000;
const EVENTS_PER_SECOND: u32 = 100_000;
const EVENT_BURST: u32 = 200_000;
const FAILED_AUTH_PER_MINUTE: u32 = 60;

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

    #[command(flatten, next_help_heading = "Rate limits")]
    pub rate_limits: RateLimitSettings,

    #[command(flatten, next_help_heading = "Kafka")]
    pub kafka: KafkaSettings,

    #[command(flatten)]
    pub process: ProcessSettings,
}

/// What the gateway accepts and how it publishes.
#[derive(Debug, Clone, Args)]
pub struct IngestSettings {
    /// Largest event, as JSON, in bytes; also the largest body of a
    /// single-event request.
    #[arg(
        long = "max-event-bytes",
        env = "SLUICE_MAX_EVENT_BYTES",
        default_value_t = MAX_EVENT_BYTES
    )]
    pub max_event_bytes: usize,

    /// Most events in one batch request.
    #[arg(
        long = "max-batch-events",
        env = "SLUICE_MAX_BATCH_EVENTS",
        default_value_t = MAX_BATCH_EVENTS
    )]
    pub max_batch_events: usize,

    /// Largest batch request body in bytes, after gzip decompression (the
    /// compressed body may not be larger either).
    #[arg(
        long = "max-batch-bytes",
        env = "SLUICE_MAX_BATCH_BYTES",
        default_value_t = MAX_BATCH_BYTES
    )]
    pub max_batch_bytes: usize,

    /// Proxies whose `X-Forwarded-For` is believed, comma-separated IPs or
    /// CIDRs (e.g. 10.0.0.0/8). From any other peer the header is ignored.
    #[arg(
        long = "trusted-proxies",
        env = "SLUICE_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,

    /// Web origins whose pages may send events from a browser (CORS), e.g.
    /// https://shop.example.com; `*` for any, empty for none. Only the
    /// ingest routes answer CORS, never the admin API.
    #[arg(
        long = "cors-origins",
        env = "SLUICE_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub cors_origins: Vec<String>,

    /// How long the broker may take to acknowledge an event before the request fails with 503.
    #[arg(
        long = "produce-timeout-ms",
        env = "SLUICE_PRODUCE_TIMEOUT_MS",
        default_value_t = PRODUCE_TIMEOUT_MS
    )]
    pub produce_timeout_ms: u64,

    /// Most messages waiting in the producer for the broker's ack; beyond it
    /// requests get 503 with Retry-After. Bounds the gateway's memory.
    #[arg(
        long = "producer-queue-messages",
        env = "SLUICE_PRODUCER_QUEUE_MESSAGES",
        default_value_t = PRODUCER_QUEUE_MESSAGES
    )]
    pub producer_queue_messages: usize,

    /// Request bodies being handled at once, in bytes (a body without a
    /// Content-Length counts as its route's limit; gzip counts twice). Past
    /// it requests get 503 with Retry-After before their body is read, which
    /// bounds the gateway's memory.
    #[arg(
        long = "max-in-flight-bytes",
        env = "SLUICE_MAX_IN_FLIGHT_BYTES",
        default_value_t = MAX_IN_FLIGHT_BYTES
    )]
    pub max_in_flight_bytes: usize,

    /// Compression of produced batches: none, gzip, snappy, lz4 or zstd.
    #[arg(
        long = "kafka-compression",
        env = "SLUICE_KAFKA_COMPRESSION",
        default_value = "none"
    )]
    pub compression: String,
}

/// Default rate limits of every key (a key's own limits override them) and
/// the limit on failed authentication per client IP. 0 turns a limit off.
#[derive(Debug, Clone, Args)]
pub struct RateLimitSettings {
    /// Requests per second per key.
    #[arg(
        long = "rate-limit-requests-per-second",
        env = "SLUICE_RATE_LIMIT_REQUESTS_PER_SECOND",
        default_value_t = REQUESTS_PER_SECOND
    )]
    pub requests_per_second: u32,

    /// Requests a key may send at once above its rate.
    #[arg(
        long = "rate-limit-request-burst",
        env = "SLUICE_RATE_LIMIT_REQUEST_BURST",
        default_value_t = REQUEST_BURST
    )]
    pub request_burst: u32,

    /// Events per second per key.
    #[arg(
        long = "rate-limit-events-per-second",
        env = "SLUICE_RATE_LIMIT_EVENTS_PER_SECOND",
        default_value_t = EVENTS_PER_SECOND
    )]
    pub events_per_second: u32,

    /// Events a key may send at once above its rate (at least one full batch).
    #[arg(
        long = "rate-limit-event-burst",
        env = "SLUICE_RATE_LIMIT_EVENT_BURST",
        default_value_t = EVENT_BURST
    )]
    pub event_burst: u32,

    /// Failed authentications per minute per client IP before it gets 429.
    #[arg(
        long = "rate-limit-failed-auth-per-minute",
        env = "SLUICE_RATE_LIMIT_FAILED_AUTH_PER_MINUTE",
        default_value_t = FAILED_AUTH_PER_MINUTE
    )]
    pub failed_auth_per_minute: u32,
}

impl IngestSettings {
    pub fn produce_timeout(&self) -> Duration {
        Duration::from_millis(self.produce_timeout_ms)
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            max_event_bytes: MAX_EVENT_BYTES,
            max_batch_events: MAX_BATCH_EVENTS,
            max_batch_bytes: MAX_BATCH_BYTES,
            trusted_proxies: Vec::new(),
            cors_origins: vec!["*".to_owned()],
            produce_timeout_ms: PRODUCE_TIMEOUT_MS,
            producer_queue_messages: PRODUCER_QUEUE_MESSAGES,
            max_in_flight_bytes: MAX_IN_FLIGHT_BYTES,
            compression: "none".to_owned(),
        }
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_second: REQUESTS_PER_SECOND,
            request_burst: REQUEST_BURST,
            events_per_second: EVENTS_PER_SECOND,
            event_burst: EVENT_BURST,
            failed_auth_per_minute: FAILED_AUTH_PER_MINUTE,
        }
    }
}
