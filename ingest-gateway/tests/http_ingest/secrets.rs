//! Secrets stay secret: the gateway binary, run against a SASL_SSL broker
//! with a known SASL password and admin token, never shows either in what it
//! prints (every log level), in `--help`, in its startup error, or in what
//! it serves (`/metrics`, `/health/*`, `/openapi.json`, `/docs`, error bodies).

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use sluice_runtime::keys::Scope;
use sluice_testkit::secure_broker::SCRAM_USER;
use sluice_testkit::{SecureBroker, TestEnv, eventually};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::common::project;

const ADMIN_TOKEN: &str = "admin-token-do-not-print-4f9d2c";

/// The gateway binary, and what it prints, read as it comes (a full pipe
/// would stop it).
struct Printing {
    child: Child,
    output: tokio::task::JoinHandle<String>,
}

impl Printing {
    /// Everything it printed, once it has ended (killed if it has not).
    async fn end(mut self) -> (bool, String) {
        let _ = self.child.start_kill();
        let status = self.child.wait().await.unwrap();
        (status.success(), self.output.await.unwrap())
    }
}

fn gateway(broker: &SecureBroker, env: &TestEnv, password: &str, port: u16) -> Printing {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-ingest-gateway"))
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_KAFKA_BROKERS", broker.brokers())
        .env("SLUICE_KAFKA_EVENTS_TOPIC", &env.kafka.events_topic)
        .env("SLUICE_KAFKA_DLQ_TOPIC", &env.kafka.dlq_topic)
        .env("SLUICE_KAFKA_KEYS_TOPIC", &env.kafka.keys_topic)
        .env("SLUICE_KAFKA_IDEMPOTENCE", "false")
        .env("SLUICE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
        .env("SLUICE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        .env("SLUICE_KAFKA_SASL_USERNAME", SCRAM_USER)
        .env("SLUICE_KAFKA_SASL_PASSWORD", password)
        .env("SLUICE_KAFKA_SSL_CA_FILE", &broker.ca_file)
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SLUICE_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway binary");
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let output = tokio::spawn(async move {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        out.extend(err);
        String::from_utf8_lossy(&out).into_owned()
    });
    Printing { child, output }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port()
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
    let secrets = [broker.password.clone(), ADMIN_TOKEN.to_owned()];
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
    tokio::time::timeout(Duration::from_secs(90), refused.child.wait())
        .await
        .expect("the gateway stops on a wrong password")
        .unwrap();
    let (succeeded, output) = refused.end().await;
    assert!(!succeeded);
    assert!(output.contains("--kafka-sasl-username"), "{output}");
    assert!(!output.contains(wrong), "the wrong password was printed");
    seen.push_str(&output);

    assert!(seen.len() > 10_000, "too little was looked at");
    for secret in &secrets {
        assert!(
            !seen.contains(secret.as_str()),
            "a secret was printed or served"
        );
    }
}
