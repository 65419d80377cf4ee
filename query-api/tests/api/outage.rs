//! ClickHouse stops answering (accepting connections, answering nothing, as
//! under SIGSTOP): readiness fails naming it, queries get 503 at once instead
//! of hanging, and both recover when it answers again.

use std::time::Duration;

use sluice_testkit::{StallingProxy, TestEnv, eventually};

use crate::common::{Api, project, read_key};

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
