//! Secrets stay secret: the gateway binary, run against a SASL_SSL broker
//! with a known SASL password and admin token, never shows either in what it
//! prints (every log level), in `--help`, in its startup error, or in what
//! it serves (`/metrics`, `/health/*`, `/openapi.json`, `/docs`, error bodies).

use std::time::Duration;

use serde_json::json;
use sluice_runtime::keys::Scope;
use sluice_testkit::processes::free_port;
use sluice_testkit::secure_broker::SCRAM_USER;
use sluice_testkit::{Printing, SecureBroker, TestEnv, assert_no_secret, eventually};

use crate::common::{gateway_command, project};

const ADMIN_TOKEN: &str = "admin-token-do-not-print-4f9d2c";

fn gateway(broker: &SecureBroker, env: &TestEnv, password: &str, port: u16) -> Printing {
    let mut command = gateway_command(env, &broker.brokers(), port);
    command
        .env("SLUICE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
        .env("SLUICE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        .env("SLUICE_KAFKA_SASL_USERNAME", SCRAM_USER)
        .env("SLUICE_KAFKA_SASL_PASSWORD", password)
        .env("SLUICE_KAFKA_SSL_CA_FILE", &broker.ca_file)
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SLUICE_LOG", "trace");
    Printing::spawn(command, "the gateway binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_printed_or_served() {
    let broker = tokio::task::spawn_blocking(SecureBroker::start)
        .await
        .unwrap();
    let mut env = TestEnv::new("gw_secrets");
    env.kafka.brokers = broker.brokers();
    env.kafka.security = broker.client_security();
    let key = env.create_key(&project(&env), &[Scope::Ingest]).await;
    let secrets = [broker.password.as_str(), ADMIN_TOKEN];
    let mut seen = String::new();

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_sluice-ingest-gateway"))
        .arg("--help")
        .env("SLUICE_KAFKA_SASL_PASSWORD", &broker.password)
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    seen.push_str(&String::from_utf8_lossy(&help.stdout));
    assert!(seen.contains("--kafka-sasl-password"));

    let port = free_port();
    let running = gateway(&broker, &env, &broker.password, port);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually("the gateway ready", Duration::from_secs(60), || {
        let request = client.get(format!("{base}/health/ready")).send();
        async move { request.await.ok().filter(|r| r.status() == 200).map(|_| ()) }
    })
    .await;
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
    for path in [
        "/metrics",
        "/health/ready",
        "/health/live",
        "/openapi.json",
        "/docs",
        "/v1/admin/keys",
        "/nowhere",
    ] {
        let answer = client.get(format!("{base}{path}")).send().await.unwrap();
        seen.push_str(&answer.text().await.unwrap());
    }
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
    let mut refused = gateway(&broker, &env, wrong, free_port());
    assert_eq!(
        refused.exited_within(Duration::from_secs(90)).await,
        Some(false),
        "the gateway stops on a wrong password"
    );
    let (_, output) = refused.end().await;
    assert!(output.contains("--kafka-sasl-username"), "{output}");
    assert!(!output.contains(wrong), "the wrong password was printed");
    seen.push_str(&output);

    assert!(seen.len() > 10_000, "too little was looked at");
    assert_no_secret(&seen, &secrets, "the gateway");
}
