//! The rules as a producer meets them: every way an event can be refused,
//! and what is kept of one that is accepted.

use serde_json::json;

use super::*;
use crate::rules;
use crate::time_format::DAY_MS;

const NOW: i64 = 1_700_000_000_000;

fn http_origin() -> Origin<'static> {
    Origin {
        project_id: Some("acme"),
        received_at_ms: NOW,
        client_ip: Some("192.0.2.7"),
        user_agent: Some("curl/8"),
        fallback_event_id: FallbackId::Given("generated".into()),
    }
}

fn errors_of(value: &Value) -> Vec<FieldError> {
    parse_event(value, http_origin(), &Limits::default()).unwrap_err()
}

#[test]
fn accepts_a_full_event_and_enriches_it() {
    let event = parse_event(
        &json!({
            "event_id": "e-1", "type": "page_view", "timestamp": "2023-11-14T22:13:20.000Z",
            "user_id": "u1", "session_id": "s1", "source": "web", "duration_ms": 12.5,
            "status": 200, "tags": ["a", "b"], "properties": {"path": "/home", "n": [1, 2]}
        }),
        http_origin(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(event.event_id, "e-1");
    assert_eq!(event.project_id, "acme");
    assert_eq!(event.timestamp_ms, NOW);
    assert_eq!(event.status.as_deref(), Some("200"));
    assert_eq!(event.properties, r#"{"n":[1,2],"path":"/home"}"#);
    assert_eq!(event.client_ip.as_deref(), Some("192.0.2.7"));
}

#[test]
fn fills_defaults_for_a_minimal_event() {
    let event = parse_event(&json!({"type": "x"}), http_origin(), &Limits::default()).unwrap();
    assert_eq!(event.event_id, "generated");
    assert_eq!(event.timestamp_ms, NOW);
    assert_eq!(event.properties, "{}");
    assert!(event.tags.is_empty());
}

#[test]
fn names_every_bad_field() {
    let errors = errors_of(&json!({
        "type": 7, "duration_ms": -1, "tags": ["ok", 3], "colour": "red"
    }));
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["colour", "type", "duration_ms", "tags[1]"]);
    assert!(errors[1].reason.contains("must be a string, not a number"));
}

#[test]
fn requires_type_and_an_object() {
    assert_eq!(errors_of(&json!({}))[0].field, "type");
    assert_eq!(errors_of(&json!([1]))[0].field, "$");
}

#[test]
fn bounds_event_time_both_ways() {
    let future = errors_of(&json!({"type": "x", "timestamp": NOW + 2 * DAY_MS}));
    assert!(future[0].reason.contains("future"));
    let past = errors_of(&json!({"type": "x", "timestamp": NOW - 31 * DAY_MS}));
    assert!(past[0].reason.contains("past"));
    let garbage = errors_of(&json!({"type": "x", "timestamp": "tomorrow"}));
    assert_eq!(garbage[0].field, "timestamp");
}

#[test]
fn refuses_deep_properties() {
    let mut deep = json!({"leaf": 1});
    for _ in 0..10 {
        deep = json!({ "k": deep });
    }
    let errors = errors_of(&json!({"type": "x", "properties": deep}));
    assert_eq!(errors[0].field, "properties");
    assert!(errors[0].reason.contains("deeper"));
}

#[test]
fn brackets_and_quotes_inside_strings_are_not_structure() {
    let raw = r#"{"a":"[[[[ \\\" {{{{ \\","b":["]]]]"],"c":"\\\\"}"#;
    let limits = |depth| Limits {
        max_property_depth: depth,
        ..Limits::default()
    };
    assert_eq!(
        rules::properties(raw, &limits(2)).unwrap(),
        Cow::<str>::Borrowed(raw)
    );
    assert!(
        rules::properties(raw, &limits(1)).is_err(),
        "the array is level 2"
    );
    let spaced = r#"{ "a" : "x \" y" , "b" : [ 1 ] }"#;
    assert_eq!(
        rules::properties(spaced, &limits(2)).unwrap(),
        r#"{"a":"x \" y","b":[1]}"#
    );
    let pretty = "{\n\t\"é ü\": [ true,\r\n null ],\"\\\\\" : \"\\\" \"\n}";
    assert_eq!(
        rules::properties(pretty, &limits(2)).unwrap(),
        "{\"é ü\":[true,null],\"\\\\\":\"\\\" \"}"
    );
    assert_eq!(rules::string_end(br#"ab\"c"d"#, 0), 6);
    assert_eq!(rules::string_end(br#"ab\"#, 0), 3);
    assert_eq!(rules::string_end(b"abc", 0), 3);
}

#[test]
fn project_comes_from_the_key_or_the_event() {
    let mismatch = errors_of(&json!({"type": "x", "project_id": "other"}));
    assert_eq!(mismatch[0].field, "project_id");

    let mut kafka = http_origin();
    kafka.project_id = None;
    let missing = parse_event(&json!({"type": "x"}), kafka.clone(), &Limits::default());
    assert_eq!(missing.unwrap_err()[0].field, "project_id");
    let named = parse_event(
        &json!({"type": "x", "project_id": "p9"}),
        kafka,
        &Limits::default(),
    );
    assert_eq!(named.unwrap().project_id, "p9");
}

#[test]
fn reads_raw_text_in_one_pass() {
    let text = r#"{ "type" : "caf\u00e9", "properties" : { "a b" : [ 1 , "x \" y" ] },
                   "tags": ["t"], "status": 404, "timestamp": 1699999999000 }"#;
    let event = parse_event_json(text, http_origin(), &Limits::default()).unwrap();
    assert_eq!(event.event_type, "café");
    assert_eq!(event.properties, r#"{"a b":[1,"x \" y"]}"#);
    assert_eq!(event.status.as_deref(), Some("404"));
    assert_eq!(event.timestamp_ms, 1_699_999_999_000);
    let errors = parse_event_json(
        r#"{"type":"a","type":"b"}"#,
        http_origin(),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(errors[0].reason, "appears more than once");
    let wide = format!(
        "{{{}}}",
        (0..30)
            .map(|i| format!(r#""k{i}":1"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let errors = parse_event_json(&wide, http_origin(), &Limits::default()).unwrap_err();
    assert_eq!((errors.len(), errors[0].field.as_str()), (1, "$"));
    let errors = parse_event_json("[1]", http_origin(), &Limits::default()).unwrap_err();
    assert!(errors[0].reason.contains("not an array"));
    let uuid = parse_event_json(
        r#"{"type":"x"}"#,
        Origin {
            fallback_event_id: FallbackId::UuidV7,
            ..http_origin()
        },
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(&uuid.event_id)
            .unwrap()
            .get_version_num(),
        7
    );
}

#[test]
fn a_batch_splits_its_events_in_one_pass_with_the_same_verdicts() {
    let items = [
        json!({"type": "a", "event_id": "e1", "properties": {"x": [1, {"y": "z"}]}, "tags": ["t"]}),
        json!({"type": "b", "status": 404, "duration_ms": 1.5, "user_id": "caf\u{e9}"}),
        json!({"type": 7, "colour": "red"}),
        json!(7),
        json!("text"),
        json!([1, [2]]),
        json!(null),
        json!(true),
        json!({}),
    ];
    let body = Value::Array(items.to_vec()).to_string();
    let raw_events: Vec<RawEvent<'_>> = serde_json::from_str(&body).unwrap();
    assert_eq!(raw_events.len(), items.len());
    for (raw, item) in raw_events.iter().zip(&items) {
        let text = item.to_string();
        let one_pass = validate_raw_event(raw, http_origin(), &Limits::default());
        let alone = validate_event_json(&text, http_origin(), &Limits::default());
        assert_eq!(one_pass, alone, "{text}");
        if item.is_object() {
            assert_eq!(raw.json_len(), text.len(), "{text}");
        }
    }
    let duplicated: RawEvent<'_> = serde_json::from_str(r#"{"type":"a","type":"b"}"#).unwrap();
    let errors = validate_raw_event(&duplicated, http_origin(), &Limits::default());
    assert_eq!(errors.unwrap_err()[0].reason, "appears more than once");
}

/// Any JSON value, nested a few levels, with strings that need escapes.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z\"\\\\/\t\u{1}\u{7f}\u{85}é😀 ]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((field_name(), inner), 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Mostly the event's own field names, sometimes another.
fn field_name() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        4 => proptest::sample::select(KNOWN_FIELDS).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

/// An event-like object: known fields with values of any type.
fn any_event() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let members = || proptest::collection::vec((field_name(), any_json()), 0..8);
    prop_oneof![
        // Valid more often than not: a string type, most fields absent or null.
        4 => (members(), "[a-z\u{e9}\\\\\"]{1,8}").prop_map(|(members, kind)| {
            let mut event: serde_json::Map<String, Value> = members
                .into_iter()
                .filter(|(_, value)| value.is_string() || value.is_null())
                .collect();
            event.insert("type".to_owned(), Value::String(kind));
            Value::Object(event)
        }),
        4 => members().prop_map(|members| Value::Object(members.into_iter().collect())),
        1 => any_json(),
    ]
}

proptest::proptest! {
    #[test]
    fn one_pass_batches_judge_every_event_as_it_would_be_judged_alone(
        events in proptest::collection::vec(any_event(), 1..6),
        pretty in proptest::bool::ANY,
    ) {
        let body = if pretty {
            serde_json::to_string_pretty(&events).unwrap()
        } else {
            serde_json::to_string(&events).unwrap()
        };
        let raw_events: Vec<RawEvent<'_>> = serde_json::from_str(&body).unwrap();
        proptest::prop_assert_eq!(raw_events.len(), events.len());
        for (raw, event) in raw_events.iter().zip(&events) {
            let alone = event.to_string();
            let one_pass = validate_raw_event(raw, http_origin(), &Limits::default());
            let by_itself = validate_event_json(&alone, http_origin(), &Limits::default());
            proptest::prop_assert_eq!(&one_pass, &by_itself, "{}", alone);
            // Escapes undone, nothing lost: the owned event reads the same.
            if let Ok(valid) = one_pass {
                proptest::prop_assert_eq!(
                    Some(valid.event_type.as_ref()),
                    event["type"].as_str()
                );
            }
            // Whitespace inside a field's value counts, between fields not.
            if event.is_object() && !pretty {
                proptest::prop_assert_eq!(raw.json_len(), alone.len());
            } else if event.is_object() {
                proptest::prop_assert!(raw.json_len() >= alone.len());
            }
        }
    }
}

#[test]
fn borrowed_and_owned_events_agree() {
    let text = r#"{"type":"a\"b","event_id":"e","properties":{"k":1},"tags":["x"],"source":"s"}"#;
    let borrowed = validate_event_json(text, http_origin(), &Limits::default()).unwrap();
    assert!(
        matches!(borrowed.properties, Cow::Borrowed(_)),
        "compact properties are not copied"
    );
    assert!(
        matches!(borrowed.event_type, Cow::Owned(_)),
        "escapes are undone"
    );
    let owned = parse_event_json(text, http_origin(), &Limits::default()).unwrap();
    assert_eq!(borrowed.partition_key(), owned.partition_key());
    assert_eq!(
        crate::avro::encode_event(&borrowed),
        crate::avro::encode_event(&owned)
    );
    assert_eq!(borrowed.into_owned(), owned);
    assert_eq!(owned.clone().into_ref().into_owned(), owned);
}

#[test]
fn refuses_control_characters_in_ids() {
    let errors = errors_of(&json!({"type": "bad\u{0}type"}));
    assert_eq!(errors[0].field, "type");
}
