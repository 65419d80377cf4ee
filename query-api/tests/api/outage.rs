//! ClickHouse stops answering (accepting connections, answering nothing, as
//! under SIGSTOP): readiness fails naming it, queries get 503 at once instead
//! of hanging, and both recover when it answers again.

use std::time::Duration;

use sluice_testkit::{StallingProxy, TestEnv, eventually};

use crate::common::{Api, project, query_config, read_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_clickhouse_gets_503_at_once_and_readiness_says_why() {
    let mut env = TestEnv::new("ch_silent");
    let proxy = StallingProxy::in_front_of(&env.clickhouse.url).await;
    let direct = std::mem::replace(&mut env.clickhouse.url, proxy.http_url());
    let api = Api::start(&env).await;
    let key = read_key(&env, &api, &project(&env, "silent")).await;

    proxy.stall();
    let ready = api.url("/health/ready");
    let cause = eventually(
        "readiness to name ClickHouse",
        Duration::from_secs(30),
        || {
            let request = api.client.get(&ready).send();
            async move {
                let response = request.await.ok()?;
                if response.status() != 503 {
                    return None;
                }
                let body: serde_json::Value = response.json().await.ok()?;
                body["causes"]["clickhouse"].as_str().map(str::to_owned)
            }
        },
    )
    .await;
    assert!(
        cause.contains(&proxy.http_url()) && cause.contains("does not answer"),
        "{cause}"
    );
    let started = tokio::time::Instant::now();
    let answer = api.get("/v1/events?limit=1", &key).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.json()["error"], "storage_unavailable");
    assert_eq!(answer.headers["retry-after"], "5");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );
    // The key is still checked first.
    assert_eq!(api.get("/v1/events?limit=1", "wrong-key").await.status, 401);

    proxy.resume();
    api.running.wait_ready().await;
    assert_eq!(api.get("/v1/events?limit=1", &key).await.status, 200);
    // The harness drops the test's database directly.
    env.clickhouse.url = direct;
}

/// Started before the processor has made its tables (its user may not make
/// them), the API serves at once: not ready, naming the missing tables, and
/// every API route 503 `starting`; ready once the tables exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_started_before_the_tables_waits_for_them_and_says_so() {
    let env = TestEnv::new("qapi_before_tables");
    let config = query_config(&env);
    let running = sluice_testkit::spawn_service(|listener, shutdown| {
        sluice_query_api::serve(config, listener, shutdown)
    })
    .await;
    let client = reqwest::Client::new();
    let cause = eventually(
        "readiness to name the missing tables",
        Duration::from_secs(60),
        || {
            let request = client.get(running.url("/health/ready")).send();
            async move {
                let answer = request.await.ok()?;
                assert_eq!(answer.status(), 503);
                let body: serde_json::Value = answer.json().await.ok()?;
                // ("not checked yet" until the API asks ClickHouse.)
                let cause = body["causes"]["clickhouse"].as_str()?;
                cause.contains("has no table").then(|| cause.to_owned())
            }
        },
    )
    .await;
    assert!(cause.contains("events"), "{cause}");
    assert!(cause.contains("stream processor creates them"), "{cause}");
    let starting = client.get(running.url("/v1/events")).send().await.unwrap();
    assert_eq!(starting.status(), 503);
    assert!(starting.headers().contains_key("retry-after"));
    let body: serde_json::Value = starting.json().await.unwrap();
    assert_eq!(body["error"], "starting");

    env.ensure_schema().await;
    running.wait_ready().await;
    let anonymous = client.get(running.url("/v1/events")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "the API answers once ready");
}
