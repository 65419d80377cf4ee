//! A webhook deleted or disabled with deliveries queued and in flight
//! leaves nothing behind (no destination, no metric series) and holds no
//! offset back.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use sluice_testkit::eventually;

use crate::harness::{
    PrivateStack, all_at, call, committed_on, create, ends, event, event_id, metric, metrics_until,
    named, text,
};
use crate::receiver::Receiver;

const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_webhook_is_dropped_once_idle_and_its_offsets_still_commit() {
    let stack = PrivateStack::start("removal");
    let (receiver, receiver_addr) = Receiver::start().await;
    let mut config = stack.config();
    config.destinations.concurrency = 2;
    config.destinations.breaker_threshold = 1_000;
    let group = config.destinations.consumer_group.clone();
    let retry_topic = config.destinations.retry_topic.clone();
    let service = stack.start_service(config).await;
    let client = reqwest::Client::new();
    let hooks = service.url("/v1/webhooks");
    let target = |path: &str| format!("http://{receiver_addr}/{path}");
    // Never answers in time: two attempts in flight, the rest queued, and
    // every attempt parked in the retry topic when it times out.
    let deleted = create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": target("hang"), "rules": [{"type": "order"}], "timeout_ms": 2_000, "max_attempts": 50}),
    )
    .await;
    let disabled = create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": target("slow"), "rules": [{"type": "order"}]}),
    )
    .await;
    let kept = create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": target("ok"), "rules": [{"type": "signup"}]}),
    )
    .await;

    let producer = stack.producer();
    let signups = named("signup", 10);
    stack.send(&producer, &signups[..5]).await;
    let orders = named("order", 300);
    stack.send(&producer, &orders).await;

    let metrics_url = service.url("/metrics");
    let depth = |id: &str| format!("sluice_destination_queue_depth{{webhook_id=\"{id}\"}}");
    let active = "sluice_destination_active_destinations";
    let retried =
        format!("sluice_destination_parked_total{{webhook_id=\"{deleted}\",reason=\"retry\"}}");
    let wanted = "three destinations, a deep queue, attempts timed out";
    metrics_until(&metrics_url, wanted, PATIENCE, |page| {
        metric(page, active) == Some(3.0)
            && metric(page, &depth(&deleted)).is_some_and(|d| d >= 100.0)
            && metric(page, &retried).is_some_and(|n| n >= 2.0)
    })
    .await;

    let (status, answer) = call(
        &client,
        "PATCH",
        &format!("{hooks}/{disabled}"),
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let response = client
        .delete(format!("{hooks}/{deleted}"))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 204);

    // Both leave the map and every one of their series goes; the kept one stays.
    let gone = |id: &str| format!("\"{id}\"");
    let page = metrics_until(
        &metrics_url,
        "the two destinations dropped",
        PATIENCE,
        |page| {
            metric(page, active) == Some(1.0)
                && !page.contains(&gone(&deleted))
                && !page.contains(&gone(&disabled))
        },
    )
    .await;
    assert!(page.contains(&depth(&kept)), "{page}");

    // Every offset is released: what was queued, in flight and parked for
    // them is settled without an attempt, on the events and the retry topic.
    let events_topic = stack.kafka.events_topic.clone();
    let retries_group = format!("{group}-retries");
    eventually("every offset committed", PATIENCE, || async {
        let done = committed_on(&stack, &group, &events_topic) == ends(&stack, &events_topic)
            && committed_on(&stack, &retries_group, &retry_topic) == ends(&stack, &retry_topic);
        Some(()).filter(|()| done)
    })
    .await;
    let page = text(&metrics_url).await;
    assert_eq!(
        metric(&page, "sluice_destination_unsettled_deliveries"),
        Some(0.0),
        "{page}"
    );

    // The service goes on: the kept webhook gets what matches it, and no
    // destination comes back for the removed ones.
    stack.send(&producer, &signups[5..]).await;
    stack
        .send(&producer, &[event("shop", "order-late", "order", "{}")])
        .await;
    all_at(&receiver, "ok", &signups, PATIENCE).await;
    eventually("the late order's offset committed", PATIENCE, || async {
        let done = committed_on(&stack, &group, &events_topic) == ends(&stack, &events_topic);
        Some(()).filter(|()| done)
    })
    .await;
    let page = text(&metrics_url).await;
    assert_eq!(metric(&page, active), Some(1.0), "{page}");
    let slow: HashSet<String> = receiver.received("slow").iter().map(event_id).collect();
    assert!(!slow.contains("order-late"), "{slow:?}");
    println!(
        "removal: {} of {} orders reached the disabled webhook before it was disabled; \
         {} attempts at the deleted one",
        slow.len(),
        orders.len(),
        receiver.received("hang").len()
    );

    service.stop().await.expect("clean stop");
}
