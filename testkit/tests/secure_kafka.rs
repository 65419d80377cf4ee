//! The whole pipeline against a broker that demands SASL/SCRAM-SHA-512 over
//! TLS (testkit's SecureBroker: tansu with `--authentication` behind
//! stunnel, certificates from a throwaway CA): HTTP -> gateway -> SASL_SSL
//! broker -> processor -> ClickHouse -> query API, events and metrics read
//! back.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use sluice_runtime::kafka_security::Secret;
use sluice_runtime::settings::KafkaSecurity;
use sluice_testkit::{SecureBroker, TestEnv, eventually};

use common::{key_of, start_gateway, start_processor, start_query_api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_over_sasl_ssl_with_scram() {
    let broker = tokio::task::spawn_blocking(SecureBroker::start)
        .await
        .unwrap();
    let mut env = TestEnv::new("sasl_ssl");
    env.kafka.brokers = broker.brokers();
    env.kafka.security = broker.client_security();
    let key = key_of(&env).await;
    let gateway = start_gateway(&env).await;
    gateway.wait_ready().await;
    let processor = start_processor(&env).await;
    processor.wait_ready().await;
    let query = start_query_api(&env).await;
    query.wait_ready().await;

    let from = sluice_schemas::time_format::now_ms() - 120_000;
    let events: Vec<Value> = (0..20)
        .map(|n| {
            json!({
                "event_id": format!("secure-{n}"),
                "type": "secure",
                "timestamp": sluice_schemas::time_format::format_rfc3339_ms(from + n * 1_000),
                "user_id": format!("user-{}", n % 4),
            })
        })
        .collect();
    let client = reqwest::Client::new();
    let answer = client
        .post(gateway.url("/v1/events/batch"))
        .bearer_auth(&key)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202, "{:?}", answer.text().await);

    let url = query.url("/v1/events?type=secure&limit=100");
    let read = eventually(
        "the events through the query API",
        Duration::from_secs(60),
        || {
            let request = client.get(&url).bearer_auth(&key).send();
            async move {
                let body: Value = request.await.ok()?.json().await.ok()?;
                let events = body["events"].as_array()?.clone();
                (events.len() == 20).then_some(events)
            }
        },
    )
    .await;
    assert!(read.iter().all(|event| event["type"] == "secure"));
    let to = sluice_schemas::time_format::now_ms();
    let metrics = client
        .get(query.url(&format!(
            "/v1/metrics?from={from}&to={to}&metrics=count,unique_users&type=secure&exact=true"
        )))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let body: Value = metrics.json().await.unwrap();
    let rows = body["rows"].as_array().unwrap();
    let count: u64 = rows.iter().map(|row| row["count"].as_u64().unwrap()).sum();
    assert_eq!(count, 20, "{body}");
}

/// The gateway's startup error with `security`.
async fn startup_error(env: &mut TestEnv, security: KafkaSecurity) -> String {
    env.kafka.security = security;
    let gateway = start_gateway(env).await;
    let ended = gateway.ended(Duration::from_secs(60)).await;
    format!("{:#}", ended.expect_err("a misconfigured gateway stops"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_an_untrusted_broker_stops_the_service_naming_the_setting() {
    let broker = tokio::task::spawn_blocking(SecureBroker::start)
        .await
        .unwrap();
    let mut env = TestEnv::new("sasl_wrong");
    env.kafka.brokers = broker.brokers();

    let mut wrong_password = broker.client_security();
    wrong_password.sasl_password_file = None;
    wrong_password.sasl_password = Some(Secret::new("not-the-password"));
    let error = startup_error(&mut env, wrong_password).await;
    assert!(error.contains("--kafka-sasl-username"), "{error}");
    assert!(!error.contains("not-the-password") && !error.contains(&broker.password));

    let mut untrusted = broker.client_security();
    untrusted.ssl_ca_file = None;
    let error = startup_error(&mut env, untrusted).await;
    assert!(error.contains("--kafka-ssl-ca-file"), "{error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_against_the_tls_listener_is_not_ready_and_says_why() {
    let broker = tokio::task::spawn_blocking(SecureBroker::start)
        .await
        .unwrap();
    let mut env = TestEnv::new("sasl_plain");
    env.kafka.brokers = broker.brokers();
    let gateway = start_gateway(&env).await;
    let client = reqwest::Client::new();
    let url = gateway.url("/health/ready");
    // librdkafka reports nothing more specific than a timeout here: the TLS
    // listener just drops the connection.
    let cause = eventually(
        "readiness to name the broker",
        Duration::from_secs(60),
        || {
            let request = client.get(&url).send();
            async move {
                let response = request.await.ok()?;
                assert_eq!(response.status(), 503, "ready against a TLS listener");
                let body: Value = response.json().await.ok()?;
                let cause = body["causes"]["kafka"].as_str()?;
                cause.contains("--kafka-brokers").then(|| cause.to_owned())
            }
        },
    )
    .await;
    assert!(cause.contains(&broker.brokers()), "{cause}");
}
