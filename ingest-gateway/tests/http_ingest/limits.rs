//! Per-key rate limits: requests and events, with the key's own limits.

use std::time::Duration;

use serde_json::json;
use sluice_runtime::keys::{KeyLimits, Scope};
use sluice_testkit::TestEnv;

use crate::common::{Gateway, project};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_held_to_their_request_and_event_limits() {
    let env = TestEnv::new("gw_limits");
    let gateway = Gateway::start(&env).await;
    let slow = env
        .create_key_with(
            &project(&env),
            &[Scope::Ingest],
            KeyLimits {
                requests_per_second: Some(1),
                request_burst: Some(2),
                ..KeyLimits::default()
            },
        )
        .await;
    let small = env
        .create_key_with(
            &project(&env),
            &[Scope::Ingest],
            KeyLimits {
                events_per_second: Some(1),
                event_burst: Some(10),
                ..KeyLimits::default()
            },
        )
        .await;
    let post = |key: &str, events: usize| {
        let events: Vec<_> = (0..events)
            .map(|i| json!({"type": "t", "event_id": format!("{key}-{i}")}))
            .collect();
        gateway
            .client
            .post(gateway.url("/v1/events/batch"))
            .bearer_auth(key)
            .json(&json!({"events": events}))
    };

    let first = gateway
        .eventually_status("the limited key", 202, || post(&slow, 1))
        .await;
    assert_eq!(first.headers["ratelimit-limit"], "2");
    assert_eq!(first.headers["ratelimit-remaining"], "1");
    let second = gateway.send(post(&slow, 1)).await;
    assert_eq!(second.status, 202, "{second:?}");
    assert_eq!(second.headers["ratelimit-remaining"], "0");
    let third = gateway.send(post(&slow, 1)).await;
    assert_eq!(third.status, 429, "{third:?}");
    assert_eq!(third.body["details"]["limit"], "requests");
    assert_eq!(third.headers["retry-after"], "1");
    assert_eq!(third.headers["ratelimit-remaining"], "0");

    gateway
        .eventually_status("the small key", 202, || post(&small, 8))
        .await;
    let over = gateway.send(post(&small, 5)).await;
    assert_eq!(over.status, 429, "{over:?}");
    assert_eq!(over.body["details"]["limit"], "events");
    let never = gateway.send(post(&small, 11)).await;
    assert_eq!(never.status, 413, "{never:?}");

    // Other keys are not affected.
    assert_eq!(
        gateway
            .post("/v1/events", &json!({"type": "x"}))
            .await
            .status,
        202
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_flight_are_bounded_and_the_rest_get_503() {
    use std::io::Write;

    let env = TestEnv::new("gw_inflight");
    let mut config = crate::common::config(&env);
    config.ingest.max_in_flight_bytes = 64 * 1024;
    let gateway = Gateway::start_with(&env, config).await;

    // A slow client announces 60 KiB and sends nothing: it holds most of the budget.
    let mut slow = std::net::TcpStream::connect(gateway.running.addr).unwrap();
    write!(
        slow,
        "POST /v1/events/batch HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        gateway.key,
        60 * 1024
    )
    .unwrap();
    let padding = "x".repeat(8 * 1024);
    let batch = json!({"events": [{"type": "t", "properties": {"pad": padding}}]});
    let send = || {
        gateway
            .client
            .post(gateway.url("/v1/events/batch"))
            .bearer_auth(&gateway.key)
            .json(&batch)
    };
    // The slow request holds its share as soon as the gateway has read its
    // head; until then a request may still fit. The answers seen are kept,
    // so a failure says what came back instead.
    let mut seen = Vec::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let answer = gateway.send(send()).await;
        if answer.status == 503 {
            break answer;
        }
        seen.push(answer.status);
        assert!(
            tokio::time::Instant::now() < give_up,
            "the budget was never taken; answers meanwhile: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused.body["error"], "overloaded");
    assert_eq!(refused.headers["retry-after"], "1");

    // Once the slow request is gone, the budget is back.
    drop(slow);
    gateway
        .eventually_status("the budget to come back", 202, send)
        .await;
}
