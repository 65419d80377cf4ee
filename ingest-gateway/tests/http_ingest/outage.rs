//! The broker goes away and comes back: requests get 503 with Retry-After
//! meanwhile, readiness follows, and every event that was answered 2xx is on
//! the topic afterwards.

use std::time::Duration;

use serde_json::json;
use sluice_testkit::{Printing, PrivateBroker, TestEnv, eventually};

use sluice_runtime::keys::Scope;

use crate::common::{Gateway, config, gateway_command, ids, project};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_gets_503_then_recovers_without_losing_acked_events() {
    let broker = PrivateBroker::start();
    let mut env = TestEnv::new("gw_outage");
    env.kafka.brokers = broker.brokers();
    let mut config = config(&env);
    config.ingest.produce_timeout_ms = 3_000;
    let gateway = Gateway::start_with(&env, config).await;
    let mut acked = Vec::new();
    let batch = |first: usize| {
        let events: Vec<_> = (first..first + 5)
            .map(|i| json!({"event_id": format!("o-{i}"), "type": "outage"}))
            .collect();
        json!({"events": events})
    };

    let answer = gateway.post("/v1/events/batch", &batch(0)).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    acked.extend(crate::common::accepted_ids(&answer.body));

    broker.stop();
    let answer = gateway.post("/v1/events/batch", &batch(5)).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["error"], "broker_unavailable");
    assert_eq!(answer.headers["retry-after"], "1");
    for landed in answer.body["details"]["acknowledged"].as_array().unwrap() {
        acked.push(landed["event_id"].as_str().unwrap().to_owned());
    }
    let ready = gateway.url("/health/ready");
    eventually("readiness to fail", Duration::from_secs(20), || {
        let request = gateway.client.get(&ready).send();
        async move { request.await.ok().filter(|r| r.status() == 503).map(|_| ()) }
    })
    .await;

    broker.restart();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    for attempt in 2.. {
        let answer = gateway.post("/v1/events/batch", &batch(attempt * 5)).await;
        if answer.status == 202 {
            acked.extend(crate::common::accepted_ids(&answer.body));
            break;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(
            tokio::time::Instant::now() < give_up,
            "ingest did not recover"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    gateway.running.wait_ready().await;

    // Every acknowledged event is on the topic (a retried one may be there
    // twice; the processor collapses copies by event_id).
    let on_topic = ids(&env.topic_events(&env.kafka.events_topic).await);
    for id in &acked {
        assert!(
            on_topic.contains(id),
            "{id} was acknowledged but is not on the topic"
        );
    }
    assert!(acked.len() >= 10);
    gateway.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_before_its_broker_serves_503_and_becomes_ready_when_it_comes() {
    let broker = PrivateBroker::start();
    let mut env = TestEnv::new("gw_late_broker");
    env.kafka.brokers = broker.brokers();
    let key = env.create_key(&project(&env), &[Scope::Ingest]).await;
    broker.stop();

    let gateway = Gateway::spawn_with(key, config(&env)).await;
    let ready = gateway.url("/health/ready");
    let brokers = broker.brokers();
    let cause = eventually(
        "readiness to name the broker",
        Duration::from_secs(30),
        || {
            let request = gateway.client.get(&ready).send();
            let brokers = &brokers;
            async move {
                let response = request.await.ok()?;
                assert_eq!(response.status(), 503);
                let body: serde_json::Value = response.json().await.ok()?;
                let cause = body["causes"]["kafka"].as_str()?;
                cause.contains(brokers.as_str()).then(|| cause.to_owned())
            }
        },
    )
    .await;
    assert!(cause.contains("--kafka-brokers"), "{cause}");
    // Requests are answered at once, never left hanging.
    let started = tokio::time::Instant::now();
    let answer = gateway
        .post("/v1/events", &json!({"event_id": "late-0", "type": "late"}))
        .await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.headers.contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(15));

    broker.restart();
    gateway.running.wait_ready().await;
    let answer = gateway
        .post("/v1/events", &json!({"event_id": "late-1", "type": "late"}))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let on_topic = ids(&env.topic_events(&env.kafka.events_topic).await);
    assert_eq!(on_topic, vec!["late-1".to_owned()]);
    gateway.running.stop().await.unwrap();
}

/// A stop while events wait for a broker that went away: the drain (the
/// answers in flight, then the producer's flush) would take seconds, so
/// `--shutdown-timeout-ms` ends it (exit 130), and so does a second signal,
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_cannot_finish_ends_at_its_deadline_or_on_a_second_signal() {
    let broker = PrivateBroker::start();
    let mut env = TestEnv::new("gw_drain");
    env.kafka.brokers = broker.brokers();
    let key = env.create_key(&project(&env), &[Scope::Ingest]).await;
    for (deadline_ms, second_signal) in [("1000", false), ("60000", true)] {
        let port = sluice_testkit::processes::free_port();
        let mut command = gateway_command(&env, &broker.brokers(), port);
        command
            .env("SLUICE_PRODUCE_TIMEOUT_MS", "20000")
            .env("SLUICE_SHUTDOWN_TIMEOUT_MS", deadline_ms)
            .env("SLUICE_LOG", "info");
        let mut gateway = Printing::spawn(command, "the gateway binary");
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/v1/events");
        let send = || {
            client
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({"type": "drain"}))
                .send()
        };
        eventually("an event accepted", Duration::from_secs(60), || {
            let request = send();
            async move { request.await.ok().filter(|r| r.status() == 202).map(|_| ()) }
        })
        .await;
        broker.stop();
        let waiting = tokio::spawn(send());
        tokio::time::sleep(Duration::from_millis(500)).await;
        gateway.signal("TERM");
        if second_signal {
            assert_eq!(
                gateway.exit_code_within(Duration::from_millis(500)).await,
                None,
                "the drain waits for the answer in flight"
            );
            gateway.signal("TERM");
        }
        let code = gateway.exit_code_within(Duration::from_secs(5)).await;
        waiting.abort();
        let (_, printed) = gateway.end().await;
        assert_eq!(
            code,
            Some(Some(130)),
            "deadline {deadline_ms} ms, second signal {second_signal}:\n{printed}"
        );
        assert!(printed.contains("exiting without finishing"), "{printed}");
        broker.restart();
    }
}
