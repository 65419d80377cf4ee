//! The whole pipeline where every connection is secured, as in production:
//! HTTP -> gateway -> SASL_SSL broker (SCRAM-SHA-512; testkit's
//! SecureBroker) -> processor -> HTTPS ClickHouse 18.16 as a writer user
//! (testkit's SecureClickhouse) -> query API as a `readonly = 1` user; events
//! and metrics read back. Then each ClickHouse setting that cannot work, each
//! ending in a startup error that names it.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use sluice_runtime::clickhouse::{Connection, ensure_schema};
use sluice_runtime::ops::Patience;
use sluice_runtime::secret::Secret;
use sluice_runtime::settings::ClickhouseSettings;
use sluice_testkit::{SecureBroker, SecureClickhouse, TestEnv, eventually};
use tokio_util::sync::CancellationToken;

use common::{key_of, start_gateway, start_processor, start_query_api};

async fn secure_clickhouse() -> SecureClickhouse {
    SecureClickhouse::start_async().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_over_sasl_ssl_and_https_with_least_privilege_users() {
    let broker = SecureBroker::start_async().await;
    let clickhouse = secure_clickhouse().await;
    let mut env = TestEnv::new("secured");
    env.kafka.brokers = broker.brokers();
    env.kafka.security = broker.client_security();
    let key = key_of(&env).await;
    let gateway = start_gateway(&env).await;
    // The query API starts first: its user may not create the tables, so it
    // waits for the processor to.
    env.clickhouse = clickhouse.reader();
    let query = start_query_api(&env).await;
    env.clickhouse = clickhouse.writer();
    let processor = start_processor(&env).await;
    gateway.wait_ready().await;
    processor.wait_ready().await;
    query.wait_ready().await;

    let from = sluice_schemas::time_format::now_ms() - 120_000;
    let events: Vec<Value> = (0..20)
        .map(|n| {
            json!({
                "event_id": format!("secure-{n}"),
                "type": "secure",
                "timestamp": sluice_schemas::time_format::format_rfc3339_ms(from + n * 1_000),
                "user_id": format!("user-{}", n % 4),
                "properties": {"n": n},
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
    for n in 0..20 {
        let id = format!("secure-{n}");
        let event = read
            .iter()
            .find(|event| event["event_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} read back"));
        assert_eq!(event["type"], "secure");
        assert_eq!(event["user_id"], format!("user-{}", n % 4));
        assert_eq!(event["properties"]["n"], n);
    }
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

    // The reader really is read-only: the server refuses its writes.
    let (reader, _) = Connection::open(&clickhouse.reader())
        .unwrap()
        .client(sluice_runtime::clickhouse::ServerFeatures::COMMON_SUBSET);
    let refused = reader
        .query("INSERT INTO processor_checkpoints (consumer_group) VALUES ('x')")
        .execute()
        .await
        .expect_err("a readonly user cannot insert");
    assert!(refused.to_string().contains("Code: 164"), "{refused}");
}

/// The error `settings` give the processor's schema step at startup, within
/// a bound: a setting to fix ends the wait at once, it is not retried.
async fn startup_error(settings: &ClickhouseSettings) -> String {
    startup_error_within(settings, Duration::from_secs(600)).await
}

/// The same, where the processor waits at most `patience`.
async fn startup_error_within(settings: &ClickhouseSettings, patience: Duration) -> String {
    let connection = match Connection::open(settings) {
        Ok(connection) => connection,
        Err(error) => return format!("{error:#}"),
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        ensure_schema(
            &connection,
            Patience::AtMost(patience),
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("a setting that cannot work ends the wait, not a retry loop");
    format!("{:#}", outcome.expect_err("the settings cannot work"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_clickhouse_setting_that_cannot_work_stops_the_service_naming_it() {
    let clickhouse = secure_clickhouse().await;

    let wrong_password = ClickhouseSettings {
        password_file: None,
        password: Some(Secret::new("not-the-password")),
        ..clickhouse.writer()
    };
    let error = startup_error(&wrong_password).await;
    assert!(error.contains("--clickhouse-password"), "{error}");
    assert!(error.contains("sluice_writer"), "{error}");
    assert!(!error.contains("not-the-password") && !error.contains(&clickhouse.writer_password));

    let unknown_user = ClickhouseSettings {
        user: "ghost".into(),
        ..clickhouse.writer()
    };
    let error = startup_error(&unknown_user).await;
    assert!(error.contains("--clickhouse-user"), "{error}");

    let untrusted = ClickhouseSettings {
        ca_file: None,
        ..clickhouse.writer()
    };
    let error = startup_error(&untrusted).await;
    assert!(error.contains("--clickhouse-ca-file"), "{error}");
    assert!(error.contains("certificate"), "{error}");

    // A plain request to the TLS port gets its connection reset, as a
    // restarting server's may be: waited out, with the likely cause named.
    let plain_http_to_https = ClickhouseSettings {
        url: format!("http://localhost:{}", clickhouse.https_port),
        ca_file: None,
        ..clickhouse.writer()
    };
    let error = startup_error_within(&plain_http_to_https, Duration::from_secs(3)).await;
    assert!(
        error.contains("use https:// in --clickhouse-url"),
        "{error}"
    );

    let unknown_scheme = ClickhouseSettings {
        url: format!("clickhouse://localhost:{}", clickhouse.https_port),
        ..clickhouse.writer()
    };
    assert!(
        startup_error(&unknown_scheme)
            .await
            .contains("--clickhouse-url")
    );

    // The processor with the read-only user: told which user may not create
    // the tables.
    let error = startup_error(&clickhouse.reader()).await;
    assert!(error.contains("sluice_reader"), "{error}");
    assert!(error.contains("create"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_stop_at_startup_on_a_wrong_clickhouse_password() {
    let clickhouse = secure_clickhouse().await;
    let mut env = TestEnv::new("ch_wrong_password");
    env.clickhouse = ClickhouseSettings {
        password: Some(Secret::new("not-the-password")),
        ..clickhouse.reader()
    };
    let query = start_query_api(&env).await;
    let error = format!(
        "{:#}",
        query
            .ended(Duration::from_secs(60))
            .await
            .expect_err("the query API stops")
    );
    assert!(error.contains("--clickhouse-password"), "{error}");
    env.clickhouse = ClickhouseSettings {
        password_file: None,
        password: Some(Secret::new("not-the-password")),
        ..clickhouse.writer()
    };
    let processor = start_processor(&env).await;
    let error = format!(
        "{:#}",
        processor
            .ended(Duration::from_secs(60))
            .await
            .expect_err("the processor stops")
    );
    assert!(error.contains("--clickhouse-password"), "{error}");
}
