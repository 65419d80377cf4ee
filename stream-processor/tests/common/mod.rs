//! What the processor's integration tests share: events, the processor
//! binary started against a test's topics and database, and exact counts.

#![allow(dead_code)] // each test binary uses a part of this module

use std::process::Stdio;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use sluice_runtime::kafka::ensure_topics;
use sluice_runtime::ops::Patience;
use sluice_runtime::settings::{ConfigFile, LogFormat, ProcessSettings, TelemetrySettings};
use sluice_schemas::Event;
use sluice_schemas::avro::encode_event;
use sluice_stream_processor::ProcessorConfig;
use sluice_stream_processor::config::{ProcessorSettings, PropertyKeys};
use sluice_testkit::{Running, spawn_service};
use sluice_testkit::{TestEnv, eventually};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

pub fn event(project: &str, n: usize, timestamp_ms: i64) -> Event {
    Event {
        event_id: format!("evt-{n:06}"),
        project_id: project.to_owned(),
        event_type: ["view", "click", "buy"][n % 3].to_owned(),
        timestamp_ms,
        received_at_ms: sluice_schemas::time_format::now_ms(),
        user_id: Some(format!("user-{}", n % 97)),
        session_id: Some(format!("session-{}", n % 13)),
        source: Some("test".into()),
        duration_ms: Some(n as f64),
        status: Some(["200", "500"][n % 2].to_owned()),
        tags: vec![],
        // `tier` is rolled up (see `start_processor`); every fifth event has none.
        properties: if n.is_multiple_of(5) {
            format!(r#"{{"n":{n}}}"#)
        } else {
            format!(r#"{{"n":{n},"tier":{}}}"#, n % 4)
        },
        client_ip: None,
        user_agent: None,
    }
}

/// The processor in this test process, with `settings` (its consumer group
/// made unique to the test), ready: its topics and tables exist.
pub async fn spawn_processor(env: &TestEnv, settings: ProcessorSettings) -> Running {
    let config = ProcessorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        processor: ProcessorSettings {
            consumer_group: format!("{}_{}", settings.consumer_group, env.id),
            // As `start_processor`: `tier` is rolled up.
            rollup_properties: PropertyKeys(vec!["tier".into()]),
            ..settings
        },
        kafka: env.kafka.clone(),
        clickhouse: env.clickhouse.clone(),
        process: ProcessSettings {
            telemetry: TelemetrySettings {
                log_format: LogFormat::Json,
                log_filter: "error".into(),
                otlp_endpoint: String::new(),
            },
            lifecycle: Default::default(),
            config_file: ConfigFile { config: None },
        },
    };
    let processor = spawn_service(|listener, shutdown| {
        sluice_stream_processor::serve(config, listener, shutdown)
    })
    .await;
    processor.wait_ready().await;
    processor
}

/// Creates the topics and tables, as a processor would at startup.
pub async fn prepare(env: &TestEnv) {
    let kafka = &env.kafka;
    ensure_topics(
        kafka,
        &[&kafka.events_topic, &kafka.dlq_topic, &kafka.live_topic],
        Patience::AtMost(Duration::from_secs(30)),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    env.ensure_schema().await;
}

/// Sends `events` keyed as the gateway keys them, and waits for every ack.
pub async fn produce(env: &TestEnv, events: &[Event]) {
    let producer = env.producer();
    let mut acks = Vec::with_capacity(events.len());
    for event in events {
        let key = event.partition_key();
        let value = encode_event(event);
        let record = FutureRecord::to(&env.kafka.events_topic)
            .key(&key)
            .payload(&value);
        acks.push(
            producer
                .send_result(record)
                .map_err(|(error, _)| error)
                .expect("queued"),
        );
    }
    for ack in acks {
        ack.await.expect("delivery report").expect("broker acks");
    }
}

/// The processor binary, in consumer group `group` of this test, with its
/// health and metrics on a port of its own.
pub fn start_processor(env: &TestEnv, group: &str) -> ProcessorProcess {
    start_processor_with(env, group, &[])
}

/// As [`start_processor`], with more `SLUICE_*` settings.
pub fn start_processor_with(
    env: &TestEnv,
    group: &str,
    settings: &[(&str, &str)],
) -> ProcessorProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice-stream-processor"))
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_KAFKA_BROKERS", &env.kafka.brokers)
        .env("SLUICE_KAFKA_EVENTS_TOPIC", &env.kafka.events_topic)
        .env("SLUICE_KAFKA_DLQ_TOPIC", &env.kafka.dlq_topic)
        .env("SLUICE_KAFKA_LIVE_TOPIC", &env.kafka.live_topic)
        .env(
            "SLUICE_KAFKA_IDEMPOTENCE",
            env.kafka.idempotence.to_string(),
        )
        .env("SLUICE_CLICKHOUSE_URL", &env.clickhouse.url)
        .env("SLUICE_CLICKHOUSE_DATABASE", &env.clickhouse.database)
        .env("SLUICE_CONSUMER_GROUP", format!("{group}_{}", env.id))
        .env("SLUICE_BATCH_MAX_ROWS", "400")
        .env("SLUICE_BATCH_MAX_MS", "150")
        .env(
            "SLUICE_KAFKA_SESSION_TIMEOUT_MS",
            SESSION_TIMEOUT_MS.to_string(),
        )
        .env("SLUICE_REBALANCE_GRACE_MS", REBALANCE_GRACE_MS.to_string())
        .env("SLUICE_STALL_TIMEOUT_MS", STALL_TIMEOUT_MS.to_string())
        .env("SLUICE_ALLOWED_LATENESS_MS", "2000")
        .env("SLUICE_IDLE_TIMEOUT_MS", "1000")
        .env("SLUICE_ROLLUP_PROPERTIES", "tier")
        .env("SLUICE_LOG", "warn")
        .envs(settings.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the processor binary");
    ProcessorProcess { child, port }
}

/// The processor's `--kafka-session-timeout-ms` in these tests.
pub const SESSION_TIMEOUT_MS: u64 = 6_000;
/// The processor's `--rebalance-grace-ms` in these tests.
pub const REBALANCE_GRACE_MS: u64 = 4_000;
/// The processor's `--stall-timeout-ms` in these tests.
pub const STALL_TIMEOUT_MS: u64 = 10_000;

/// A processor binary running as a process of its own.
pub struct ProcessorProcess {
    child: Child,
    port: u16,
}

impl ProcessorProcess {
    /// Sends the signal named `name` (`TERM`, `INT`) with `kill`.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the processor runs").to_string();
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name}");
    }

    /// Its exit code, if it exits within `timeout`.
    pub async fn exit_code_within(&mut self, timeout: Duration) -> Option<Option<i32>> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .map(|status| status.expect("reaped").code())
    }

    /// SIGKILL, as a crash.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reaped");
    }

    /// `/health/ready`: its status, and its body (`null` while it does not answer).
    pub async fn readiness(&self) -> (u16, serde_json::Value) {
        let url = format!("http://127.0.0.1:{}/health/ready", self.port);
        match reqwest::get(&url).await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or_default())
            }
            Err(_) => (0, serde_json::Value::Null),
        }
    }

    /// Waits (up to 60 s) until readiness fails `check`, and returns its cause.
    pub async fn not_ready_because(&self, check: &str) -> String {
        eventually(
            &format!("readiness to fail {check}"),
            Duration::from_secs(60),
            || async {
                let (status, body) = self.readiness().await;
                (status == 503)
                    .then(|| body["causes"][check].as_str().map(str::to_owned))
                    .flatten()
            },
        )
        .await
    }

    /// The value of an unlabelled metric (None while it is not exported).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics_text().await?;
        text.lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .find_map(|value| value.trim().parse().ok())
    }

    /// The sum of a labelled metric over its labels.
    pub async fn metric_sum(&self, name: &str) -> Option<f64> {
        let text = self.metrics_text().await?;
        Some(
            text.lines()
                .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
                .filter_map(|rest| rest.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
                .sum(),
        )
    }

    async fn metrics_text(&self) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        reqwest::get(&url).await.ok()?.text().await.ok()
    }
}

pub const RAW_COUNT: &str = "SELECT count() FROM events FINAL";
pub const ROLLUP_COUNT: &str = "SELECT toUInt64(sum(count)) FROM rollups FINAL";

/// Events per minute and type from raw events, then from rollups: equal when
/// every window and correction is in.
pub const RAW_BY_MINUTE: &str = "SELECT arrayStringConcat(groupArray(line), ',') FROM (SELECT concat(toString(toUInt32(toStartOfMinute(timestamp))), ' ', type, ' ', toString(count())) AS line FROM events FINAL GROUP BY toStartOfMinute(timestamp), type ORDER BY line)";
pub const ROLLUPS_BY_MINUTE: &str = "SELECT arrayStringConcat(groupArray(line), ',') FROM (SELECT concat(toString(toUInt32(minute)), ' ', type, ' ', toString(sum(count))) AS line FROM rollups FINAL GROUP BY minute, type ORDER BY line)";

/// Events per minute and value of the rolled-up `tier`, from raw events and
/// from `property_rollups`.
pub const RAW_BY_TIER: &str = "SELECT arrayStringConcat(groupArray(line), ',') FROM (SELECT concat(toString(toUInt32(toStartOfMinute(timestamp))), ' ', visitParamExtractRaw(properties, 'tier'), ' ', toString(count())) AS line FROM events FINAL GROUP BY toStartOfMinute(timestamp), visitParamExtractRaw(properties, 'tier') ORDER BY line)";
pub const PROPERTY_ROLLUPS_BY_TIER: &str = "SELECT arrayStringConcat(groupArray(line), ',') FROM (SELECT concat(toString(toUInt32(minute)), ' ', property_value, ' ', toString(sum(count))) AS line FROM property_rollups FINAL WHERE property_key = 'tier' GROUP BY minute, property_value ORDER BY line)";
pub const PROPERTY_ROLLUP_COUNT: &str =
    "SELECT toUInt64(sum(count)) FROM property_rollups FINAL WHERE property_key = 'tier'";

pub async fn query_text(env: &TestEnv, sql: &str) -> String {
    env.clickhouse()
        .query(sql)
        .fetch_one::<String>()
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Waits until raw events and rollups both count `expected`, then checks
/// that they agree minute by minute and stay exact.
pub async fn assert_exactly(env: &TestEnv, expected: u64) {
    eventually(
        "raw events and rollups complete",
        Duration::from_secs(120),
        || async move {
            let raw = env.query_u64(RAW_COUNT).await;
            let rolled = env.query_u64(ROLLUP_COUNT).await;
            let by_property = env.query_u64(PROPERTY_ROLLUP_COUNT).await;
            assert!(
                raw <= expected && rolled <= expected && by_property <= expected,
                "raw {raw}, rollups {rolled}, property rollups {by_property}, expected {expected}: double counted"
            );
            (raw == expected && rolled == expected && by_property == expected).then_some(())
        },
    )
    .await;
    assert_eq!(
        query_text(env, RAW_BY_MINUTE).await,
        query_text(env, ROLLUPS_BY_MINUTE).await
    );
    assert_eq!(
        query_text(env, RAW_BY_TIER).await,
        query_text(env, PROPERTY_ROLLUPS_BY_TIER).await
    );
}

/// A snapshot of every query result the tests compare before and after a replay.
pub async fn results(env: &TestEnv) -> Vec<String> {
    let mut all = vec![
        query_text(env, RAW_BY_MINUTE).await,
        query_text(env, ROLLUPS_BY_MINUTE).await,
        query_text(env, PROPERTY_ROLLUPS_BY_TIER).await,
    ];
    for sql in [
        "SELECT arrayStringConcat(groupArray(line), ',') FROM (SELECT concat(toString(toUInt32(minute)), ' ', type, ' ', status, ' ', toString(kafka_partition), ' ', toString(seq), ' ', toString(count), ' ', toString(duration_sum_us), ' ', toString(cityHash64(users, sessions, durations))) AS line FROM rollups FINAL ORDER BY line)",
        "SELECT toString(ifNull(sum(duration_ms), 0)) FROM events FINAL",
    ] {
        all.push(query_text(env, sql).await);
    }
    all
}
