//! Rules, signatures, retries, Retry-After, refusals, dead letters, the
//! deliveries log and redelivery, end to end.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use sluice_runtime::kafka::client_config;
use sluice_testkit::eventually;

use crate::harness::{PrivateStack, call, event, text};
use crate::receiver::{Receiver, verify};

const PATIENCE: Duration = Duration::from_secs(90);

fn topic_messages(stack: &PrivateStack, topic: &str) -> i64 {
    let consumer: BaseConsumer = client_config(&stack.kafka).unwrap().create().unwrap();
    (0..stack.kafka.partitions)
        .map(|partition| {
            consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .map_or(0, |(low, high)| high - low)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn matching_events_are_delivered_signed_retried_and_dead_lettered() {
    let stack = PrivateStack::start("webhooks");
    let (receiver, receiver_addr) = Receiver::start().await;
    let mut config = stack.config();
    config.destinations.breaker_threshold = 100;
    let dead_letter_topic = config.destinations.dead_letter_topic.clone();
    let service = stack.start_service(config).await;
    let client = reqwest::Client::new();
    let hooks = service.url("/v1/webhooks");
    let target = |path: &str| format!("http://{receiver_addr}/{path}");

    // Bad input is refused, naming the field.
    for (body, field) in [
        (
            json!({"project_id": "shop", "url": "http://169.254.169.254/latest", "rules": [{}]}),
            "url",
        ),
        (
            json!({"project_id": "shop", "url": "ftp://example.com/", "rules": [{}]}),
            "url",
        ),
        (
            json!({"project_id": "shop", "url": target("ok"), "rules": [{"type": ""}]}),
            "rules[0].type",
        ),
        (
            json!({"project_id": "shop", "url": target("ok"), "rules": [{"properties": {"a b": "1"}}]}),
            "rules[0].properties.a b",
        ),
        (json!({"url": target("ok"), "rules": [{}]}), "project_id"),
        (
            json!({"project_id": "shop", "url": target("ok"), "rules": [{}], "headers": {"webhook-id": "x"}}),
            "headers.webhook-id",
        ),
    ] {
        let (status, answer) = call(&client, "POST", &hooks, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["details"]["field"], field, "{body}: {answer}");
    }
    let unauthorized = client.get(&hooks).send().await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);

    let mut secrets = std::collections::HashMap::new();
    let mut ids = std::collections::HashMap::new();
    for (path, rules, max_attempts) in [
        (
            "ok",
            json!([{"type": "checkout.*", "properties": {"plan": "pro"}}]),
            5,
        ),
        ("flaky", json!([{"type": "signup"}]), 5),
        ("throttle", json!([{"type": "signup"}]), 5),
        ("fail", json!([{"type": "signup"}]), 3),
        ("refuse", json!([{"type": "refund"}]), 5),
    ] {
        let body = json!({"project_id": "shop", "url": target(path), "rules": rules, "max_attempts": max_attempts});
        let (status, answer) = call(&client, "POST", &hooks, body).await;
        assert_eq!(status, 201, "{answer}");
        let secret = answer["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));
        secrets.insert(path, secret);
        ids.insert(path, answer["webhook_id"].as_str().unwrap().to_owned());
    }
    let (_, listed) = call(
        &client,
        "GET",
        &format!("{hooks}?project_id=shop"),
        Value::Null,
    )
    .await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 5);
    assert!(
        !listed.to_string().contains("whsec_"),
        "secrets are shown once"
    );

    let producer = stack.producer();
    stack
        .send(
            &producer,
            &[
                event("shop", "buy-pro", "checkout.done", r#"{"plan":"pro"}"#),
                event("shop", "buy-free", "checkout.done", r#"{"plan":"free"}"#),
                event("shop", "view-1", "page_view", r#"{"plan":"pro"}"#),
                event("other", "buy-other", "checkout.done", r#"{"plan":"pro"}"#),
                event("shop", "signup-1", "signup", "{}"),
                event("shop", "refund-1", "refund", "{}"),
            ],
        )
        .await;

    // Exactly the matching event, verified with the specification's algorithm.
    let ok = eventually("the checkout delivery", PATIENCE, || async {
        Some(receiver.received("ok")).filter(|r| !r.is_empty())
    })
    .await;
    assert!(verify(&secrets["ok"], &ok[0]), "{:?}", ok[0]);
    let body: Value = serde_json::from_str(&ok[0].body).unwrap();
    assert_eq!(body["data"]["event_id"], "buy-pro");
    assert_eq!(body["webhook_id"], ids["ok"].as_str());

    // 503, 503, 200: three attempts under one webhook-id, each signed.
    let flaky = eventually("three flaky attempts", PATIENCE, || async {
        Some(receiver.received("flaky")).filter(|r| r.len() >= 3)
    })
    .await;
    assert!(
        flaky
            .iter()
            .all(|r| r.id == flaky[0].id && verify(&secrets["flaky"], r))
    );

    // 429 with Retry-After: 1, then success at least a second later.
    let throttled = eventually("the throttled retry", PATIENCE, || async {
        Some(receiver.received("throttle")).filter(|r| r.len() >= 2)
    })
    .await;
    assert!(throttled[1].at.duration_since(throttled[0].at) >= Duration::from_millis(950));

    // Always 500: exactly max_attempts attempts, then the dead-letter topic;
    // 400: one attempt, no retry, dead-lettered too.
    eventually("two dead letters", PATIENCE, || async {
        Some(()).filter(|()| topic_messages(&stack, &dead_letter_topic) >= 2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received("fail").len(), 3);
    assert_eq!(receiver.received("refuse").len(), 1);
    // Nothing that must not match was sent.
    assert_eq!(receiver.received("ok").len(), 1);
    assert_eq!(receiver.received("flaky").len(), 3);

    // The deliveries log, by webhook and status.
    let fail_url = format!("{hooks}/{}/deliveries?status=dead", ids["fail"]);
    let dead = eventually("the dead delivery in the log", PATIENCE, || async {
        let (status, answer) = call(&client, "GET", &fail_url, Value::Null).await;
        Some(answer)
            .filter(|a| status == 200 && a["deliveries"].as_array().is_some_and(|d| d.len() == 1))
    })
    .await;
    let delivery = &dead["deliveries"][0];
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["response_status"], 500);
    assert_eq!(delivery["event_id"], "signup-1");

    // Redelivery sends it again under the same webhook-id.
    let redeliver = format!("{hooks}/{}/redeliver", ids["fail"]);
    let (status, answer) = call(
        &client,
        "POST",
        &redeliver,
        json!({"delivery_id": delivery["delivery_id"]}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let again = eventually("the redelivery", PATIENCE, || async {
        Some(receiver.received("fail")).filter(|r| r.len() >= 4)
    })
    .await;
    assert_eq!(again[3].id, delivery["delivery_id"].as_str().unwrap());

    // Metrics per destination.
    let metrics = text(&service.url("/metrics")).await;
    let delivered = format!(
        "sluice_destination_deliveries_total{{webhook_id=\"{}\",outcome=\"delivered\"}} 1",
        ids["ok"]
    );
    assert!(metrics.contains(&delivered), "{metrics}");
    assert!(
        metrics.contains("sluice_destination_circuit_state"),
        "{metrics}"
    );

    service.stop().await.expect("clean stop");
}
