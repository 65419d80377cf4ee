//! Secrets stay secret: the processor binary, run against a SASL_SSL broker
//! and an HTTPS ClickHouse with known passwords given through the
//! environment, never shows them in what it prints (log level trace),
//! in `--help`, in its startup error, or in what it serves (`/metrics`,
//! `/health/*`).

mod common;

use std::time::Duration;

use sluice_runtime::clickhouse::{Connection, ServerFeatures};
use sluice_testkit::processes::free_port;
use sluice_testkit::{
    Printing, SecureBroker, SecureClickhouse, TestEnv, assert_no_secret, eventually, help_text,
    served_text, startup_failure, wait_until_ready,
};
use tokio::process::Command;

use common::{event, prepare, produce};

fn processor(
    env: &TestEnv,
    broker: &SecureBroker,
    clickhouse_password: &str,
    port: u16,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice-stream-processor"));
    command
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
        .envs(broker.service_env(&broker.password))
        .env("SLUICE_KAFKA_EVENTS_TOPIC", &env.kafka.events_topic)
        .env("SLUICE_KAFKA_DLQ_TOPIC", &env.kafka.dlq_topic)
        .env("SLUICE_KAFKA_LIVE_TOPIC", &env.kafka.live_topic)
        .env("SLUICE_KAFKA_IDEMPOTENCE", "false")
        .env("SLUICE_CLICKHOUSE_URL", &env.clickhouse.url)
        .env("SLUICE_CLICKHOUSE_DATABASE", &env.clickhouse.database)
        .env("SLUICE_CLICKHOUSE_USER", &env.clickhouse.user)
        .env("SLUICE_CLICKHOUSE_PASSWORD", clickhouse_password)
        .env(
            "SLUICE_CLICKHOUSE_CA_FILE",
            env.clickhouse.ca_file.as_ref().unwrap(),
        )
        .env("SLUICE_CONSUMER_GROUP", format!("group_{}", env.id))
        .env("SLUICE_BATCH_MAX_MS", "150")
        .env("SLUICE_LOG", "trace");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_printed_or_served() {
    let broker = SecureBroker::start_async().await;
    let clickhouse = SecureClickhouse::start_async().await;
    let mut env = TestEnv::new("proc_secrets");
    env.kafka.brokers = broker.brokers();
    env.kafka.security = broker.client_security();
    env.clickhouse = clickhouse.writer();
    prepare(&env).await;
    let secrets = [
        broker.password.as_str(),
        clickhouse.writer_password.as_str(),
    ];
    let mut seen = help_text(
        env!("CARGO_BIN_EXE_sluice-stream-processor"),
        &[
            ("SLUICE_KAFKA_SASL_PASSWORD", &broker.password),
            ("SLUICE_CLICKHOUSE_PASSWORD", &clickhouse.writer_password),
        ],
    );
    assert!(seen.contains("--clickhouse-password-file"), "{seen}");

    let port = free_port();
    let running = Printing::spawn(
        processor(&env, &broker, &clickhouse.writer_password, port),
        "the processor binary",
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ready(&base, Duration::from_secs(90)).await;
    let now = sluice_schemas::time_format::now_ms();
    let events: Vec<_> = (0..10).map(|n| event("secrets", n, now - 1_000)).collect();
    produce(&env, &events).await;
    let (stored, _) = Connection::open(&clickhouse.writer())
        .unwrap()
        .client(ServerFeatures::COMMON_SUBSET);
    eventually("the events stored", Duration::from_secs(60), || {
        let count = stored
            .query("SELECT count() FROM events FINAL")
            .fetch_one::<u64>();
        async move { (count.await.ok()? == 10).then_some(()) }
    })
    .await;
    let paths = ["/metrics", "/health/ready", "/health/live", "/nowhere"];
    seen.push_str(&served_text(&base, &paths, None).await);
    let (_, printed) = running.end().await;
    assert!(
        printed.contains("stream processor running"),
        "the log was read"
    );
    seen.push_str(&printed);

    // A wrong ClickHouse password: the startup error names the settings,
    // not the values.
    let wrong = "wrong-password-do-not-print-5c1e";
    let output = startup_failure(
        processor(&env, &broker, wrong, free_port()),
        "the processor binary",
    )
    .await;
    assert!(output.contains("--clickhouse-password"), "{output}");
    seen.push_str(&output);

    assert!(seen.len() > 10_000, "too little was looked at");
    assert_no_secret(&seen, &secrets, "the processor");
    assert_no_secret(&seen, &[wrong], "the processor");
}
