//! Secrets stay secret: the gateway binary, run against a SASL_SSL broker
//! with a known SASL password and admin token, never shows either in what it
//! prints (every log level), in `--help`, in its startup error, or in what
//! it serves (`/metrics`, `/health/*`, `/openapi.json`, `/docs`, error bodies).

use std::time::Duration;

use serde_json::json;
use sluice_runtime::keys::Scope;
use sluice_testkit::processes::free_port;
use sluice_testkit::{
    Printing, SecureBroker, TestEnv, assert_no_secret, eventually, help_text, served_text,
    startup_failure, wait_until_ready,
};

use crate::common::{gateway_command, project};

const ADMIN_TOKEN: &str = "admin-token-do-not-print-4f9d2c";

fn gateway(
    broker: &SecureBroker,
    env: &TestEnv,
    password: &str,
    port: u16,
) -> tokio::process::Command {
    let mut command = gateway_command(env, &broker.brokers(), port);
    command
        .envs(broker.service_env(password))
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SLUICE_LOG", "trace");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_printed_or_served() {
    let broker = SecureBroker::start_async().await;
    let mut env = TestEnv::new("gw_secrets");
    env.kafka.brokers = broker.brokers();
    env.kafka.security = broker.client_security();
    let key = env.create_key(&project(&env), &[Scope::Ingest]).await;
    let secrets = [broker.password.as_str(), ADMIN_TOKEN];
    let mut seen = help_text(
        env!("CARGO_BIN_EXE_sluice-ingest-gateway"),
        &[
            ("SLUICE_KAFKA_SASL_PASSWORD", &broker.password),
            ("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    assert!(seen.contains("--kafka-sasl-password"));

    let port = free_port();
    let running = Printing::spawn(
        gateway(&broker, &env, &broker.password, port),
        "the gateway binary",
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ready(&base, Duration::from_secs(60)).await;
    let accepted = eventually("an event accepted", Duration::from_secs(30), || {
        let request = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&key)
            .json(&json!({"type": "secret_test"}))
            .send();
        async move { request.await.ok().filter(|r| r.status() == 202) }
    })
    .await;
    seen.push_str(&accepted.text().await.unwrap());
    let paths = [
        "/metrics",
        "/health/ready",
        "/health/live",
        "/openapi.json",
        "/docs",
        "/v1/admin/keys",
        "/nowhere",
    ];
    seen.push_str(&served_text(&base, &paths, None).await);
    let refused = client
        .post(format!("{base}/v1/events"))
        .bearer_auth("not-a-key")
        .json(&json!({"type": "x"}))
        .send()
        .await
        .unwrap();
    seen.push_str(&refused.text().await.unwrap());
    let (_, printed) = running.end().await;
    assert!(
        printed.contains("ingest gateway listening"),
        "the log was read"
    );
    seen.push_str(&printed);

    // A wrong password: the startup error names the settings, not the values.
    let wrong = "wrong-password-do-not-print-77a1";
    let output = startup_failure(
        gateway(&broker, &env, wrong, free_port()),
        "the gateway binary",
    )
    .await;
    assert!(output.contains("--kafka-sasl-username"), "{output}");
    assert!(!output.contains(wrong), "the wrong password was printed");
    seen.push_str(&output);

    assert!(seen.len() > 10_000, "too little was looked at");
    assert_no_secret(&seen, &secrets, "the gateway");
}
