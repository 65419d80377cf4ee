//! `sluice-loadgen http ...` drives the ingest gateway; `sluice-loadgen kafka ...`
//! is the bare-producer baseline. `--help` on each lists the options.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use sluice_loadgen::e2e;
use sluice_loadgen::events::EventSpec;
use sluice_loadgen::http::{self, HttpLoad, USER_AGENT};
use sluice_loadgen::kafka::{self, GroupPace, KafkaLoad};
use sluice_loadgen::payloads::{BodyShape, GatewayOrigin, http_bodies, kafka_records};
use sluice_loadgen::stats::{own_cpu_seconds, print_report, round};
use sluice_runtime::kafka_security::KafkaSecurity;
use sluice_schemas::time_format::now_ms;

/// Load generator for Sluice's ingest benchmarks.
#[derive(Debug, Parser)]
#[command(name = "sluice-loadgen", version)]
struct Cli {
    /// Print one JSON object per run instead of the human summary.
    #[arg(long, global = true)]
    json: bool,

    /// Tokio worker threads: the generator's own CPU budget.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,

    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// POST events to the ingest gateway.
    Http(HttpArgs),
    /// Produce the gateway's records straight to Kafka: the ceiling.
    Kafka(Box<KafkaArgs>),
    /// End to end: send events through the gateway at a constant rate and
    /// measure how long after the gateway's ack each one is visible through
    /// the query API; then wait until the query API counts exactly the
    /// acknowledged events (and fail if it counts any other number).
    E2e(E2eArgs),
    /// Stand in for an OTLP/HTTP collector: answer every POST /v1/traces
    /// with 200 and count them, until SIGTERM; then report the counts.
    OtlpSink {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4318")]
        listen: std::net::SocketAddr,
    },
    /// Stand in for a webhook receiver: answer every POST with 200 and
    /// record when each event arrived and, from its `sent_us` property
    /// (`kafka --stamp-send-time`), how long after its send; the report is
    /// served at GET /report and printed on SIGTERM.
    WebhookSink {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Args)]
struct E2eArgs {
    /// Base URL of the ingest gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,

    /// API key with the `ingest` scope.
    #[arg(long, env = "SLUICE_LOADGEN_API_KEY")]
    api_key: String,

    /// Base URL of the query API.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    query_url: String,

    /// API key with the `read` scope for the query API (default: --api-key).
    #[arg(long, env = "SLUICE_LOADGEN_READ_KEY")]
    read_key: Option<String>,

    /// Events per second.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,

    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,

    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// How often the query API is asked which probes are visible, in milliseconds.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,

    /// Seconds to wait after sending for the last probes, and again for the
    /// exact count, before failing.
    #[arg(long, default_value_t = 60.0)]
    settle: f64,

    #[command(flatten)]
    events: EventArgs,
}

#[derive(Debug, Args)]
struct EventArgs {
    /// Size of one event as compact JSON, in bytes (padded through `properties.pad`).
    #[arg(long, default_value_t = 300)]
    event_bytes: usize,

    /// Seed of the event stream: the same seed sends the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Distinct users in the events.
    #[arg(long, default_value_t = 10_000)]
    users: u64,

    /// Distinct events pre-built and cycled through (ids stay unique).
    #[arg(long, default_value_t = 10_000)]
    distinct_events: usize,
}

impl EventArgs {
    fn spec(&self) -> EventSpec {
        EventSpec {
            seed: self.seed,
            event_bytes: self.event_bytes,
            users: self.users.max(1),
            now_ms: now_ms(),
            spread_ms: 5 * 60 * 1000,
            stamp_send_time: false,
        }
    }
}

#[derive(Debug, Args)]
struct HttpArgs {
    /// Base URL of the ingest gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,

    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "SLUICE_LOADGEN_API_KEY")]
    api_key: String,

    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,

    /// POST one event object per request to /v1/events instead of
    /// `{"events":[...]}` to /v1/events/batch (needs --batch 1).
    #[arg(long)]
    single_event: bool,

    /// Request path; the default follows --single-event.
    #[arg(long)]
    path: Option<String>,

    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Unmeasured seconds before, to open connections and warm up.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,

    /// Concurrent connections (at most this many requests in flight).
    #[arg(long, default_value_t = 16)]
    connections: usize,

    /// Open loop: send at this many events per second and measure latency from
    /// each request's due time. Without it: closed loop, as fast as answers come.
    #[arg(long)]
    rate: Option<f64>,

    /// Give up on a request after this many milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,

    /// Send a W3C `traceparent` header with every request.
    #[arg(long)]
    traceparent: bool,

    #[command(flatten)]
    events: EventArgs,
}

#[derive(Debug, Args)]
struct KafkaArgs {
    /// Bootstrap brokers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,

    /// Topic to produce to.
    #[arg(long, default_value = "bench.bare")]
    topic: String,

    /// Partitions when the topic is created (the gateway's default is 4).
    #[arg(long, default_value_t = 4)]
    partitions: i32,

    /// Do not create the topic; it must exist.
    #[arg(long)]
    no_create_topic: bool,

    /// Measured records to send.
    #[arg(
        long,
        conflicts_with = "duration",
        required_unless_present = "duration"
    )]
    count: Option<u64>,

    /// Measured seconds to send for.
    #[arg(long)]
    duration: Option<f64>,

    /// Unmeasured records sent and acknowledged first.
    #[arg(long, default_value_t = 10_000)]
    warmup_count: u64,

    /// Project the records belong to, as the gateway takes it from the API key.
    #[arg(long, default_value = "bench")]
    project: String,

    /// `linger.ms`, as the gateway sets it.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,

    /// `compression.type`, as the gateway's --kafka-compression.
    #[arg(long, default_value = "none")]
    compression: String,

    /// `message.timeout.ms`, as the gateway's --produce-timeout-ms.
    #[arg(long, default_value_t = 10_000)]
    message_timeout_ms: u64,

    /// TLS and SASL towards the broker: the services' flags and `SLUICE_*`
    /// variables (a password from a file or the environment, never shown).
    #[command(flatten)]
    security: KafkaSecurity,

    /// Idempotent producing (`true` or `false`), as the gateway's
    /// --kafka-idempotence.
    #[arg(
        long = "kafka-idempotence",
        env = "SLUICE_KAFKA_IDEMPOTENCE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    idempotence: bool,

    /// Extra librdkafka properties, `key=value` (repeatable); they win over
    /// the settings above.
    #[arg(long = "property")]
    properties: Vec<String>,

    /// Open loop: send at this many records per second, in groups of
    /// --group due on a fixed schedule, and report each group's latency from
    /// its due time to its last ack (the floor for a gateway's request
    /// latency). Without it: as fast as librdkafka takes them.
    #[arg(long)]
    rate: Option<f64>,

    /// Records per group in the open loop (one HTTP request's worth).
    #[arg(long, default_value_t = 100, requires = "rate")]
    group: usize,

    /// Give every event a `sent_us` property set to the time it is handed to
    /// the producer (Unix µs), for `webhook-sink` to measure latency from;
    /// warm-up records carry zero (not measured).
    #[arg(long)]
    stamp_send_time: bool,

    #[command(flatten)]
    events: EventArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let cpu_before = own_cpu_seconds();
    let mut report = match cli.mode {
        Mode::Http(args) => runtime.block_on(run_http(args))?,
        Mode::Kafka(args) => run_kafka(&runtime, *args)?,
        Mode::E2e(args) => runtime.block_on(e2e::run(e2e::E2eLoad {
            url: args.url,
            read_key: args.read_key.unwrap_or_else(|| args.api_key.clone()),
            api_key: args.api_key,
            query_url: args.query_url,
            rate: args.rate,
            batch: args.batch.max(1),
            duration: Duration::from_secs_f64(args.duration),
            poll: Duration::from_millis(args.poll_ms.max(1)),
            settle: Duration::from_secs_f64(args.settle.max(0.0)),
            spec: args.events.spec(),
        }))?,
        Mode::OtlpSink { listen } => runtime.block_on(sluice_loadgen::otlp_sink::run(listen))?,
        Mode::WebhookSink { listen } => {
            runtime.block_on(sluice_loadgen::webhook_sink::run(listen))?
        }
    };
    // Includes building the payloads: an upper bound on the generator's own cost.
    if let (Some(before), Some(after)) = (cpu_before, own_cpu_seconds()) {
        report["loadgen_cpu_s"] = json!(round(after - before, 2));
    }
    report["threads"] = json!(cli.threads);
    print_report(&report, cli.json);
    Ok(())
}

async fn run_http(args: HttpArgs) -> anyhow::Result<serde_json::Value> {
    if args.batch == 0 || args.connections == 0 {
        bail!("--batch and --connections must be at least 1");
    }
    if args.single_event && args.batch != 1 {
        bail!("--single-event sends one event per request: use --batch 1");
    }
    let (shape, default_path) = if args.single_event {
        (BodyShape::Single, "/v1/events")
    } else {
        (BodyShape::Batch, "/v1/events/batch")
    };
    let path = args.path.as_deref().unwrap_or(default_path);
    let load = HttpLoad {
        url: format!("{}{path}", args.url.trim_end_matches('/')),
        api_key: args.api_key,
        batch: args.batch,
        connections: args.connections,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        rate: args.rate,
        timeout: Duration::from_millis(args.timeout_ms),
        traceparent: args.traceparent,
    };
    let (bodies, event_bytes) = http_bodies(
        &args.events.spec(),
        args.batch,
        shape,
        args.events.distinct_events,
    );
    let outcome = http::run(&load, Arc::new(bodies)).await?;
    Ok(http::report(&load, &outcome, event_bytes))
}

fn run_kafka(
    runtime: &tokio::runtime::Runtime,
    args: KafkaArgs,
) -> anyhow::Result<serde_json::Value> {
    let load = KafkaLoad {
        brokers: args.brokers,
        topic: args.topic,
        partitions: args.partitions,
        create_topic: !args.no_create_topic,
        count: args.count,
        duration: args.duration.map(Duration::from_secs_f64),
        warmup_count: args.warmup_count,
        linger_ms: args.linger_ms,
        compression: args.compression,
        message_timeout_ms: args.message_timeout_ms,
        security: args.security,
        idempotence: args.idempotence,
        properties: args.properties,
        pace: args.rate.map(|rate| GroupPace {
            rate,
            group: args.group.max(1),
        }),
    };
    let origin = GatewayOrigin {
        project_id: args.project,
        client_ip: "127.0.0.1".into(),
        user_agent: USER_AGENT.into(),
    };
    let spec = EventSpec {
        stamp_send_time: args.stamp_send_time,
        ..args.events.spec()
    };
    let (records, key_bytes, value_bytes) =
        kafka_records(&spec, &origin, args.events.distinct_events)?;
    if load.create_topic {
        runtime.block_on(kafka::create_topic(&load))?;
    }
    let outcome = kafka::produce(&load, &records)?;
    Ok(kafka::report(&load, &outcome, key_bytes, value_bytes))
}
