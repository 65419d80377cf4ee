//! Secrets stay secret: the query API binary, run against a SASL_SSL broker
//! and an HTTPS ClickHouse as its read-only user, with known passwords and
//! admin token given through the environment, never shows them in what it
//! prints (log level trace), in `--help`, in its startup error, or in what
//! it serves (`/metrics`, `/health/*`, `/openapi.json`, `/docs`, answers and
//! error bodies).

use std::time::Duration;

use sluice_runtime::keys::Scope;
use sluice_testkit::processes::free_port;
use sluice_testkit::{
    Printing, SecureBroker, SecureClickhouse, TestEnv, assert_no_secret, eventually, help_text,
    served_text, startup_failure, wait_until_ready,
};
use tokio::process::Command;

use crate::common::project;

const ADMIN_TOKEN: &str = "admin-token-do-not-print-91be07";
const SESSION_SECRET: &str = "session-secret-do-not-print-5c1e9a77b2";
const PASSWORD: &str = "user-password-do-not-print-8e2f";

fn query_api(
    env: &TestEnv,
    broker: &SecureBroker,
    clickhouse: &SecureClickhouse,
    reader_password: &str,
    port: u16,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice-query-api"));
    command
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
        .envs(broker.service_env(&broker.password))
        .env("SLUICE_KAFKA_KEYS_TOPIC", &env.kafka.keys_topic)
        .env("SLUICE_KAFKA_ACCESS_TOPIC", &env.kafka.access_topic)
        .env("SLUICE_KAFKA_LIVE_TOPIC", &env.kafka.live_topic)
        .env("SLUICE_CLICKHOUSE_URL", clickhouse.url())
        .env("SLUICE_CLICKHOUSE_DATABASE", &env.clickhouse.database)
        .env(
            "SLUICE_CLICKHOUSE_USER",
            sluice_testkit::secure_clickhouse::READER,
        )
        .env("SLUICE_CLICKHOUSE_PASSWORD", reader_password)
        .env("SLUICE_CLICKHOUSE_CA_FILE", &clickhouse.ca_file)
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SLUICE_SESSION_SECRET", SESSION_SECRET)
        .env("SLUICE_LOG", "trace");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_printed_or_served() {
    let broker = SecureBroker::start_async().await;
    let clickhouse = SecureClickhouse::start_async().await;
    let mut env = TestEnv::new("query_secrets");
    env.kafka.brokers = broker.brokers();
    env.kafka.security = broker.client_security();
    // The tables, as the processor (the writer) creates them.
    env.clickhouse = clickhouse.writer();
    env.ensure_schema().await;
    let key = env
        .create_key(&project(&env, "secrets"), &[Scope::Read])
        .await;
    let secrets = [
        broker.password.as_str(),
        clickhouse.reader_password.as_str(),
        ADMIN_TOKEN,
        SESSION_SECRET,
        PASSWORD,
    ];
    let binary = env!("CARGO_BIN_EXE_sluice-query-api");
    let mut seen = help_text(
        binary,
        &[
            ("SLUICE_KAFKA_SASL_PASSWORD", &broker.password),
            ("SLUICE_CLICKHOUSE_PASSWORD", &clickhouse.reader_password),
            ("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SLUICE_SESSION_SECRET", SESSION_SECRET),
        ],
    );
    assert!(seen.contains("--clickhouse-ca-file"), "{seen}");

    let port = free_port();
    let running = Printing::spawn(
        query_api(
            &env,
            &broker,
            &clickhouse,
            &clickhouse.reader_password,
            port,
        ),
        "the query API binary",
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ready(&base, Duration::from_secs(90)).await;
    let client = reqwest::Client::new();
    let answered = eventually("events answered", Duration::from_secs(30), || {
        let request = client
            .get(format!("{base}/v1/events?limit=5"))
            .bearer_auth(&key)
            .send();
        async move { request.await.ok().filter(|r| r.status() == 200) }
    })
    .await;
    seen.push_str(&answered.text().await.unwrap());
    // A person signs in: neither their password nor their tokens may reach
    // the log (the tokens are theirs to see, in the answer only).
    let user = serde_json::json!({"email": "secret@example.com", "password": PASSWORD,
        "roles": [{"project_id": project(&env, "secrets"), "role": "viewer"}]});
    let created = client
        .post(format!("{base}/v1/admin/users"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    seen.push_str(&created.text().await.unwrap());
    let signed_in: serde_json::Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": "secret@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = signed_in["access_token"].as_str().unwrap().to_owned();
    let refresh = signed_in["refresh_token"].as_str().unwrap().to_owned();
    let wrong_password = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": "secret@example.com", "password": "wrong-pw-do-not-print-77"}))
        .send()
        .await
        .unwrap();
    seen.push_str(&wrong_password.text().await.unwrap());
    seen.push_str(
        &served_text(
            &base,
            &["/v1/auth/me", "/v1/events?limit=1"],
            Some(&session),
        )
        .await,
    );
    let paths = [
        "/metrics",
        "/health/ready",
        "/health/live",
        "/openapi.json",
        "/docs",
        "/v1/metrics?from=x",
        "/v1/admin/keys",
        "/nowhere",
    ];
    seen.push_str(&served_text(&base, &paths, Some(&key)).await);
    let (_, printed) = running.end().await;
    assert!(printed.contains("query API listening"), "the log was read");
    assert!(printed.contains("signed in"), "the sign-in was logged");
    assert_no_secret(
        &printed,
        &[
            session.as_str(),
            refresh.as_str(),
            "wrong-pw-do-not-print-77",
        ],
        "the query API's log",
    );
    seen.push_str(&printed);

    // A wrong ClickHouse password: the startup error names the settings,
    // not the values.
    let wrong = "wrong-password-do-not-print-0d3a";
    let output = startup_failure(
        query_api(&env, &broker, &clickhouse, wrong, free_port()),
        "the query API binary",
    )
    .await;
    assert!(output.contains("--clickhouse-password"), "{output}");
    seen.push_str(&output);

    assert!(seen.len() > 10_000, "too little was looked at");
    assert_no_secret(&seen, &secrets, "the query API");
    assert_no_secret(&seen, &[wrong], "the query API");
}
