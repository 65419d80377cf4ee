//! `POST /v1/events` and `/v1/events/batch`: per-event results, limits,
//! gzip, hostile bodies, enrichment.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sluice_testkit::TestEnv;
use sluice_testkit::partitioner::java_partition;

use crate::common::{Gateway, accepted_ids, config, ids, now_rfc3339, project};

/// Uploads 100 MB of spaces on a raw socket while reading the answer, as a
/// client does that stops at an early answer; returns the status.
fn status_of_huge_upload(addr: std::net::SocketAddr, key: &str, chunked: bool) -> u16 {
    use std::io::{BufRead, BufReader};
    const SIZE: usize = 100 * 1024 * 1024;
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {SIZE}")
    };
    let head = format!(
        "POST /v1/events/batch HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\n{framing}\r\n\r\n"
    );
    let upload = std::thread::spawn(move || {
        writer.write_all(head.as_bytes())?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..SIZE / chunk.len() {
            if chunked {
                writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                writer.write_all(&chunk)?;
                writer.write_all(b"\r\n")?;
            } else {
                writer.write_all(&chunk)?;
            }
        }
        std::io::Result::Ok(())
    });
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line).unwrap();
    // The upload ends with an error once the gateway closes the connection.
    let _ = upload.join();
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {status_line:?}"))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_for_every_event_and_publishes_only_the_valid_ones() {
    let env = TestEnv::new("gw_batch");
    let gateway = Gateway::start(&env).await;
    let at = now_rfc3339(-5_000);

    let all_valid = json!({"events": [
        {"event_id": "b-1", "type": "click", "timestamp": at, "user_id": "u1", "duration_ms": 12.5},
        {"event_id": "b-2", "type": "view", "tags": ["a"], "properties": {"path": "/x"}},
    ]});
    let answer = gateway.post("/v1/events/batch", &all_valid).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(accepted_ids(&answer.body), ["b-1", "b-2"]);
    assert_eq!(answer.body["rejected"], json!([]));
    assert!(answer.headers.contains_key("ratelimit-remaining"));

    let deep = (0..12).fold(json!(1), |inner, _| json!({"n": inner}));
    let mixed = json!({"events": [
        {"event_id": "m-0", "type": "ok"},
        {"event_id": "m-1"},
        {"event_id": "m-2", "type": "ok", "tags": "not-a-list", "duration_ms": -1},
        {"type": "no-id"},
        {"event_id": "m-4", "type": "big", "properties": {"blob": "x".repeat(40_000)}},
        {"event_id": "m-5", "type": "deep", "properties": deep},
        "not an object",
        {"event_id": "m-7", "type": "future", "timestamp": now_rfc3339(3 * 86_400_000)},
    ]});
    let answer = gateway.post("/v1/events/batch", &mixed).await;
    assert_eq!(answer.status, 207, "{answer:?}");
    let accepted = answer.body["accepted"].as_array().unwrap();
    let indexes: Vec<u64> = accepted
        .iter()
        .map(|a| a["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 3]);
    let generated = accepted[1]["event_id"].as_str().unwrap().to_owned();
    let rejected = answer.body["rejected"].as_array().unwrap();
    let fields = |index: u64| -> Vec<String> {
        rejected
            .iter()
            .find(|r| r["index"] == index)
            .unwrap_or_else(|| panic!("event {index} rejected: {rejected:?}"))["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(fields(1), ["type"]);
    assert_eq!(fields(2), ["duration_ms", "tags"]);
    assert_eq!(fields(4), ["$"]);
    assert_eq!(fields(5), ["properties"]);
    assert_eq!(fields(6), ["$"]);
    assert_eq!(fields(7), ["timestamp"]);
    assert_eq!(rejected.len(), 6);

    let none_valid = json!({"events": [{"type": 1}, {}]});
    let answer = gateway.post("/v1/events/batch", &none_valid).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.body["error"], "invalid_batch");
    assert_eq!(
        answer.body["details"]["rejected"].as_array().unwrap().len(),
        2
    );

    // The topic holds exactly the accepted events, enriched.
    let events = env.topic_events(&env.kafka.events_topic).await;
    let mut expected = vec!["b-1".to_owned(), "b-2".into(), "m-0".into(), generated];
    expected.sort();
    assert_eq!(ids(&events), expected);
    for event in &events {
        assert_eq!(event.project_id, project(&env));
        assert_eq!(event.client_ip.as_deref(), Some("127.0.0.1"));
    }
    let first = events.iter().find(|e| e.event_id == "b-1").unwrap();
    assert_eq!(first.duration_ms, Some(12.5));
    assert_eq!(
        sluice_schemas::time_format::format_rfc3339_ms(first.timestamp_ms),
        at
    );

    // The metrics agree with the answers.
    let metrics = gateway
        .client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sluice_gateway_events_accepted_total 4",
        r#"sluice_gateway_events_rejected_total{reason="invalid_event"} 8"#,
        r#"sluice_gateway_batch_events_count 3"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    gateway.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_in_flight_and_loses_no_acked_event() {
    let env = TestEnv::new("gw_drain");
    let gateway = Gateway::start(&env).await;
    let mut requests = Vec::new();
    for r in 0..20 {
        let events: Vec<Value> = (0..50)
            .map(|i| json!({"event_id": format!("d-{r}-{i}"), "type": "drain"}))
            .collect();
        let request = gateway
            .client
            .post(gateway.url("/v1/events/batch"))
            .bearer_auth(&gateway.key)
            .json(&json!({"events": events}))
            .send();
        requests.push(tokio::spawn(request));
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    gateway.running.stop().await.unwrap();
    let mut acked = Vec::new();
    for request in requests {
        // A request the server had not accepted before it stopped listening
        // fails to connect; one it had accepted is answered in full.
        let Ok(response) = request.await.unwrap() else {
            continue;
        };
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        acked.extend(accepted_ids(&body));
    }
    assert!(!acked.is_empty(), "no request was in flight at shutdown");
    let on_topic = ids(&env.topic_events(&env.kafka.events_topic).await);
    for id in &acked {
        assert!(
            on_topic.contains(id),
            "{id} acknowledged but not on the topic"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_and_hostile_bodies_get_4xx() {
    let env = TestEnv::new("gw_hostile");
    let mut config = config(&env);
    config.ingest.max_batch_events = 10;
    config.ingest.max_batch_bytes = 256 * 1024;
    let gateway = Gateway::start_with(&env, config).await;
    let batch_url = gateway.url("/v1/events/batch");
    let raw = |body: Vec<u8>, content_type: &str| {
        gateway
            .client
            .post(&batch_url)
            .bearer_auth(&gateway.key)
            .header("content-type", content_type)
            .body(body)
    };
    let expect = |answer: crate::common::Answer, status: u16, code: &str| {
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (status, Some(code)),
            "{answer:?}"
        );
    };

    let eleven: Vec<Value> = (0..11).map(|i| json!({"type": format!("t{i}")})).collect();
    expect(
        gateway
            .post("/v1/events/batch", &json!({"events": eleven}))
            .await,
        413,
        "too_many_events",
    );
    expect(
        gateway
            .post("/v1/events/batch", &json!({"events": []}))
            .await,
        400,
        "invalid_request",
    );
    let answer = gateway
        .post("/v1/events/batch", &json!({"evnts": []}))
        .await;
    expect(answer, 400, "invalid_json");
    expect(
        gateway
            .post("/v1/events/batch", &json!([{"type": "x"}]))
            .await,
        400,
        "invalid_json",
    );

    let deep_nesting = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    expect(
        gateway
            .send(raw(deep_nesting.into_bytes(), "application/json"))
            .await,
        413,
        "payload_too_large",
    );
    let nested_in_limit = format!(
        r#"{{"events":[{{"type":"x","properties":{{"a":{}1{}}}}}]}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    // Inside a batch, an event JSON cannot hold is refused alone, with the reason.
    for (body, reason) in [
        (nested_in_limit.into_bytes(), "deeper than 8 levels"),
        (
            br#"{"events":[{"type":"x","duration_ms":1e999}]}"#.to_vec(),
            "between 0 and 1e12",
        ),
    ] {
        let answer = gateway.send(raw(body, "application/json")).await;
        let said = answer.body["details"]["rejected"][0]["errors"][0]["reason"].to_string();
        assert!(said.contains(reason), "{answer:?}");
        expect(answer, 400, "invalid_batch");
    }
    let bad_utf8 = b"{\"events\":[{\"type\":\"\xff\xfe\"}]}".to_vec();
    expect(
        gateway.send(raw(bad_utf8, "application/json")).await,
        400,
        "invalid_json",
    );
    expect(
        gateway.send(raw(b"{}".to_vec(), "text/html")).await,
        415,
        "unsupported_media_type",
    );

    // gzip: honoured, bounded after decompression, and checked for truncation.
    let body =
        serde_json::to_vec(&json!({"events": [{"event_id": "gz-1", "type": "zipped"}]})).unwrap();
    let answer = gateway
        .send(raw(gzip(&body), "application/json").header("content-encoding", "gzip"))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let zipped = gzip(&body);
    let truncated = zipped[..zipped.len() - 8].to_vec();
    expect(
        gateway
            .send(raw(truncated, "application/json").header("content-encoding", "gzip"))
            .await,
        400,
        "invalid_gzip",
    );
    let bomb = gzip(&vec![b' '; 50 * 1024 * 1024]);
    expect(
        gateway
            .send(raw(bomb, "application/json").header("content-encoding", "gzip"))
            .await,
        413,
        "payload_too_large",
    );
    expect(
        gateway
            .send(raw(body.clone(), "application/json").header("content-encoding", "br"))
            .await,
        415,
        "unsupported_encoding",
    );

    // 100 MB, announced or chunked: refused at the limit, never buffered whole.
    let addr = gateway.running.addr;
    let key = gateway.key.clone();
    for chunked in [false, true] {
        let key = key.clone();
        let status =
            tokio::task::spawn_blocking(move || status_of_huge_upload(addr, &key, chunked))
                .await
                .unwrap();
        assert_eq!(status, 413, "chunked: {chunked}");
    }

    // A single event larger than the event limit.
    let big = json!({"type": "x", "properties": {"blob": "a".repeat(40_000)}});
    expect(
        gateway.post("/v1/events", &big).await,
        413,
        "payload_too_large",
    );

    // Only the gzip event reached the topic.
    let events = env.topic_events(&env.kafka.events_topic).await;
    assert_eq!(ids(&events), ["gz-1"]);
    gateway.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let env = TestEnv::new("gw_proxy");
    let untrusting = Gateway::start(&env).await;
    let mut config = config(&env);
    config.ingest.trusted_proxies = vec!["127.0.0.0/8".into()];
    let trusting = Gateway::start_with(&env, config).await;
    for (gateway, id) in [(&untrusting, "p-untrusted"), (&trusting, "p-trusted")] {
        let request = gateway
            .client
            .post(gateway.url("/v1/events"))
            .bearer_auth(&gateway.key)
            .header("x-forwarded-for", "198.51.100.7, 203.0.113.9")
            .header("user-agent", "proxy-test/2")
            .json(&json!({"event_id": id, "type": "x"}));
        assert_eq!(gateway.send(request).await.status, 202);
    }
    let events = env.topic_events(&env.kafka.events_topic).await;
    let ip_of = |id: &str| {
        events
            .iter()
            .find(|e| e.event_id == id)
            .and_then(|e| e.client_ip.clone())
    };
    assert_eq!(ip_of("p-untrusted").as_deref(), Some("127.0.0.1"));
    assert_eq!(ip_of("p-trusted").as_deref(), Some("203.0.113.9"));
    assert!(
        events
            .iter()
            .all(|e| e.user_agent.as_deref() == Some("proxy-test/2"))
    );
}

/// Each event is keyed `project/event_id` and placed by Kafka's own (Java)
/// partitioner, so a direct producer using that key reaches the same
/// partition, and so the same dedup. The record's timestamp is the event's
/// `received_at`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_where_kafkas_partitioner_puts_their_key() {
    let env = TestEnv::new("gw_partitioner");
    let gateway = Gateway::start(&env).await;
    let mut events: Vec<Value> = (0..40)
        .map(|i| json!({"event_id": format!("place-{i}"), "type": "x"}))
        .collect();
    events.push(json!({"event_id": "événement-ß", "type": "x"}));
    events.push(json!({"type": "x"}));
    let answer = gateway
        .post("/v1/events/batch", &json!({ "events": events }))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");

    let records = env.topic_records(&env.kafka.events_topic).await;
    assert_eq!(records.len(), events.len());
    let mut used = std::collections::BTreeSet::new();
    for record in &records {
        let key = format!("{}/{}", record.event.project_id, record.event.event_id);
        assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(record.timestamp_ms, Some(record.event.received_at_ms));
        let partitions = u32::try_from(record.partitions).unwrap();
        let expected = java_partition(key.as_bytes(), partitions);
        assert_eq!(
            u32::try_from(record.partition).unwrap(),
            expected,
            "partition of {key}"
        );
        used.insert(record.partition);
    }
    assert!(used.len() > 1, "42 keys all on one partition: {used:?}");
    gateway.running.stop().await.unwrap();
}
