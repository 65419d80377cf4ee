//! Recovery times with the default settings, for docs/failure-modes.md: the
//! tests hold the same recoveries to bounds with shorter timeouts; this
//! measures them as a user would meet them.
//!
//! ```sh
//! cargo build --bins && cargo run -p sluice-testkit --example recovery_drill
//! ```
//!
//! Against a private tansu (sqlite) and the local ClickHouse, with processor
//! binaries (from the same target directory) in processes of their own:
//! 1. a processor SIGKILLed and started again 5 s later (within its 10 s
//!    session): from the crash to new events in ClickHouse;
//! 2. one of two processors SIGKILLed: from its death to every event sent
//!    after it in ClickHouse;
//! 3. the broker stopped for 5 s under a steady send to a gateway: from the
//!    broker's return to the gateway's first 202.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use serde_json::json;
use sluice_ingest_gateway::GatewayConfig;
use sluice_ingest_gateway::config::{IngestSettings, RateLimitSettings};
use sluice_runtime::kafka::ensure_topics;
use sluice_runtime::keys::Scope;
use sluice_runtime::ops::Patience;
use sluice_runtime::settings::{
    ApiSettings, ConfigFile, LogFormat, ProcessSettings, TelemetrySettings,
};
use sluice_schemas::Event;
use sluice_schemas::avro::encode_event;
use sluice_schemas::time_format::now_ms;
use sluice_testkit::{PrivateBroker, TestEnv, spawn_service};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let broker = PrivateBroker::start();
    println!(
        "crash and restart within the session: {:.1} s",
        crash_and_restart(&broker).await?
    );
    println!("death of one of two: {:.1} s", death_of_one(&broker).await?);
    println!(
        "broker return to the first 202: {:.2} s",
        broker_return(&broker).await?
    );
    Ok(())
}

fn processor_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/debug/examples/recovery_drill -> target/debug/sluice-stream-processor
    exe.parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("sluice-stream-processor"))
        .filter(|path| path.exists())
        .expect("build the binaries first: cargo build --bins")
}

/// A processor with every setting at its default but where its topics and
/// database are.
fn start_processor(env: &TestEnv) -> Child {
    Command::new(processor_binary())
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env("SLUICE_KAFKA_BROKERS", &env.kafka.brokers)
        .env("SLUICE_KAFKA_EVENTS_TOPIC", &env.kafka.events_topic)
        .env("SLUICE_KAFKA_DLQ_TOPIC", &env.kafka.dlq_topic)
        .env("SLUICE_KAFKA_LIVE_TOPIC", &env.kafka.live_topic)
        .env("SLUICE_KAFKA_IDEMPOTENCE", "false")
        .env("SLUICE_CLICKHOUSE_URL", &env.clickhouse.url)
        .env("SLUICE_CLICKHOUSE_DATABASE", &env.clickhouse.database)
        .env("SLUICE_CONSUMER_GROUP", format!("drill_{}", env.id))
        .env("SLUICE_LOG", "error")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the processor binary")
}

async fn kill(mut child: Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

async fn prepare(broker: &PrivateBroker, name: &str) -> anyhow::Result<TestEnv> {
    let mut env = TestEnv::new(name);
    env.kafka.brokers = broker.brokers();
    let kafka = &env.kafka;
    let topics = [
        kafka.events_topic.as_str(),
        kafka.dlq_topic.as_str(),
        kafka.live_topic.as_str(),
    ];
    let wait = Patience::AtMost(Duration::from_secs(30));
    ensure_topics(kafka, &topics, wait, &CancellationToken::new()).await?;
    env.ensure_schema().await;
    Ok(env)
}

/// Sends `count` events numbered from `first` straight to the topic.
async fn produce(env: &TestEnv, first: usize, count: usize) {
    let producer = env.producer();
    for n in first..first + count {
        let event = Event::minimal(format!("drill-{n}"), "drill", "drill", now_ms(), now_ms());
        let (key, value) = (event.partition_key(), encode_event(&event));
        let record = FutureRecord::to(&env.kafka.events_topic)
            .key(&key)
            .payload(&value);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)
            .expect("the broker acks");
    }
}

/// Waits until ClickHouse holds `expected` events; how long it took from `since`.
async fn written(env: &TestEnv, expected: u64, since: Instant) -> f64 {
    loop {
        if env.query_u64("SELECT count() FROM events FINAL").await >= expected {
            return since.elapsed().as_secs_f64();
        }
        assert!(
            since.elapsed() < Duration::from_secs(300),
            "no recovery in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn crash_and_restart(broker: &PrivateBroker) -> anyhow::Result<f64> {
    let env = prepare(broker, "drill_restart").await?;
    let first = start_processor(&env);
    produce(&env, 0, 500).await;
    written(&env, 500, Instant::now()).await;
    kill(first).await;
    let crashed = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = start_processor(&env);
    produce(&env, 500, 500).await;
    let took = written(&env, 1_000, crashed).await;
    kill(second).await;
    Ok(took)
}

async fn death_of_one(broker: &PrivateBroker) -> anyhow::Result<f64> {
    let env = prepare(broker, "drill_death").await?;
    let first = start_processor(&env);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = start_processor(&env);
    // Both hold partitions once the second has joined and the group settled.
    tokio::time::sleep(Duration::from_secs(15)).await;
    produce(&env, 0, 500).await;
    written(&env, 500, Instant::now()).await;
    kill(first).await;
    let died = Instant::now();
    produce(&env, 500, 500).await;
    let took = written(&env, 1_000, died).await;
    kill(second).await;
    Ok(took)
}

async fn broker_return(broker: &PrivateBroker) -> anyhow::Result<f64> {
    let env = prepare(broker, "drill_broker").await?;
    let key = env.create_key("drill", &[Scope::Ingest]).await;
    let config = GatewayConfig {
        listen: "127.0.0.1:0".parse()?,
        api: ApiSettings {
            admin_token: String::new(),
            session_secret: None,
            session_secret_file: None,
            session_secret_previous: None,
            request_timeout_ms: 30_000,
        },
        ingest: IngestSettings::default(),
        rate_limits: RateLimitSettings::default(),
        kafka: env.kafka.clone(),
        process: ProcessSettings {
            telemetry: TelemetrySettings {
                log_format: LogFormat::Text,
                log_filter: "error".into(),
                otlp_endpoint: String::new(),
            },
            lifecycle: Default::default(),
            config_file: ConfigFile { config: None },
        },
    };
    let gateway = spawn_service(|listener, shutdown| {
        sluice_ingest_gateway::serve(config, listener, shutdown)
    })
    .await;
    gateway.wait_ready().await;
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(gateway.url("/v1/events"))
            .bearer_auth(&key)
            .json(&json!({"type": "drill"}))
            .send()
    };
    for _ in 0..20 {
        assert_eq!(send().await?.status(), 202);
    }
    broker.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    broker.restart();
    let returned = Instant::now();
    loop {
        if send().await.is_ok_and(|response| response.status() == 202) {
            return Ok(returned.elapsed().as_secs_f64());
        }
        assert!(
            returned.elapsed() < Duration::from_secs(120),
            "no 202 in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
