//! `GET /v1/events`: filters, order, and pages that stay stable while events
//! arrive.

use std::collections::BTreeSet;

use serde_json::Value;
use sluice_schemas::Event;
use sluice_schemas::time_format::now_ms;
use sluice_testkit::TestEnv;

use crate::common::{
    Api, HOUR, MINUTE, all_pages, generate, insert_events, ms, project, property, read_key,
};

fn assert_newest_first(events: &[Value]) {
    let keys: Vec<(i64, String)> = events
        .iter()
        .map(|e| {
            (
                ms(e["timestamp"].as_str().unwrap()),
                e["event_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        keys.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first, no repeats"
    );
}

fn ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_exactly_the_matching_events() {
    let env = TestEnv::new("qfilters");
    env.ensure_schema().await;
    let api = Api::start(&env).await;
    let p = project(&env, "p");
    let now = now_ms();
    let events = generate(&p, 600, now - 3 * HOUR, 3 * HOUR, 7);
    insert_events(&env.clickhouse(), &events).await;
    // An event older than the default 24 hours.
    let old = generate(&p, 1, now - 30 * HOUR, MINUTE, 8);
    insert_events(&env.clickhouse(), &old).await;
    let key = read_key(&env, &api, &p).await;

    type Filter = (&'static str, fn(&Event) -> bool);
    let cases: [Filter; 9] = [
        ("", |_| true),
        ("&type=click", |e| e.event_type == "click"),
        ("&source=web", |e| e.source.as_deref() == Some("web")),
        ("&status=404", |e| e.status.as_deref() == Some("404")),
        ("&user_id=user-7", |e| {
            e.user_id.as_deref() == Some("user-7")
        }),
        ("&session_id=session-9", |e| {
            e.session_id.as_deref() == Some("session-9")
        }),
        ("&tag=beta", |e| e.tags.iter().any(|t| t == "beta")),
        ("&property.plan=pro&property.tier=2", |e| {
            property(e, "plan") == "pro" && property(e, "tier") == "2"
        }),
        ("&type=signup&source=ios&status=200", |e| {
            e.event_type == "signup"
                && e.source.as_deref() == Some("ios")
                && e.status.as_deref() == Some("200")
        }),
    ];
    for (filter, keep) in cases {
        let got = all_pages(&api, &key, &format!("/v1/events?limit=97{filter}")).await;
        assert_newest_first(&got);
        let expected: BTreeSet<String> = events
            .iter()
            .filter(|e| keep(e))
            .map(|e| e.event_id.clone())
            .collect();
        assert!(!expected.is_empty(), "{filter} selects something");
        assert_eq!(ids(&got), expected, "filter {filter:?}");
    }
    // An explicit range reaches the old event; RFC 3339 with an offset works.
    let from =
        sluice_schemas::time_format::format_rfc3339_ms(now - 31 * HOUR).replace('Z', "%2B00:00");
    let got = all_pages(&api, &key, &format!("/v1/events?limit=1000&from={from}")).await;
    assert_eq!(got.len(), 601);
    let first = api.get_ok("/v1/events?limit=1", &key).await;
    assert!(first["events"][0]["properties"]["plan"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_stay_stable_while_events_arrive() {
    let env = TestEnv::new("qpages");
    env.ensure_schema().await;
    let api = Api::start(&env).await;
    let p = project(&env, "p");
    let now = now_ms();
    let mut events = generate(&p, 400, now - 2 * HOUR, HOUR, 11);
    // Ties on the timestamp are broken by event id.
    for event in events.iter_mut().take(30) {
        event.timestamp_ms = now - 90 * MINUTE;
    }
    insert_events(&env.clickhouse(), &events).await;
    let key = read_key(&env, &api, &p).await;

    let clickhouse = env.clickhouse();
    let replays = events.clone();
    let writer = tokio::spawn(async move {
        for round in 0..20u64 {
            // Newer events, and replayed copies of paged ones.
            let newer = generate(
                &replays[0].project_id,
                20,
                now - 10 * MINUTE,
                5 * MINUTE,
                100 + round,
            );
            insert_events(&clickhouse, &newer).await;
            insert_events(
                &clickhouse,
                &replays[(round as usize * 20)..(round as usize * 20 + 20)],
            )
            .await;
        }
    });
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let url = match &cursor {
            Some(cursor) => format!("/v1/events?limit=17&cursor={cursor}"),
            None => "/v1/events?limit=17".to_owned(),
        };
        let page = api.get_ok(&url, &key).await;
        paged.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    // Newer events may lead the first pages (they arrived before the cursor
    // passed them); nothing ever repeats, and every older event shows once.
    assert_newest_first(&paged);
    paged.retain(|e| ms(e["timestamp"].as_str().unwrap()) < now - HOUR);
    let expected: BTreeSet<String> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(paged.len(), expected.len(), "each event exactly once");
    assert_eq!(ids(&paged), expected);
}

/// Rows written some other way than through the processor (an older
/// version, a hand-made INSERT) still read back: a number no float can
/// hold as it was stored, text that is not JSON as a string; never `null`
/// in place of an event, on the events page or in any export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_rows_read_back_as_stored_even_where_no_float_holds_them() {
    let env = TestEnv::new("qunreadable");
    env.ensure_schema().await;
    let api = Api::start(&env).await;
    let p = project(&env, "p");
    // (The key is checked by reading the events, which a tolerant reader
    // must do once these rows are in.)
    let key = read_key(&env, &api, &p).await;
    let mut events = generate(&p, 3, now_ms() - HOUR, MINUTE, 11);
    let huge = format!(r#"{{"n":{}}}"#, "7".repeat(5000));
    let stored = [
        r#"{"x":1e999,"y":-1e400}"#.to_owned(),
        huge,
        "not json".to_owned(),
    ];
    for (event, properties) in events.iter_mut().zip(&stored) {
        event.properties = properties.clone();
    }
    insert_events(&env.clickhouse(), &events).await;

    let page = api.get("/v1/events?limit=10", &key).await;
    assert_eq!(page.status, 200, "{}", page.text);
    for format in ["json", "ndjson", "csv"] {
        let export = api
            .get(&format!("/v1/export/events?format={format}"), &key)
            .await;
        assert_eq!(export.status, 200, "{format}: {}", export.text);
        if format != "csv" {
            // (CSV doubles the quotes inside the cell.)
            for properties in &stored[..2] {
                assert!(export.text.contains(properties.as_str()), "{format}");
            }
        }
    }
    for properties in &stored[..2] {
        assert!(page.text.contains(properties.as_str()), "{properties}");
    }
    // Each event is an object, not `null`; the one that is not JSON has its
    // text as a string. (Parsed with a tolerant reader: 1e999 is valid JSON
    // text that serde_json refuses to hold.)
    let tolerant = page.text.replace("1e999", "1").replace("-1e400", "1");
    let tolerant = tolerant.replace(&"7".repeat(5000), "7");
    let body: Value = serde_json::from_str(&tolerant).unwrap();
    let read = body["events"].as_array().unwrap();
    assert_eq!(read.len(), 3, "{body}");
    assert!(read.iter().all(Value::is_object), "{body}");
    assert!(
        read.iter().any(|event| event["properties"] == "not json"),
        "{body}"
    );
}
