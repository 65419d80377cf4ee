//! Faults end to end: a SIGKILL of the service in the middle of a backlog,
//! a dead endpoint beside a healthy one, a receiver that closes the
//! connection, and a circuit that opens and closes again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use sluice_runtime::kafka::client_config;
use sluice_testkit::eventually;
use sluice_testkit::processes::{free_port, wait_until_ready};

use crate::harness::{PrivateStack, call, event, text};
use crate::receiver::{Received, Receiver};

const PATIENCE: Duration = Duration::from_secs(180);

/// Creates a webhook of project `shop` and returns its id.
async fn create(client: &reqwest::Client, hooks: &str, body: Value) -> String {
    let (status, answer) = call(client, "POST", hooks, body).await;
    assert_eq!(status, 201, "{answer}");
    answer["webhook_id"].as_str().unwrap().to_owned()
}

/// The event id in a delivery's body.
fn event_id(received: &Received) -> String {
    let body: Value = serde_json::from_str(&received.body).expect("a JSON body");
    body["data"]["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The offsets the service's group committed on the events topic.
fn committed(stack: &PrivateStack, group: &str) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = client_config(&stack.kafka)
        .unwrap()
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..stack.kafka.partitions {
        list.add_partition(&stack.kafka.events_topic, partition);
    }
    let list = consumer
        .committed_offsets(list, Duration::from_secs(30))
        .expect("committed offsets");
    list.elements()
        .iter()
        .map(|element| {
            let offset = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            };
            (element.partition(), offset)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_in_the_middle_of_a_backlog_loses_no_match() {
    let stack = PrivateStack::start("sigkill");
    let (receiver, receiver_addr) = Receiver::start().await;
    let mut config = stack.config();
    // A backlog that lasts: about 40 requests a second to the slow webhook.
    config.destinations.concurrency = 4;
    // The flaky webhook fails often; its circuit stays closed here.
    config.destinations.breaker_threshold = 1_000;
    let group = config.destinations.consumer_group.clone();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut service = stack.spawn_binary(&config, port);
    wait_until_ready(&base, PATIENCE).await;
    let client = reqwest::Client::new();
    let hooks = format!("{base}/v1/webhooks");
    create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": format!("http://{receiver_addr}/slow"), "rules": [{"type": "order"}]}),
    )
    .await;
    // Pending retries at the kill: every attempt of these fails twice first.
    create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": format!("http://{receiver_addr}/flaky"), "rules": [{"type": "signup"}]}),
    )
    .await;

    let producer = stack.producer();
    let orders: Vec<_> = (0..600)
        .map(|i| event("shop", &format!("order-{i}"), "order", "{}"))
        .collect();
    let signups: Vec<_> = (0..20)
        .map(|i| event("shop", &format!("signup-{i}"), "signup", "{}"))
        .collect();
    let unmatched: Vec<_> = (0..50)
        .map(|i| event("shop", &format!("view-{i}"), "page_view", "{}"))
        .collect();
    let offsets = stack.send(&producer, &orders).await;
    stack.send(&producer, &signups).await;
    stack.send(&producer, &unmatched).await;
    let offset_of: HashMap<String, (i32, i64)> = orders
        .iter()
        .map(|e| e.event_id.clone())
        .zip(offsets)
        .collect();

    // Kill in the middle of the backlog, once the group has committed some.
    eventually("a quarter of the backlog delivered", PATIENCE, || async {
        Some(()).filter(|()| receiver.received("slow").len() >= 150)
    })
    .await;
    eventually("a commit", PATIENCE, || async {
        Some(()).filter(|()| committed(&stack, &group).values().any(|&o| o > 0))
    })
    .await;
    service.signal("KILL");
    assert_eq!(
        service.exit_code_within(Duration::from_secs(60)).await,
        Some(None),
        "killed by the signal"
    );
    let killed_at = Instant::now();
    let committed_at_kill = committed(&stack, &group);
    let before_kill: HashSet<String> = receiver.received("slow").iter().map(event_id).collect();
    assert!(
        before_kill.len() < orders.len(),
        "the backlog was not finished at the kill"
    );

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let service = stack.spawn_binary(&config, port);
    wait_until_ready(&base, PATIENCE).await;

    // Every match arrives at least once.
    let expected: HashSet<String> = orders.iter().map(|e| e.event_id.clone()).collect();
    let received = eventually("every order delivered", PATIENCE, || async {
        let received = receiver.received("slow");
        let ids: HashSet<String> = received.iter().map(event_id).collect();
        Some(received).filter(|_| ids.is_superset(&expected))
    })
    .await;
    let flaky_expected: HashSet<String> = signups.iter().map(|e| e.event_id.clone()).collect();
    eventually("every signup answered 200", PATIENCE, || async {
        let mut attempts: HashMap<String, usize> = HashMap::new();
        for received in receiver.received("flaky") {
            *attempts.entry(event_id(&received)).or_default() += 1;
        }
        // The receiver answers 200 from the third attempt of a delivery on.
        Some(()).filter(|()| flaky_expected.iter().all(|id| attempts.get(id) >= Some(&3)))
    })
    .await;

    // Only what matched; duplicates only inside the documented window:
    // deliveries sent before the kill whose source offset was not committed.
    let mut copies: HashMap<String, usize> = HashMap::new();
    for delivery in &received {
        *copies.entry(event_id(delivery)).or_default() += 1;
    }
    assert_eq!(copies.len(), expected.len(), "nothing unmatched arrived");
    let duplicates: Vec<&String> = copies
        .iter()
        .filter(|&(_, &count)| count > 1)
        .map(|(id, _)| id)
        .collect();
    for id in &duplicates {
        assert!(
            before_kill.contains(*id),
            "{id} was sent twice, not across the kill"
        );
        let (partition, offset) = offset_of[*id];
        assert!(
            offset >= committed_at_kill[&partition],
            "{id} at {partition}/{offset} was committed ({committed_at_kill:?}) yet sent again"
        );
    }
    let (delivered_twice, deliveries) = (duplicates.len(), received.len());
    println!(
        "SIGKILL: {} of {} orders delivered before the kill, {delivered_twice} sent again \
         after the restart ({deliveries} requests in all), committed at the kill: \
         {committed_at_kill:?}, all delivered {:?} after the kill",
        before_kill.len(),
        expected.len(),
        killed_at.elapsed()
    );
    let (clean, output) = service.end().await;
    assert!(!output.contains(crate::harness::ADMIN_TOKEN), "{clean}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_endpoint_never_delays_another() {
    let stack = PrivateStack::start("isolation");
    let (receiver, receiver_addr) = Receiver::start().await;
    let closing_addr = receiver.start_closing().await;
    let mut config = stack.config();
    // Every attempt is made (no circuit pauses), so both failing webhooks
    // keep their workers busy while the healthy one runs.
    config.destinations.breaker_threshold = 1_000;
    let service = stack.start_service(config).await;
    let client = reqwest::Client::new();
    let hooks = service.url("/v1/webhooks");
    let rules = json!([{"type": "order"}]);
    // Hangs past its timeout on every attempt: never delivered.
    let hang = create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": format!("http://{receiver_addr}/hang"), "rules": rules, "timeout_ms": 30_000, "max_attempts": 2}),
    )
    .await;
    let close = create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": format!("http://{closing_addr}/close"), "rules": rules, "max_attempts": 2}),
    )
    .await;
    let ok = create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": format!("http://{receiver_addr}/ok"), "rules": rules}),
    )
    .await;

    let orders: Vec<_> = (0..40)
        .map(|i| event("shop", &format!("order-{i}"), "order", "{}"))
        .collect();
    stack.send(&stack.producer(), &orders).await;
    let expected: HashSet<String> = orders.iter().map(|e| e.event_id.clone()).collect();

    // The healthy webhook gets everything while the hanging one has not
    // finished a single delivery.
    eventually("every order at the healthy webhook", PATIENCE, || async {
        let ids: HashSet<String> = receiver.received("ok").iter().map(event_id).collect();
        Some(()).filter(|()| ids.is_superset(&expected))
    })
    .await;
    let metrics = text(&service.url("/metrics")).await;
    let hang_delivered = format!(
        "sluice_destination_deliveries_total{{webhook_id=\"{hang}\",outcome=\"delivered\"}}"
    );
    assert!(!metrics.contains(&hang_delivered), "{metrics}");
    assert!(
        !receiver.received("hang").is_empty(),
        "the hanging webhook was being tried meanwhile"
    );
    let ok_delivered = format!(
        "sluice_destination_deliveries_total{{webhook_id=\"{ok}\",outcome=\"delivered\"}} {}",
        expected.len()
    );
    assert!(metrics.contains(&ok_delivered), "{metrics}");

    // A connection closed without an answer is retried under the same
    // webhook-id, then dead-lettered, and the log says why.
    let deliveries = format!("{hooks}/{close}/deliveries?status=dead&limit=100");
    let dead = eventually("the closed deliveries dead", PATIENCE, || async {
        let (status, answer) = call(&client, "GET", &deliveries, Value::Null).await;
        let count = answer["deliveries"].as_array().map_or(0, Vec::len);
        Some(answer).filter(|_| status == 200 && count == expected.len())
    })
    .await;
    for delivery in dead["deliveries"].as_array().unwrap() {
        assert_eq!(delivery["attempts"], 2, "{delivery}");
        let error = delivery["error"].as_str().unwrap_or_default();
        assert!(error.contains("connection"), "{delivery}");
        assert!(!error.contains(&closing_addr.to_string()), "{delivery}");
    }
    let mut attempts: HashMap<String, usize> = HashMap::new();
    for received in receiver.received("close") {
        *attempts.entry(received.id).or_default() += 1;
    }
    assert_eq!(attempts.len(), expected.len(), "{attempts:?}");
    assert!(attempts.values().all(|&count| count >= 2), "{attempts:?}");

    service.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_circuit_opens_on_failures_and_closes_on_success() {
    let stack = PrivateStack::start("circuit");
    let (receiver, receiver_addr) = Receiver::start().await;
    let mut config = stack.config();
    config.destinations.breaker_threshold = 3;
    config.destinations.breaker_pause_ms = 2_000;
    config.destinations.backoff_max_ms = 1_000;
    let service = stack.start_service(config).await;
    let client = reqwest::Client::new();
    let hooks = service.url("/v1/webhooks");
    let id = create(
        &client,
        &hooks,
        json!({"project_id": "shop", "url": format!("http://{receiver_addr}/switch"), "rules": [{"type": "order"}], "max_attempts": 50}),
    )
    .await;
    let webhook = format!("{hooks}/{id}");
    let gauge =
        |state: i64| format!("sluice_destination_circuit_state{{webhook_id=\"{id}\"}} {state}");

    receiver.set_failing(true);
    let orders: Vec<_> = (0..10)
        .map(|i| event("shop", &format!("order-{i}"), "order", "{}"))
        .collect();
    stack.send(&stack.producer(), &orders).await;

    // Open, in the API and in the metrics; parked rather than attempted.
    eventually("the circuit open", PATIENCE, || async {
        let (_, answer) = call(&client, "GET", &webhook, Value::Null).await;
        let metrics = text(&service.url("/metrics")).await;
        Some(()).filter(|()| answer["circuit"] == "open" && metrics.contains(&gauge(1)))
    })
    .await;
    let parked = eventually(
        "deliveries parked by the open circuit",
        PATIENCE,
        || async {
            let metrics = text(&service.url("/metrics")).await;
            Some(metrics).filter(|m| m.contains("reason=\"circuit_open\""))
        },
    )
    .await;
    assert!(parked.contains(&id), "{parked}");

    // The endpoint recovers: a trial succeeds, the circuit closes, and every
    // delivery arrives.
    receiver.set_failing(false);
    let recovered = Instant::now();
    let expected: HashSet<String> = orders.iter().map(|e| e.event_id.clone()).collect();
    eventually("every order after the recovery", PATIENCE, || async {
        let ids: HashSet<String> = receiver
            .received("switch")
            .iter()
            .filter(|r| r.at >= recovered)
            .map(event_id)
            .collect();
        Some(()).filter(|()| ids.is_superset(&expected))
    })
    .await;
    eventually("the circuit closed", PATIENCE, || async {
        let (_, answer) = call(&client, "GET", &webhook, Value::Null).await;
        let metrics = text(&service.url("/metrics")).await;
        Some(()).filter(|()| answer["circuit"] == "closed" && metrics.contains(&gauge(0)))
    })
    .await;

    service.stop().await.expect("clean stop");
}
