//! `/v1/status` and `/v1/admin/status` on the real pipeline (gateway, broker,
//! processor, ClickHouse): freshness and lag grow while the processor is
//! stopped and fall back once it runs again; late events and dead letters
//! are counted exactly, for their project only; the admin view shows every
//! project and the services' readiness.

use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde_json::{Value, json};
use sluice_query_api::config::QuerySettings;
use sluice_runtime::keys::Scope;
use sluice_schemas::Event;
use sluice_schemas::time_format::now_ms;
use sluice_testkit::{TestEnv, eventually};

use crate::common::{
    Api, HOUR, generate, project, read_key, send_through_gateway, start_gateway, start_processor,
};

/// Generous: the machine may be busy; nothing here measures speed.
const PATIENCE: Duration = Duration::from_secs(90);

async fn status_until(api: &Api, key: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(what, PATIENCE, || async {
        let answer = api.get("/v1/status", key).await;
        let status = (answer.status == 200).then(|| answer.json())?;
        done(&status).then_some(status)
    })
    .await
}

/// `count` events of `project` in `[from_ms, from_ms + span_ms)` in
/// event-time order: the test's processor allows 1 s of lateness, so events
/// out of order across a minute would count as late.
fn in_order(project: &str, count: usize, from_ms: i64, span_ms: i64, seed: u64) -> Vec<Event> {
    let mut events = generate(project, count, from_ms, span_ms, seed);
    events.sort_by_key(|event| event.timestamp_ms);
    events
}

fn freshness(status: &Value) -> f64 {
    status["freshness_seconds"].as_f64().unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_and_lag_grow_while_the_processor_is_stopped_and_fall_back_after() {
    let env = TestEnv::new("status");
    let processor = start_processor(&env).await;
    let gateway = start_gateway(&env).await;
    let api = Api::start_with(
        &env,
        QuerySettings {
            processor_group: format!("group_{}", env.id),
            status_peers: format!("processor={}", processor.url("")),
            ..QuerySettings::default()
        },
    )
    .await;
    let shop = project(&env, "shop");
    let ingest = env.create_key(&shop, &[Scope::Ingest]).await;
    let read = read_key(&env, &api, &shop).await;
    let other = read_key(&env, &api, &project(&env, "other")).await;
    let admin = env.create_key(&shop, &[Scope::Admin]).await;

    let now = now_ms();
    send_through_gateway(
        &gateway,
        &ingest,
        &in_order(&shop, 40, now - 30_000, 20_000, 1),
    )
    .await;
    let caught_up = status_until(&api, &read, "the first events stored", |status| {
        status["pipeline"]["lag_messages"] == 0 && status["last_event"]["queryable_at"].is_string()
    })
    .await;
    assert_eq!(caught_up["project_id"], shop.as_str());
    assert_eq!(freshness(&caught_up), 0.0, "{caught_up}");
    assert!(
        caught_up["pipeline"]["watermark"].is_string(),
        "{caught_up}"
    );
    assert!(
        caught_up["pipeline"]["rollups_final_before"].is_string(),
        "{caught_up}"
    );
    let first_received = caught_up["last_event"]["received_at"]
        .as_str()
        .unwrap()
        .to_owned();

    // A late event (its minute closed long ago) and a dead letter that names
    // the project, sent straight to the topic.
    send_through_gateway(&gateway, &ingest, &generate(&shop, 1, now - HOUR, 1_000, 2)).await;
    let unreadable = json!({"project_id": shop, "type": 5}).to_string();
    env.producer()
        .send(
            FutureRecord::<(), str>::to(&env.kafka.events_topic).payload(&unreadable),
            Timeout::After(Duration::from_secs(30)),
        )
        .await
        .expect("the broker takes the dead letter");
    let counted = status_until(
        &api,
        &read,
        "the late event and the dead letter",
        |status| {
            status["late_events"]["last_hour"] == 1 && status["dead_letters"]["last_hour"] == 1
        },
    )
    .await;
    assert_eq!(
        counted["late_events"],
        json!({"last_hour": 1, "last_day": 1})
    );
    assert_eq!(
        counted["dead_letters"],
        json!({"last_hour": 1, "last_day": 1})
    );
    let elsewhere = api.get_ok("/v1/status", &other).await;
    assert_eq!(
        elsewhere["late_events"],
        json!({"last_hour": 0, "last_day": 0})
    );
    assert_eq!(
        elsewhere["dead_letters"],
        json!({"last_hour": 0, "last_day": 0})
    );
    assert_eq!(elsewhere["last_event"]["received_at"], Value::Null);

    let everything = api.get_ok("/v1/admin/status", &admin).await;
    let services = everything["services"].as_array().unwrap();
    assert_eq!(services[0]["service"], "query-api");
    assert_eq!(services[1]["service"], "processor");
    assert_eq!(services[1]["ready"], true, "{everything}");
    let listed = everything["projects"].as_array().unwrap();
    let shop_row = listed
        .iter()
        .find(|p| p["project_id"] == shop.as_str())
        .unwrap();
    assert_eq!(shop_row["late_events"]["last_hour"], 1);
    assert_eq!(api.get("/v1/admin/status", &read).await.status, 403);

    processor.stop().await.expect("the processor stops");
    send_through_gateway(
        &gateway,
        &ingest,
        &in_order(&shop, 30, now_ms() - 5_000, 4_000, 3),
    )
    .await;
    let behind = status_until(&api, &read, "lag and freshness while stopped", |status| {
        status["pipeline"]["lag_messages"].as_u64() >= Some(30) && freshness(status) > 0.0
    })
    .await;
    let later = status_until(&api, &read, "freshness to grow", |status| {
        freshness(status) >= freshness(&behind) + 2.0
    })
    .await;
    assert!(
        later["pipeline"]["lag_messages"].as_u64() >= Some(30),
        "{later}"
    );
    let stopped = api.get_ok("/v1/admin/status", &admin).await;
    assert_eq!(stopped["services"][1]["ready"], false, "{stopped}");

    let _processor = start_processor(&env).await;
    let recovered = status_until(&api, &read, "lag and freshness to fall back", |status| {
        status["pipeline"]["lag_messages"] == 0 && freshness(status) == 0.0
    })
    .await;
    let last_received = recovered["last_event"]["received_at"].as_str().unwrap();
    assert!(last_received > first_received.as_str(), "{recovered}");
}
