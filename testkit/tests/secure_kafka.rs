//! Kafka settings that cannot work, against a broker that demands
//! SASL/SCRAM-SHA-512 over TLS (testkit's SecureBroker: tansu with
//! `--authentication` behind stunnel, certificates from a throwaway CA): each
//! ends in a startup error or a readiness 503 that names the setting. The
//! pipeline that works over it is in secured_pipeline.rs.

mod common;

use std::time::Duration;

use serde_json::Value;
use sluice_runtime::kafka_security::Secret;
use sluice_runtime::settings::KafkaSecurity;
use sluice_testkit::{SecureBroker, TestEnv, eventually};

use common::start_gateway;

/// The gateway's startup error with `security`.
async fn startup_error(env: &mut TestEnv, security: KafkaSecurity) -> String {
    env.kafka.security = security;
    let gateway = start_gateway(env).await;
    let ended = gateway.ended(Duration::from_secs(60)).await;
    format!("{:#}", ended.expect_err("a misconfigured gateway stops"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_an_untrusted_broker_stops_the_service_naming_the_setting() {
    let broker = SecureBroker::start_async().await;
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
    let broker = SecureBroker::start_async().await;
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
