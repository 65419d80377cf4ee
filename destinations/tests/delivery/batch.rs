//! Batch mode end to end: fewer requests than events, each signed, and a
//! batch retried whole under one webhook-id.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_testkit::eventually;

use crate::harness::{PrivateStack, all_at, call, create, event, ids, metric, named, text};
use crate::receiver::{Received, Receiver, verify};

const PATIENCE: Duration = Duration::from_secs(90);

/// The event ids a batch request carries, in order.
fn members(received: &Received) -> Vec<String> {
    let body: Value = serde_json::from_str(&received.body).expect("a JSON body");
    assert_eq!(body["type"], "batch", "{}", received.body);
    body["events"]
        .as_array()
        .expect("an events array")
        .iter()
        .map(|element| {
            assert_eq!(element["type"], "event", "{element}");
            element["data"]["event_id"]
                .as_str()
                .expect("an event id")
                .to_owned()
        })
        .collect()
}

fn delivered(requests: &[Received]) -> BTreeSet<String> {
    requests.iter().flat_map(members).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_carry_many_events_signed_and_retry_whole() {
    let stack = PrivateStack::start("batch");
    let (receiver, receiver_addr) = Receiver::start().await;
    let mut config = stack.config();
    config.destinations.breaker_threshold = 100;
    let service = stack.start_service(config).await;
    let client = reqwest::Client::new();
    let hooks = service.url("/v1/webhooks");
    let target = |path: &str| format!("http://{receiver_addr}/{path}");

    for (batch, field) in [
        (
            json!({"max_events": 0, "max_wait_ms": 100}),
            "batch.max_events",
        ),
        (
            json!({"max_events": 1001, "max_wait_ms": 100}),
            "batch.max_events",
        ),
        (
            json!({"max_events": 10, "max_wait_ms": 60_001}),
            "batch.max_wait_ms",
        ),
        (json!({"max_events": 10}), "batch"),
    ] {
        let body =
            json!({"project_id": "shop", "url": target("ok"), "rules": [{}], "batch": batch});
        let (status, answer) = call(&client, "POST", &hooks, body).await;
        assert_eq!(status, 400, "{batch}: {answer}");
        assert_eq!(answer["details"]["field"], field, "{batch}: {answer}");
    }

    let mut secrets = std::collections::HashMap::new();
    let mut ids = std::collections::HashMap::new();
    for (path, event_type, max_events) in [
        ("ok", "batch.a", 4),
        ("switch", "batch.b", 3),
        ("refuse", "batch.c", 2),
    ] {
        let body = json!({
            "project_id": "shop",
            "url": target(path),
            "rules": [{"type": event_type}],
            "batch": {"max_events": max_events, "max_wait_ms": 1500},
        });
        let (status, answer) = call(&client, "POST", &hooks, body).await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["batch"]["max_events"], max_events, "{answer}");
        secrets.insert(path, answer["secret"].as_str().unwrap().to_owned());
        ids.insert(path, answer["webhook_id"].as_str().unwrap().to_owned());
    }

    receiver.set_failing(true);
    let a_events: Vec<_> = (0..10)
        .map(|n| event("shop", &format!("a-{n}"), "batch.a", "{}"))
        .collect();
    let b_events: Vec<_> = (0..3)
        .map(|n| event("shop", &format!("b-{n}"), "batch.b", "{}"))
        .collect();
    let producer = stack.producer();
    stack.send(&producer, &a_events).await;
    stack.send(&producer, &b_events).await;
    let c_events: Vec<_> = (0..2)
        .map(|n| event("shop", &format!("c-{n}"), "batch.c", "{}"))
        .collect();
    stack.send(&producer, &c_events).await;

    // Ten events in fewer requests, none over the cap, each signed.
    let wanted: BTreeSet<String> = a_events.iter().map(|e| e.event_id.clone()).collect();
    let requests = eventually("every batch.a event", PATIENCE, || async {
        Some(receiver.received("ok")).filter(|r| delivered(r) == wanted)
    })
    .await;
    assert!(requests.len() < 10, "{} requests", requests.len());
    for request in &requests {
        assert!(verify(&secrets["ok"], request), "{request:?}");
        assert!(
            (1..=4).contains(&members(request).len()),
            "{}",
            request.body
        );
    }

    // A batch answered 500 comes again whole, under the same webhook-id.
    let first = eventually("a batch.b request", PATIENCE, || async {
        receiver.received("switch").into_iter().next()
    })
    .await;
    receiver.set_failing(false);
    let first_members = members(&first);
    let metrics_url = service.url("/metrics");
    let counted = |webhook: &str| {
        format!(
            "sluice_destination_deliveries_total{{webhook_id=\"{webhook}\",outcome=\"delivered\"}} "
        )
    };
    eventually("the batch.b events delivered", PATIENCE, || async {
        let metrics = text(&metrics_url).await;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&counted(&ids["switch"])))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n == b_events.len())
    })
    .await;
    let same: Vec<Received> = receiver
        .received("switch")
        .into_iter()
        .filter(|r| r.id == first.id)
        .collect();
    assert!(same.len() >= 2, "{same:?}");
    for request in &same {
        assert!(verify(&secrets["switch"], request), "{request:?}");
        assert_eq!(members(request), first_members);
        assert_eq!(request.body, first.body);
    }

    // Metrics count events; the log holds one row per batch attempt.
    let metrics = text(&metrics_url).await;
    assert!(
        metrics.contains(&format!("{}10", counted(&ids["ok"]))),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_destination_batch_events_count"),
        "{metrics}"
    );
    let batch_ids: BTreeSet<String> = requests.iter().map(|r| r.id.clone()).collect();
    let log_url = format!("{hooks}/{}/deliveries?status=delivered", ids["ok"]);
    eventually("the batches in the deliveries log", PATIENCE, || async {
        let (status, answer) = call(&client, "GET", &log_url, Value::Null).await;
        let listed: BTreeSet<String> = answer["deliveries"]
            .as_array()?
            .iter()
            .filter_map(|d| d["delivery_id"].as_str().map(str::to_owned))
            .collect();
        Some(()).filter(|()| status == 200 && listed == batch_ids)
    })
    .await;

    // A refused batch is one delivery in the log; redelivered, it comes
    // again whole, under the same webhook-id.
    let refused = eventually("a refused batch", PATIENCE, || async {
        receiver.received("refuse").into_iter().next()
    })
    .await;
    let refused_url = format!("{hooks}/{}/deliveries?status=refused", ids["refuse"]);
    eventually("the refused batch in the log", PATIENCE, || async {
        let (status, answer) = call(&client, "GET", &refused_url, Value::Null).await;
        let listed = answer["deliveries"].as_array()?;
        Some(()).filter(|()| {
            status == 200
                && listed.iter().any(|d| {
                    d["delivery_id"] == refused.id.as_str()
                        && d["event_id"] == members(&refused)[0].as_str()
                })
        })
    })
    .await;
    let redeliver = format!("{hooks}/{}/redeliver", ids["refuse"]);
    let (status, answer) = call(
        &client,
        "POST",
        &redeliver,
        json!({"delivery_id": refused.id}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let again = eventually("the redelivered batch", PATIENCE, || async {
        let same: Vec<Received> = receiver
            .received("refuse")
            .into_iter()
            .filter(|r| r.id == refused.id)
            .collect();
        Some(same).filter(|same| same.len() >= 2)
    })
    .await;
    assert_eq!(again[1].body, refused.body);
    assert!(verify(&secrets["refuse"], &again[1]), "{:?}", again[1]);

    service.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_batch_queue_parks_counting_events_and_delivers_everything() {
    const CAPACITY: f64 = 10.0;
    let stack = PrivateStack::start("batchfull");
    let (receiver, receiver_addr) = Receiver::start().await;
    let mut config = stack.config();
    config.destinations.queue_capacity = CAPACITY as usize;
    config.destinations.concurrency = 1;
    config.destinations.breaker_threshold = 1_000;
    let service = stack.start_service(config).await;
    let client = reqwest::Client::new();
    let hooks = service.url("/v1/webhooks");
    let target = |path: &str| format!("http://{receiver_addr}/{path}");
    // While the gate is closed every attempt times out, so batches come
    // back from the retry topic whole: jobs of several events each.
    let batched = create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": target("gate"), "rules": [{"type": "order"}],
               "timeout_ms": 1_500, "max_attempts": 50,
               "batch": {"max_events": 5, "max_wait_ms": 300}}),
    )
    .await;
    create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": target("ok"), "rules": [{"type": "order"}]}),
    )
    .await;

    receiver.set_closed(true);
    let orders = named("order", 40);
    stack.send(&stack.producer(), &orders).await;
    let expected: BTreeSet<String> = ids(&orders).into_iter().collect();

    // The consumer is not held up: the other webhook gets every order
    // while the gated one's only worker waits.
    all_at(&receiver, "ok", &orders, PATIENCE).await;

    // Batches time out, are parked and come back whole; the queue takes
    // what fits in events and the rest is parked again, so it never holds
    // more than its capacity in events, whatever the jobs.
    let metrics_url = service.url("/metrics");
    let depth = format!("sluice_destination_queue_depth{{webhook_id=\"{batched}\"}}");
    let parked = |reason: &str| {
        format!("sluice_destination_parked_total{{webhook_id=\"{batched}\",reason=\"{reason}\"}}")
    };
    let give_up = Instant::now() + PATIENCE;
    let mut deepest = 0.0_f64;
    let (retried, full) = loop {
        let page = text(&metrics_url).await;
        deepest = deepest.max(metric(&page, &depth).unwrap_or(0.0));
        let retried = metric(&page, &parked("retry")).unwrap_or(0.0);
        let full = metric(&page, &parked("queue_full")).unwrap_or(0.0);
        if retried >= 8.0 && full >= 1.0 {
            break (retried, full);
        }
        assert!(
            Instant::now() < give_up,
            "no timed-out batches or no full queue: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        deepest <= CAPACITY,
        "the queue held {deepest} events, over its capacity of {CAPACITY}"
    );
    assert!(deepest > 1.0, "the queue never filled: {deepest}");

    // Open: every order arrives, each counted delivered once.
    receiver.set_closed(false);
    let delivered_series = format!(
        "sluice_destination_deliveries_total{{webhook_id=\"{batched}\",outcome=\"delivered\"}}"
    );
    eventually("every order at the gated webhook", PATIENCE, || async {
        let page = text(&metrics_url).await;
        let sent = delivered(&receiver.received("gate"));
        Some(()).filter(|()| {
            sent.is_superset(&expected)
                && metric(&page, &delivered_series) == Some(expected.len() as f64)
        })
    })
    .await;
    println!(
        "batch queue limit: {retried} batches parked after a timeout, {full} parks for a full \
         queue, at most {deepest} events queued (capacity {CAPACITY})"
    );

    service.stop().await.expect("clean stop");
}
