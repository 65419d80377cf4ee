//! Faults end to end: a SIGKILL of the service in the middle of a backlog,
//! a dead endpoint beside a healthy one, a receiver that closes the
//! connection, and a circuit that opens and closes again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_testkit::processes::{free_port, wait_until_ready};
use sluice_testkit::{Running, eventually};

use crate::backlog::Backlog;
use crate::harness::{
    PrivateStack, all_at, call, create, event, event_id, ids, metric, metrics_until, named, text,
};
use crate::receiver::Receiver;

const PATIENCE: Duration = Duration::from_secs(180);

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
    Backlog::webhooks(&client, &format!("{base}/v1/webhooks"), receiver_addr).await;
    let backlog = Backlog::send(&stack, 600).await;

    // Kill in the middle of the backlog, once the group has committed some.
    let at_kill = backlog
        .kill_midway((&stack, &group), &receiver, 150, &mut service)
        .await;
    let killed_at = Instant::now();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let service = stack.spawn_binary(&config, port);
    wait_until_ready(&base, PATIENCE).await;

    // Every match arrives at least once; only what matched; repeats only
    // inside the documented window: deliveries sent before the kill whose
    // source offset was not committed.
    let received = backlog.all_arrived(&receiver, PATIENCE).await;
    let repeats = backlog.repeats(&received, &at_kill);
    for id in &repeats {
        assert!(
            at_kill.delivered.contains(id),
            "{id} was sent twice, not across the kill"
        );
    }
    println!(
        "SIGKILL: {} of {} orders delivered before the kill, {} sent again \
         after the restart ({} requests in all), committed at the kill: \
         {:?}, all delivered {:?} after the kill",
        at_kill.delivered.len(),
        backlog.orders.len(),
        repeats.len(),
        received.len(),
        at_kill.committed,
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

    let orders = named("order", 40);
    stack.send(&stack.producer(), &orders).await;
    let expected = ids(&orders);

    // The healthy webhook gets everything while the hanging one has not
    // finished a single delivery.
    all_at(&receiver, "ok", &orders, PATIENCE).await;
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

/// A service whose circuits open after three failed attempts, and one
/// webhook of project `shop` for its orders at `url`, with 50 attempts.
struct CircuitCase {
    stack: PrivateStack,
    service: Running,
    client: reqwest::Client,
    hooks: String,
    id: String,
}

impl CircuitCase {
    /// `pauses`: the circuit's first pause and its longest, in ms.
    async fn start(name: &str, pauses: (u64, u64), queue_capacity: usize, url: &str) -> Self {
        let stack = PrivateStack::start(name);
        let mut config = stack.config();
        let d = &mut config.destinations;
        d.breaker_threshold = 3;
        (d.breaker_pause_ms, d.breaker_pause_max_ms) = pauses;
        d.queue_capacity = queue_capacity;
        let service = stack.start_service(config).await;
        let client = reqwest::Client::new();
        let hooks = service.url("/v1/webhooks");
        let body = json!({"project_id": "shop", "url": url, "rules": [{"type": "order"}], "max_attempts": 50});
        let id = create(&client, &hooks, body).await;
        Self {
            stack,
            service,
            client,
            hooks,
            id,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_circuit_opens_on_failures_and_closes_on_success() {
    let (receiver, receiver_addr) = Receiver::start().await;
    let url = format!("http://{receiver_addr}/switch");
    let CircuitCase {
        stack,
        service,
        client,
        hooks,
        id,
    } = CircuitCase::start("circuit", (2_000, 1_000), 1_000, &url).await;
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

/// Every park of `webhook`'s deliveries in the retry topic so far, by the
/// metrics page `page`.
fn parks(page: &str, webhook: &str) -> f64 {
    ["retry", "queue_full", "circuit_open"]
        .iter()
        .filter_map(|reason| {
            let series = format!(
                "sluice_destination_parked_total{{webhook_id=\"{webhook}\",reason=\"{reason}\"}}"
            );
            metric(page, &series)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_endpoints_backlog_is_rewritten_less_and_less_often() {
    const EVENTS: usize = 1_000;
    const WINDOW: Duration = Duration::from_secs(40);
    // A port that refuses connections until the receiver starts on it.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ok");
    let CircuitCase {
        stack, service, id, ..
    } = CircuitCase::start("deadbacklog", (1_000, 8_000), 100, &url).await;
    let orders = named("order", EVENTS);
    stack.send(&stack.producer(), &orders).await;
    let metrics_url = service.url("/metrics");
    let matched = format!("sluice_destination_matches_total{{webhook_id=\"{id}\"}}");
    let page = metrics_until(&metrics_url, "every order matched", PATIENCE, |page| {
        metric(page, &matched) == Some(EVENTS as f64)
    })
    .await;
    let (start, parks_at_start) = (Instant::now(), parks(&page, &id));
    tokio::time::sleep(WINDOW).await;
    let page = text(&metrics_url).await;
    let elapsed = start.elapsed();
    let rewrites = parks(&page, &id) - parks_at_start;
    let attempts = metric(
        &page,
        &format!("sluice_destination_attempts_total{{webhook_id=\"{id}\"}}"),
    );
    let per_event = rewrites / EVENTS as f64;
    println!(
        "dead endpoint: {EVENTS} events, {rewrites} parks in the retry topic in {elapsed:?} \
         ({per_event:.1} per event), attempts in all {attempts:?}"
    );
    // At most a few parks per event each time the circuit half-opens (for a
    // full queue, while the trial runs, until the next trial), and the
    // pause doubles from 1 s to 8 s: within the window it can half-open
    // at most this often, however slowly the machine runs.
    let (mut pause, mut open_until, mut reopenings) = (Duration::from_secs(1), Duration::ZERO, 0);
    while open_until + pause <= elapsed {
        open_until += pause;
        reopenings += 1;
        pause = (pause * 2).min(Duration::from_secs(8));
    }
    let bound = 3.0 * f64::from(reopenings + 1);
    assert!(
        per_event <= bound,
        "{per_event} parks per event in {elapsed:?}, over {bound} ({reopenings} reopenings)"
    );

    // The endpoint comes back: everything arrives.
    let (receiver, _) = Receiver::start_on(port).await;
    all_at(&receiver, "ok", &orders, PATIENCE).await;
    service.stop().await.expect("clean stop");
}
