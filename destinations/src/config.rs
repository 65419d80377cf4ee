//! The service's settings; `sluice-destinations --help` lists them all.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};
use ipnet::IpNet;
use sluice_runtime::settings::{ApiSettings, ClickhouseSettings, KafkaSettings, ProcessSettings};

use crate::backoff::Backoff;

/// Sluice destinations: sends the events that webhook rules match to the
/// webhooks, signed, retried and isolated per destination.
#[derive(Debug, Clone, Parser)]
#[command(name = "sluice-destinations", version)]
pub struct DestinationsConfig {
    /// Address of the management API, health and metrics endpoints.
    #[arg(
        long = "listen",
        env = "SLUICE_LISTEN",
        default_value = "127.0.0.1:8083"
    )]
    pub listen: SocketAddr,

    #[command(flatten, next_help_heading = "API")]
    pub api: ApiSettings,

    #[command(flatten, next_help_heading = "Destinations")]
    pub destinations: DestinationSettings,

    #[command(flatten, next_help_heading = "Kafka")]
    pub kafka: KafkaSettings,

    #[command(flatten, next_help_heading = "ClickHouse")]
    pub clickhouse: ClickhouseSettings,

    #[command(flatten)]
    pub process: ProcessSettings,
}

/// Topics, limits and the retry schedule.
#[derive(Debug, Clone, Args)]
pub struct DestinationSettings {
    /// Topic that holds the webhooks (one partition, compacted); every
    /// instance reads it at startup and tails it.
    #[arg(
        long = "kafka-webhooks-topic",
        env = "SLUICE_KAFKA_WEBHOOKS_TOPIC",
        default_value = "sluice.webhooks"
    )]
    pub webhooks_topic: String,

    /// Topic of deliveries waiting for their next attempt: a failed attempt,
    /// a destination whose queue is full or whose circuit is open, a redelivery.
    #[arg(
        long = "kafka-retry-topic",
        env = "SLUICE_KAFKA_RETRY_TOPIC",
        default_value = "sluice.deliveries.retry"
    )]
    pub retry_topic: String,

    /// Topic of deliveries that failed their last attempt or were refused (4xx).
    #[arg(
        long = "kafka-dead-letter-topic",
        env = "SLUICE_KAFKA_DEAD_LETTER_TOPIC",
        default_value = "sluice.deliveries.dlq"
    )]
    pub dead_letter_topic: String,

    /// Kafka consumer group on the events topic; instances in one group
    /// share its partitions. The retry topic is read by this group with
    /// `-retries` appended.
    #[arg(
        long = "consumer-group",
        env = "SLUICE_CONSUMER_GROUP",
        default_value = "sluice-destinations"
    )]
    pub consumer_group: String,

    /// Address ranges that webhooks may point at although they are private,
    /// loopback or link-local, comma-separated CIDR (e.g. `127.0.0.0/8`).
    /// Empty: only public addresses.
    #[arg(
        long = "allow-private-targets",
        env = "SLUICE_ALLOW_PRIVATE_TARGETS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub allow_private_targets: Vec<String>,

    /// Deliveries queued in memory per destination (a batch counts its
    /// events); more go to the retry topic, so a dead or slow endpoint
    /// never holds more than this.
    #[arg(
        long = "queue-capacity",
        env = "SLUICE_QUEUE_CAPACITY",
        default_value_t = 1_000
    )]
    pub queue_capacity: usize,

    /// Requests in flight at once per destination.
    #[arg(
        long = "destination-concurrency",
        env = "SLUICE_DESTINATION_CONCURRENCY",
        default_value_t = 8
    )]
    pub concurrency: usize,

    /// Deliveries read from the retry topic and held until they are due (a
    /// batch counts its events); while this many wait, the retry topic is
    /// not read further.
    #[arg(
        long = "max-scheduled-retries",
        env = "SLUICE_MAX_SCHEDULED_RETRIES",
        default_value_t = 10_000
    )]
    pub max_scheduled_retries: usize,

    /// A webhook's request time limit when it sets none, in milliseconds.
    #[arg(
        long = "default-timeout-ms",
        env = "SLUICE_DEFAULT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub default_timeout_ms: u64,

    /// A webhook's attempts when it sets none.
    #[arg(
        long = "default-max-attempts",
        env = "SLUICE_DEFAULT_MAX_ATTEMPTS",
        default_value_t = 8
    )]
    pub default_max_attempts: u32,

    /// The wait before the second attempt, in milliseconds; it doubles per
    /// attempt, with jitter, up to --backoff-max-ms.
    #[arg(
        long = "backoff-base-ms",
        env = "SLUICE_BACKOFF_BASE_MS",
        default_value_t = 1_000
    )]
    pub backoff_base_ms: u64,

    /// The longest wait between attempts (and the most a `Retry-After` is
    /// honoured for), in milliseconds.
    #[arg(
        long = "backoff-max-ms",
        env = "SLUICE_BACKOFF_MAX_MS",
        default_value_t = 600_000
    )]
    pub backoff_max_ms: u64,

    /// Failed attempts in a row that open a destination's circuit.
    #[arg(
        long = "breaker-threshold",
        env = "SLUICE_BREAKER_THRESHOLD",
        default_value_t = 5
    )]
    pub breaker_threshold: u32,

    /// How long an open circuit waits before one trial attempt, in
    /// milliseconds; it doubles with each failed trial, up to
    /// --breaker-pause-max-ms, and starts over once a trial succeeds.
    #[arg(
        long = "breaker-pause-ms",
        env = "SLUICE_BREAKER_PAUSE_MS",
        default_value_t = 30_000
    )]
    pub breaker_pause_ms: u64,

    /// The longest pause of an open circuit, in milliseconds: how late an
    /// endpoint's return may be noticed at most. Longer pauses rewrite a
    /// dead endpoint's backlog to the retry topic less often.
    #[arg(
        long = "breaker-pause-max-ms",
        env = "SLUICE_BREAKER_PAUSE_MAX_MS",
        default_value_t = 120_000
    )]
    pub breaker_pause_max_ms: u64,

    /// How often settled offsets are committed, in milliseconds. With the
    /// request time limit, it bounds the redelivery window after a crash.
    #[arg(
        long = "commit-interval-ms",
        env = "SLUICE_COMMIT_INTERVAL_MS",
        default_value_t = 1_000
    )]
    pub commit_interval_ms: u64,

    /// A partition that this instance does not hold, with messages waiting
    /// and the group's committed offset still this long, is taken to be a
    /// dead instance's: this instance leaves the group and joins again, so
    /// that the broker assigns it afresh (tansu leaves a dead member's
    /// partitions assigned to it). On the retry topic the limit is this plus
    /// --backoff-max-ms. In milliseconds.
    #[arg(
        long = "stall-timeout-ms",
        env = "SLUICE_STALL_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub stall_timeout_ms: u64,
}

impl DestinationSettings {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.backoff_base_ms),
            max: Duration::from_millis(self.backoff_max_ms),
        }
    }

    /// The allowed private ranges, or the setting's error.
    pub fn allowed_ranges(&self) -> anyhow::Result<Vec<IpNet>> {
        self.allow_private_targets
            .iter()
            .map(|range| range.trim())
            .filter(|range| !range.is_empty())
            .map(|range| {
                range.parse::<IpNet>().map_err(|_| {
                    anyhow::anyhow!(
                        "--allow-private-targets: {range:?} is not CIDR (e.g. 127.0.0.0/8)"
                    )
                })
            })
            .collect()
    }
}
