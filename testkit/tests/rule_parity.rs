//! One table of rules, three ways in: each case is refused over HTTP
//! (`POST /v1/events`: 400 naming the field) and, written straight to the
//! events topic as JSON or as Avro, goes to the dead-letter topic with a
//! reason naming the same field; nothing of it reaches ClickHouse. The same
//! events without the fault are stored.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde_json::{Value, json};
use sluice_schemas::Event;
use sluice_schemas::avro::encode_event;
use sluice_schemas::time_format::now_ms;
use sluice_testkit::{TestEnv, eventually};

use common::{key_of, project, start_gateway, start_processor};

const DAY_MS: i64 = 86_400_000;

/// A rule, broken the same way in JSON and in Avro.
struct Case {
    name: &'static str,
    /// The field the refusal must name.
    field: &'static str,
    /// What the JSON event gets (over HTTP; straight to Kafka with
    /// `project_id` too).
    json: fn(&mut serde_json::Map<String, Value>),
    /// What the Avro event gets.
    avro: fn(&mut Event),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "event_id too long",
            field: "event_id",
            json: |e| {
                e.insert("event_id".into(), "e".repeat(129).into());
            },
            avro: |e| e.event_id = "e".repeat(129),
        },
        Case {
            name: "type with a control character",
            field: "type",
            json: |e| {
                e.insert("type".into(), "a\u{7}b".into());
            },
            avro: |e| e.event_type = "a\u{7}b".into(),
        },
        Case {
            name: "user_id too long",
            field: "user_id",
            json: |e| {
                e.insert("user_id".into(), "u".repeat(1025).into());
            },
            avro: |e| e.user_id = Some("u".repeat(1025)),
        },
        Case {
            name: "status too long",
            field: "status",
            json: |e| {
                e.insert("status".into(), "s".repeat(1025).into());
            },
            avro: |e| e.status = Some("s".repeat(1025)),
        },
        Case {
            name: "timestamp 40 days old",
            field: "timestamp",
            json: |e| {
                e.insert("timestamp".into(), (now_ms() - 40 * DAY_MS).into());
            },
            avro: |e| e.timestamp_ms = e.received_at_ms - 40 * DAY_MS,
        },
        Case {
            name: "timestamp two days ahead",
            field: "timestamp",
            json: |e| {
                e.insert("timestamp".into(), (now_ms() + 2 * DAY_MS).into());
            },
            avro: |e| e.timestamp_ms = e.received_at_ms + 2 * DAY_MS,
        },
        Case {
            name: "negative duration",
            field: "duration_ms",
            json: |e| {
                e.insert("duration_ms".into(), (-5).into());
            },
            avro: |e| e.duration_ms = Some(-5.0),
        },
        Case {
            name: "too many tags",
            field: "tags",
            json: |e| {
                e.insert("tags".into(), json!(vec!["t"; 65]));
            },
            avro: |e| e.tags = vec!["t".into(); 65],
        },
        Case {
            name: "an empty tag",
            field: "tags[1]",
            json: |e| {
                e.insert("tags".into(), json!(["a", ""]));
            },
            avro: |e| e.tags = vec!["a".into(), String::new()],
        },
        Case {
            name: "properties nested too deep",
            field: "properties",
            json: |e| {
                e.insert(
                    "properties".into(),
                    json!({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}),
                );
            },
            avro: |e| {
                e.properties = r#"{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}"#.into()
            },
        },
        Case {
            name: "a number a float cannot hold",
            field: "properties.price",
            json: |_| {},
            avro: |e| e.properties = r#"{"price":1e999}"#.into(),
        },
        Case {
            name: "a project id the admin API refuses",
            field: "project_id",
            json: |e| {
                e.insert("project_id".into(), "bad project!".into());
            },
            avro: |e| e.project_id = "bad project!".into(),
        },
    ]
}

/// The JSON text of a case's event: serde_json cannot hold 1e999, so that
/// case is spliced in as text.
fn json_text(case: &Case, fields: &serde_json::Map<String, Value>) -> String {
    let text = Value::Object(fields.clone()).to_string();
    if case.field == "properties.price" {
        text.replacen('{', r#"{"properties":{"price":1e999},"#, 1)
    } else {
        text
    }
}

fn base_json(event_id: &str) -> serde_json::Map<String, Value> {
    let Value::Object(fields) = json!({
        "event_id": event_id,
        "type": "parity",
        "timestamp": now_ms() - 1_000,
        "user_id": "u1",
    }) else {
        unreachable!()
    };
    fields
}

fn base_avro(project: &str, event_id: &str) -> Event {
    let now = now_ms();
    let mut event = Event::minimal(event_id, project, "parity", now - 1_000, now);
    event.user_id = Some("u1".into());
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_holds_over_http_and_for_json_and_avro_straight_to_kafka() {
    let env = TestEnv::new("rule_parity");
    let project = project(&env);
    let key = key_of(&env).await;
    let gateway = start_gateway(&env).await;
    let processor = start_processor(&env).await;
    gateway.wait_ready().await;
    processor.wait_ready().await;
    let client = reqwest::Client::new();
    let producer = env.producer();
    let cases = cases();

    for (n, case) in cases.iter().enumerate() {
        // Over HTTP: refused, naming the field.
        let mut fields = base_json(&format!("http-{n}"));
        (case.json)(&mut fields);
        let answer = client
            .post(gateway.url("/v1/events"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(json_text(case, &fields))
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        assert_eq!(status, 400, "{}: {body}", case.name);
        let named = body["details"]["fields"]
            .as_array()
            .is_some_and(|fields| fields.iter().any(|f| f["field"] == case.field));
        assert!(
            named,
            "{}: the HTTP refusal names {}: {body}",
            case.name, case.field
        );

        // Straight to Kafka, as JSON and as Avro.
        let mut fields = base_json(&format!("json-{n}"));
        fields.insert("project_id".into(), project.clone().into());
        (case.json)(&mut fields);
        let mut event = base_avro(&project, &format!("avro-{n}"));
        (case.avro)(&mut event);
        for (kind, value) in [
            ("json", json_text(case, &fields).into_bytes()),
            ("avro", encode_event(&event)),
        ] {
            producer
                .send(
                    FutureRecord::to(&env.kafka.events_topic)
                        .key(&format!("{project}/{kind}-{n}"))
                        .payload(&value),
                    Timeout::Never,
                )
                .await
                .expect("broker acks");
        }
    }
    // The same events without a fault are stored, by every path.
    let mut fields = base_json("http-ok");
    fields.insert("properties".into(), json!({"price": 1.5e300}));
    let answer = client
        .post(gateway.url("/v1/events"))
        .bearer_auth(&key)
        .json(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let mut fields = base_json("json-ok");
    fields.insert("project_id".into(), project.clone().into());
    let avro = encode_event(&base_avro(&project, "avro-ok"));
    for value in [Value::Object(fields).to_string().into_bytes(), avro] {
        producer
            .send(
                FutureRecord::to(&env.kafka.events_topic)
                    .key(&format!("{project}/ok"))
                    .payload(&value),
                Timeout::Never,
            )
            .await
            .expect("broker acks");
    }

    // Every faulty message is a dead letter naming the field.
    let reasons: BTreeMap<String, String> = env
        .dead_letters(2 * cases.len())
        .await
        .into_iter()
        .map(|letter| (letter.key.clone(), letter.header("sluice.error").to_owned()))
        .collect();
    for (n, case) in cases.iter().enumerate() {
        for kind in ["json", "avro"] {
            let reason = &reasons[&format!("{project}/{kind}-{n}")];
            assert!(
                reason.contains(&format!("{}: ", case.field)),
                "{} as {kind} straight to Kafka: the dead letter names {}: {reason}",
                case.name,
                case.field
            );
        }
    }
    let stored = eventually("the faultless events", Duration::from_secs(60), || {
        let env = &env;
        async move {
            let stored = env.query_u64("SELECT count() FROM events FINAL").await;
            (stored >= 3).then_some(stored)
        }
    })
    .await;
    assert_eq!(stored, 3, "only the faultless events are stored");
}
