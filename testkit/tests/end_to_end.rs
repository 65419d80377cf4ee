//! One event through the whole pipeline: gateway -> Kafka -> processor ->
//! ClickHouse -> query API, against the real broker and ClickHouse.

mod common;

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sluice_runtime::kafka::client_config;
use sluice_runtime::keys::Scope;
use sluice_schemas::validate::KNOWN_FIELDS;
use sluice_testkit::{TestEnv, eventually};

use common::{key_of, post_event, project, start_gateway, start_processor, start_query_api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_travels_from_the_gateway_to_the_query_api() {
    let env = TestEnv::new("e2e");
    let key = key_of(&env).await;
    let gateway = start_gateway(&env).await;
    gateway.wait_ready().await;
    let processor = start_processor(&env).await;
    let query = start_query_api(&env).await;
    query.wait_ready().await;

    let timestamp = sluice_schemas::time_format::format_rfc3339_ms(
        sluice_schemas::time_format::now_ms() - 60_000,
    );
    let sent = json!({
        "event_id": "evt-e2e-1",
        "type": "checkout",
        "timestamp": timestamp,
        "user_id": "user-42",
        "session_id": "session-7",
        "source": "web",
        "duration_ms": 187.5,
        "status": "ok",
        "tags": ["beta", "eu"],
        "properties": {"cart": {"items": 3, "total": 59.9}, "coupon": null, "path": "/pay"}
    });
    let (status, body) = post_event(&gateway, &key, &sent).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["event_id"], "evt-e2e-1");

    let (status, body) = post_event(&gateway, &key, &json!({"type": "page_view"})).await;
    assert_eq!(status, 202, "{body}");
    let generated = body["event_id"].as_str().unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&generated).unwrap().get_version_num(),
        7
    );

    let client = reqwest::Client::new();
    let url = query.url("/v1/events?type=checkout");
    let events = eventually(
        "the event in the query API",
        Duration::from_secs(60),
        || {
            let request = client.get(&url).bearer_auth(&key).send();
            async move {
                let body: Value = request.await.ok()?.json().await.ok()?;
                let events = body["events"].as_array()?.clone();
                (!events.is_empty()).then_some(events)
            }
        },
    )
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let got = &events[0];
    // Every field an event may have reads back as sent; the project comes
    // from the key.
    for field in KNOWN_FIELDS
        .iter()
        .copied()
        .filter(|field| *field != "project_id")
    {
        assert_eq!(got[field], sent[field], "field {field}");
    }
    assert_eq!(got["project_id"], project(&env));
    assert_eq!(got["client_ip"], "127.0.0.1");
    assert_eq!(got["user_agent"], "sluice-e2e/1.0");
    assert!(got["received_at"].as_str().unwrap() > timestamp.as_str());

    let url = query.url("/v1/events");
    eventually("the generated-id event", Duration::from_secs(30), || {
        let request = client.get(&url).bearer_auth(&key).send();
        let generated = generated.clone();
        async move {
            let body: Value = request.await.ok()?.json().await.ok()?;
            body["events"]
                .as_array()?
                .iter()
                .any(|e| e["event_id"] == generated.as_str())
                .then_some(())
        }
    })
    .await;

    // A key of another project sees nothing of this one; an unknown key and
    // an ingest-only key see nothing at all.
    let other = env.create_key("another_project", &[Scope::Read]).await;
    let body: Value = eventually("the other key", Duration::from_secs(10), || {
        let request = client
            .get(query.url("/v1/events"))
            .bearer_auth(&other)
            .send();
        async move {
            request
                .await
                .ok()
                .filter(|r| r.status() == 200)?
                .json()
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(body["events"], json!([]), "{body}");
    let ingest_only = env.create_key(&project(&env), &[Scope::Ingest]).await;
    for (bad_key, status) in [("not-a-key-000", 401), (ingest_only.as_str(), 403)] {
        let response = eventually("the refusal", Duration::from_secs(10), || {
            let request = client
                .get(query.url("/v1/events"))
                .bearer_auth(bad_key)
                .send();
            async move { request.await.ok().filter(|r| r.status() == status) }
        })
        .await;
        assert_eq!(response.status(), status);
    }

    gateway.stop().await.unwrap();
    processor.stop().await.unwrap();
    query.stop().await.unwrap();
}

/// A producer that retries through Kafka what it first sent over HTTP, keyed
/// as README's "Writing to Kafka directly" says, has its retries dropped:
/// both copies reach the same partition, where duplicates are found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_written_straight_to_kafka_counts_once() {
    let env = TestEnv::new("crosspath");
    let key = key_of(&env).await;
    let gateway = start_gateway(&env).await;
    gateway.wait_ready().await;
    let processor = start_processor(&env).await;
    let project = project(&env);

    let ids: Vec<String> = (0..24).map(|i| format!("cross-{i}")).collect();
    let events: Vec<Value> = ids
        .iter()
        .map(|id| json!({"event_id": id, "type": "signup"}))
        .collect();
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/events/batch"))
        .bearer_auth(&key)
        .json(&json!({ "events": events }))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 202);

    // The same events again as JSON, from a librdkafka producer set up as
    // README asks (Java clients hash this way by default).
    let producer: FutureProducer = client_config(&env.kafka)
        .expect("client config")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("Kafka producer");
    for id in &ids {
        let value = json!({"event_id": id, "type": "signup", "project_id": project}).to_string();
        let message_key = format!("{project}/{id}");
        let record = FutureRecord::to(&env.kafka.events_topic)
            .key(&message_key)
            .payload(&value);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("the broker acks the retry");
    }

    let group = format!("group_{}", env.id);
    eventually("every message processed", Duration::from_secs(60), || {
        let (env, group) = (&env, &group);
        async move { (env.group_lag(&env.kafka.events_topic, group).await == 0).then_some(()) }
    })
    .await;
    let stored = env
        .query_u64(&format!(
            "SELECT count() FROM events WHERE project_id = '{project}'"
        ))
        .await;
    assert_eq!(stored, ids.len() as u64, "the retries were stored too");
    gateway.stop().await.unwrap();
    processor.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_never_reach_the_topic() {
    let env = TestEnv::new("badinput");
    let key = key_of(&env).await;
    let gateway = start_gateway(&env).await;
    gateway.wait_ready().await;
    let client = reqwest::Client::new();
    let url = gateway.url("/v1/events");

    let (status, body) = post_event(
        &gateway,
        &key,
        &json!({"type": 5, "duration_ms": "slow", "tags": "x"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_event");
    let fields: Vec<&str> = body["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["type", "duration_ms", "tags"], "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("type: must be a string")
    );

    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, body) = send(
        client
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body("{\"type\": "),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, body) = send(client.post(&url).json(&json!({"type": "x"}))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = send(
        client
            .post(&url)
            .bearer_auth("wrong-key-0000")
            .json(&json!({"type": "x"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = send(
        client
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let huge = json!({"type": "x", "properties": {"blob": "a".repeat(100_000)}});
    let (status, body) = send(client.post(&url).bearer_auth(&key).json(&huge)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (status, body) = send(
        client
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(vec![0xFF, 0xFE, b'{']),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_json"))
    );

    // One good event as a fence: the topic holds it and nothing else.
    let (status, _) = post_event(&gateway, &key, &json!({"type": "fence"})).await;
    assert_eq!(status, 202);
    assert_eq!(env.topic_message_count(&env.kafka.events_topic).await, 1);
    gateway.stop().await.unwrap();
}

/// Sends batches of ten events every 50 ms until `stop`, and returns the ids
/// the gateway acknowledged (202), the time of each answer and its status.
async fn steady_send(
    gateway_url: String,
    key: String,
    stop: tokio_util::sync::CancellationToken,
) -> (Vec<String>, Vec<(std::time::Instant, u16)>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (mut acked, mut answers) = (Vec::new(), Vec::new());
    for batch in 0.. {
        if stop.is_cancelled() {
            break;
        }
        let events: Vec<_> = (0..10)
            .map(|n| json!({"event_id": format!("steady-{batch}-{n}"), "type": "steady"}))
            .collect();
        let sent = client
            .post(format!("{gateway_url}/v1/events/batch"))
            .bearer_auth(&key)
            .json(&json!({ "events": events }))
            .send()
            .await;
        let status = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or_default();
                // A 503 lists what the broker did acknowledge before it failed.
                let landed = body["accepted"]
                    .as_array()
                    .or(body["details"]["acknowledged"].as_array())
                    .cloned()
                    .unwrap_or_default();
                acked.extend(
                    landed
                        .iter()
                        .filter_map(|event| event["event_id"].as_str().map(str::to_owned)),
                );
                status
            }
            Err(_) => 0,
        };
        answers.push((std::time::Instant::now(), status));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (acked, answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_under_a_steady_send_loses_nothing_acknowledged() {
    let broker = sluice_testkit::PrivateBroker::start();
    let mut env = TestEnv::new("broker_restart");
    env.kafka.brokers = broker.brokers();
    let key = key_of(&env).await;
    let gateway = start_gateway(&env).await;
    gateway.wait_ready().await;
    let processor = start_processor(&env).await;
    processor.wait_ready().await;

    let stop = tokio_util::sync::CancellationToken::new();
    let sender = tokio::spawn(steady_send(gateway.url(""), key.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart();
    let returned = std::time::Instant::now();
    // Bound: the broker's return to the gateway's first 202.
    const BACK_WITHIN: Duration = Duration::from_secs(30);
    tokio::time::sleep(BACK_WITHIN).await;
    stop.cancel();
    let (acked, answers) = sender.await.unwrap();

    let first_accept = answers
        .iter()
        .find(|(at, status)| *at > returned && *status == 202)
        .map(|(at, _)| at.duration_since(returned));
    let refused = answers.iter().filter(|(_, status)| *status != 202).count();
    eprintln!(
        "{} requests, {refused} not accepted; first 202 {first_accept:?} after the broker returned",
        answers.len()
    );
    let first_accept = first_accept.expect("the gateway accepts again after the broker returns");
    assert!(first_accept < BACK_WITHIN);
    for (_, status) in &answers {
        assert!(
            [202, 503].contains(status),
            "every answer is 202 or 503, never a hang or another error: {status}"
        );
    }
    // The last answers are all 202: the pipeline is back for good.
    assert!(
        answers
            .iter()
            .rev()
            .take(20)
            .all(|(_, status)| *status == 202)
    );

    // Every acknowledged event is in ClickHouse, once.
    let expected = acked.len() as u64;
    assert!(expected > 0);
    eventually(
        "every acknowledged event in ClickHouse",
        Duration::from_secs(90),
        || {
            let env = &env;
            async move {
                let counted = env
                    .query_u64("SELECT count() FROM events FINAL WHERE type = 'steady'")
                    .await;
                (counted >= expected).then_some(())
            }
        },
    )
    .await;
    let stored: Vec<String> = env
        .clickhouse()
        .query("SELECT event_id FROM events FINAL WHERE type = 'steady'")
        .fetch_all()
        .await
        .unwrap();
    let distinct: std::collections::BTreeSet<&String> = stored.iter().collect();
    assert_eq!(stored.len(), distinct.len(), "an event counted twice");
    // Stored may exceed acknowledged (a 503 whose events the broker took
    // after all), never the reverse.
    let missing: Vec<&String> = acked.iter().filter(|id| !distinct.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing from ClickHouse, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    processor.wait_ready().await;
    gateway.wait_ready().await;
}
