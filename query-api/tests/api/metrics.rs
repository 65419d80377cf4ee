//! `GET /v1/metrics` against ground truth computed here from the same
//! generated events: from raw events (exact), and from rollups that the real
//! pipeline wrote (within the stated bounds).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_query_api::config::QuerySettings;
use sluice_runtime::keys::Scope;
use sluice_runtime::rollups::{PropertyRollupRow, RollupRow};
use sluice_schemas::Event;
use sluice_schemas::rollup::{Aggregate, Contribution, WindowKey};
use sluice_schemas::time_format::{DAY_MS, format_rfc3339_ms, now_ms};
use sluice_testkit::{Running, TestEnv, eventually};

use crate::common::{
    ALL_METRICS, Api, HOUR, MINUTE, check_rows, generate, insert_events, ms, project, property,
    read_key, send_through_gateway, start_gateway, start_processor, truth,
};

fn by(dimensions: &'static [&'static str]) -> impl Fn(&Event) -> Vec<String> {
    move |event| {
        dimensions
            .iter()
            .map(|dimension| match *dimension {
                "type" => event.event_type.clone(),
                "source" => event.source.clone().unwrap_or_default(),
                "status" => event.status.clone().unwrap_or_default(),
                key => property(event, key.trim_start_matches("property.")),
            })
            .collect()
    }
}

fn buckets(body: &Value) -> Vec<(i64, u64)> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                ms(row["bucket"].as_str().unwrap()),
                row["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_metrics_match_ground_truth() {
    let env = TestEnv::new("qraw");
    env.ensure_schema().await;
    let api = Api::start(&env).await;
    let p = project(&env, "p");
    let base = (now_ms() / DAY_MS - 2) * DAY_MS;
    let mut events = generate(&p, 3_000, base, 26 * HOUR, 21);
    for (index, at) in [base + HOUR - 1, base + HOUR, base + 2 * HOUR - 1]
        .into_iter()
        .enumerate()
    {
        let mut edge = events[index].clone();
        edge.event_id = format!("edge-{index}");
        edge.event_type = "edge".into();
        edge.timestamp_ms = at;
        events.push(edge);
    }
    insert_events(&env.clickhouse(), &events).await;
    let key = read_key(&env, &api, &p).await;
    let range = format!("from={base}&to={}", base + 26 * HOUR);
    let metrics = format!("{range}&metrics={ALL_METRICS}");

    let body = api
        .get_ok(
            &format!("/v1/metrics?{metrics}&interval=15m&group_by=type,status&exact=true"),
            &key,
        )
        .await;
    assert_eq!(body["source"], "raw");
    assert_eq!(body["error_bounds"], json!({}));
    check_rows(
        &body,
        &["type", "status"],
        &truth(&events, 15 * MINUTE, 0, by(&["type", "status"]), |_| true),
        true,
    );

    // A property group-by; hours start at :30 at +05:30.
    let body = api
        .get_ok(
            &format!(
                "/v1/metrics?{metrics}&interval=1h&utc_offset=%2B05:30&group_by=property.plan&exact=true"
            ),
            &key,
        )
        .await;
    assert_eq!(body["source"], "raw");
    assert_eq!(ms(body["from"].as_str().unwrap()), base - 30 * MINUTE);
    let offset = 330 * MINUTE;
    check_rows(
        &body,
        &["property.plan"],
        &truth(&events, HOUR, offset, by(&["property.plan"]), |_| true),
        true,
    );

    // Days of a negative offset, with tag and property filters.
    let body = api
        .get_ok(&format!("/v1/metrics?{metrics}&interval=1d&utc_offset=-08:00&group_by=source&tag=beta&property.tier=1"), &key)
        .await;
    let keep = |e: &Event| e.tags.iter().any(|t| t == "beta") && property(e, "tier") == "1";
    check_rows(
        &body,
        &["source"],
        &truth(&events, DAY_MS, -8 * HOUR, by(&["source"]), keep),
        true,
    );

    let body = api
        .get_ok(
            &format!("/v1/metrics?{metrics}&interval=5m&user_id=user-3&session_id=session-4"),
            &key,
        )
        .await;
    let keep = |e: &Event| {
        e.user_id.as_deref() == Some("user-3") && e.session_id.as_deref() == Some("session-4")
    };
    check_rows(
        &body,
        &[],
        &truth(&events, 5 * MINUTE, 0, by(&[]), keep),
        true,
    );

    // Bucket edges, stated by hand: [start, end) in milliseconds.
    let edges = format!("/v1/metrics?{range}&type=edge&interval=1h&exact=true");
    assert_eq!(
        buckets(&api.get_ok(&edges, &key).await),
        [(base, 1), (base + HOUR, 2)]
    );
    // At +00:30 local hours start at half past, UTC.
    let shifted = api
        .get_ok(&format!("{edges}&utc_offset=%2B00:30"), &key)
        .await;
    assert_eq!(
        buckets(&shifted),
        [(base + 30 * MINUTE, 2), (base + 90 * MINUTE, 1)]
    );

    // Having, order and limit.
    let body = api
        .get_ok(&format!("/v1/metrics?{range}&interval=1d&group_by=type&metrics=count,p50_duration&having=count>5&order_by=-count,type&limit=3&exact=true"), &key)
        .await;
    let mut expected: Vec<(u64, String, i64)> = truth(&events, DAY_MS, 0, by(&["type"]), |_| true)
        .into_iter()
        .filter(|(_, cell)| cell.count > 5)
        .map(|((bucket, group), cell)| (cell.count, group[0].clone(), bucket))
        .collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    expected.truncate(3);
    let got: Vec<(u64, String, i64)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["count"].as_u64().unwrap(),
                row["type"].as_str().unwrap().to_owned(),
                ms(row["bucket"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        body["columns"],
        json!(["bucket", "type", "count", "p50_duration"])
    );
}

/// The whole pipeline on a test's topics and database: a gateway, a
/// processor and a query API that reads rollups for buckets older than
/// 20 s; a project with a key to send and one to read.
struct Pipeline {
    gateway: Running,
    processor: Running,
    api: Api,
    project: String,
    ingest: String,
    key: String,
}

impl Pipeline {
    async fn start(env: &TestEnv) -> Self {
        let gateway = start_gateway(env).await;
        let processor = start_processor(env).await;
        let api = Api::start_with(
            env,
            QuerySettings {
                rollup_delay_ms: 20_000,
                ..QuerySettings::default()
            },
        )
        .await;
        let project = project(env, "p");
        let ingest = env.create_key(&project, &[Scope::Ingest]).await;
        let key = read_key(env, &api, &project).await;
        Self {
            gateway,
            processor,
            api,
            project,
            ingest,
            key,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_from_the_pipeline_match_ground_truth() {
    let env = TestEnv::new("qrollups");
    let Pipeline {
        gateway,
        processor,
        api,
        project: p,
        ingest,
        key,
    } = Pipeline::start(&env).await;
    let now = now_ms();
    let start = (now / HOUR - 3) * HOUR;
    let old = generate(&p, 1_500, start, 2 * HOUR, 31);
    let recent = generate(&p, 60, now - 2_000, 1_000, 32);
    send_through_gateway(&gateway, &ingest, &old).await;
    send_through_gateway(&gateway, &ingest, &recent).await;
    // Client retries count once, in raw events and rollups alike.
    send_through_gateway(&gateway, &ingest, &old[..20]).await;
    let old_end = start + 2 * HOUR;
    let stored = format!(
        "SELECT toUInt64(sum(count)) FROM rollups FINAL WHERE minute < toDateTime({})",
        old_end / 1000
    );
    eventually(
        "the rollups of the old events",
        Duration::from_secs(60),
        || async { (env.query_u64(&stored).await == 1_500).then_some(()) },
    )
    .await;
    eventually("every raw event", Duration::from_secs(60), || async {
        (env.query_u64("SELECT count() FROM events FINAL").await == 1_560).then_some(())
    })
    .await;

    let metrics = format!("metrics={ALL_METRICS}");
    let old_range = format!("from={start}&to={old_end}");
    let dimensions = ["type", "source", "status"];
    let path = format!("/v1/metrics?{old_range}&{metrics}&interval=1m&group_by=type,source,status");
    let body = api.get_ok(&path, &key).await;
    assert_eq!(body["source"], "rollups", "{body}");
    assert_eq!(
        body["error_bounds"]["unique_users"]["kind"],
        "relative_standard_error"
    );
    assert_eq!(body["error_bounds"]["p99_duration"]["value"], 0.01);
    let minutes = truth(&old, MINUTE, 0, by(&["type", "source", "status"]), |_| true);
    check_rows(&body, &dimensions, &minutes, false);
    let exact = api.get_ok(&format!("{path}&exact=true"), &key).await;
    assert_eq!(exact["source"], "raw");
    check_rows(&exact, &dimensions, &minutes, true);

    // Without uniques and percentiles, ClickHouse adds the rollups up.
    let scalars = "count,sum_duration,avg_duration,min_duration,max_duration,dominant_status";
    let body = api
        .get_ok(&format!("/v1/metrics?{old_range}&metrics={scalars}&interval=5m&group_by=source&utc_offset=%2B05:45"), &key)
        .await;
    assert_eq!(body["source"], "rollups");
    assert_eq!(body["error_bounds"], json!({}));
    let by_source = truth(&old, 5 * MINUTE, 345 * MINUTE, by(&["source"]), |_| true);
    check_rows(&body, &["source"], &by_source, true);
    let body = api
        .get_ok(
            &format!("/v1/metrics?{old_range}&interval=1h&status=404&type=click"),
            &key,
        )
        .await;
    let keep = |e: &Event| e.status.as_deref() == Some("404") && e.event_type == "click";
    check_rows(&body, &[], &truth(&old, HOUR, 0, by(&[]), keep), true);
    // A group-by on the property the processor rolls up, from rollups; on
    // another, from raw events.
    for (group_by, answered_from) in [("type,property.plan", "rollups"), ("property.tier", "raw")] {
        let body = api
            .get_ok(
                &format!("/v1/metrics?{old_range}&{metrics}&interval=15m&group_by={group_by}"),
                &key,
            )
            .await;
        assert_eq!(body["source"], answered_from, "{group_by}: {body}");
        let dimensions: Vec<&'static str> = group_by.split(',').collect();
        let expected = truth(&old, 15 * MINUTE, 0, by(dimensions.clone().leak()), |_| {
            true
        });
        check_rows(&body, &dimensions, &expected, answered_from == "raw");
    }
    // A source filter, from rollups and, to the same numbers, from raw events.
    let keep = |e: &Event| e.source.as_deref() == Some("ios");
    let ios = truth(&old, HOUR, 0, by(&[]), keep);
    for (path, answered_from) in [("", "rollups"), ("&exact=true", "raw")] {
        let body = api
            .get_ok(
                &format!("/v1/metrics?{old_range}&interval=1h&source=ios{path}"),
                &key,
            )
            .await;
        assert_eq!(body["source"], answered_from, "{body}");
        check_rows(&body, &[], &ios, true);
    }

    // Up to now: rollups for the old hours, raw events for the newest.
    let all: Vec<Event> = old.iter().chain(&recent).cloned().collect();
    let body = api
        .get_ok(
            &format!(
                "/v1/metrics?from={start}&to={}&{metrics}&interval=1h&group_by=status",
                now_ms() + 1
            ),
            &key,
        )
        .await;
    assert_eq!(body["source"], "rollups+raw", "{body}");
    let raw_from = ms(body["raw_from"].as_str().unwrap());
    assert!(
        raw_from > old_end - HOUR && raw_from <= now,
        "{}",
        format_rfc3339_ms(raw_from)
    );
    check_rows(
        &body,
        &["status"],
        &truth(&all, HOUR, 0, by(&["status"]), |_| true),
        false,
    );

    // One daily bucket taking both: its closed minutes from rollups, its
    // newest from raw events. The UTC offset puts now near local noon, so
    // the old hours and now share a local day.
    let minute_of_day = now.rem_euclid(DAY_MS) / MINUTE;
    let offset_minutes = (12 * 60 - minute_of_day + 720).rem_euclid(1440) - 720;
    let sign = if offset_minutes < 0 { "-" } else { "%2B" };
    let utc_offset = format!(
        "{sign}{:02}:{:02}",
        offset_minutes.abs() / 60,
        offset_minutes.abs() % 60
    );
    let body = api
        .get_ok(
            &format!(
                "/v1/metrics?from={start}&to={}&{metrics}&interval=1d&utc_offset={utc_offset}&group_by=status",
                now_ms() + 1
            ),
            &key,
        )
        .await;
    assert_eq!(body["source"], "rollups+raw", "{body}");
    let daily = truth(
        &all,
        DAY_MS,
        offset_minutes * MINUTE,
        by(&["status"]),
        |_| true,
    );
    assert_eq!(
        body["rows"].as_array().unwrap().len(),
        daily.len(),
        "one bucket per status: {body}"
    );
    check_rows(&body, &["status"], &daily, false);

    drop(gateway);
    processor.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_count_once_whether_or_not_days_are_merged() {
    let env = TestEnv::new("qcopies");
    env.ensure_schema().await;
    let api = Api::start(&env).await;
    let p = project(&env, "p");
    let base = (now_ms() / DAY_MS - 3) * DAY_MS;
    let events = generate(&p, 2_000, base, 2 * DAY_MS, 61);
    let clickhouse = env.clickhouse();
    insert_events(&clickhouse, &events).await;
    // Replayed copies in parts of their own.
    insert_events(&clickhouse, &events[..300]).await;
    let key = read_key(&env, &api, &p).await;
    let path = format!(
        "/v1/metrics?from={base}&to={}&interval=1d&group_by=type&metrics={ALL_METRICS}&exact=true",
        base + 2 * DAY_MS
    );
    let expected = truth(&events, DAY_MS, 0, by(&["type"]), |_| true);
    let newest: Vec<String> = {
        let mut sorted = events.clone();
        sorted.sort_by(|a, b| (b.timestamp_ms, &b.event_id).cmp(&(a.timestamp_ms, &a.event_id)));
        sorted.iter().take(50).map(|e| e.event_id.clone()).collect()
    };
    let page_ids = |page: &Value| -> Vec<String> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let events_path = format!("/v1/events?from={base}&to={}&limit=50", base + 2 * DAY_MS);
    for stage in ["unmerged", "merged", "merged plus new copies"] {
        match stage {
            "merged" => env.optimize_final("events").await,
            "merged plus new copies" => insert_events(&clickhouse, &events[1_000..1_200]).await,
            _ => {}
        }
        check_rows(&api.get_ok(&path, &key).await, &["type"], &expected, true);
        assert_eq!(
            page_ids(&api.get_ok(&events_path, &key).await),
            newest,
            "{stage}"
        );
    }
}

/// The one-minute windows of `events`, each split by the value of
/// `property` when one is named, with their position as `seq`.
fn windows_of(events: &[Event], property: Option<&str>) -> Vec<(WindowKey, String, Aggregate)> {
    let mut windows: BTreeMap<(WindowKey, String), Aggregate> = BTreeMap::new();
    for event in events {
        let key = WindowKey::of_event(event);
        let value = property.map_or_else(String::new, |key| crate::common::property(event, key));
        windows.entry((key, value)).or_default().add(Contribution {
            user_id: event.user_id.as_deref(),
            session_id: event.session_id.as_deref(),
            duration_ms: event.duration_ms,
        });
    }
    windows
        .into_iter()
        .map(|((key, value), aggregate)| (key, value, aggregate))
        .collect()
}

/// Rollup rows as the processor would write them for `events`: one row per
/// one-minute window (partition 0, `seq` its position).
fn rollup_rows(events: &[Event]) -> Vec<RollupRow> {
    windows_of(events, None)
        .iter()
        .enumerate()
        .map(|(seq, (key, _, aggregate))| RollupRow::new(key, aggregate, 0, seq as u64))
        .collect()
}

/// `property_rollups` rows for `key` as the processor would write them.
fn property_rollup_rows(events: &[Event], key: &str) -> Vec<PropertyRollupRow> {
    windows_of(events, Some(key))
        .into_iter()
        .enumerate()
        .map(|(seq, (window, value, aggregate))| {
            PropertyRollupRow::new(&window, &aggregate, 0, seq as u64, key.into(), value)
        })
        .collect()
}

async fn insert_rows<T>(client: &clickhouse::Client, table: &str, rows: &[T])
where
    T: clickhouse::Row + clickhouse::RowOwned + clickhouse::RowWrite,
{
    let mut insert = client.insert::<T>(table).await.unwrap();
    for row in rows {
        insert.write(row).await.unwrap();
    }
    insert.end().await.unwrap();
}

async fn insert_rollups(client: &clickhouse::Client, rows: &[RollupRow]) {
    insert_rows(client, "rollups", rows).await;
}

/// A group-by on a property comes from `property_rollups` where the key is
/// rolled up over the whole range, and from raw events where it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_group_bys_come_from_rollups_where_they_cover() {
    let env = TestEnv::new("qprops");
    env.ensure_schema().await;
    let api = Api::start(&env).await;
    let p = project(&env, "p");
    let base = (now_ms() / DAY_MS - 3) * DAY_MS;
    let rolled = generate(&p, 1_500, base, DAY_MS, 81);
    let not_rolled = generate(&p, 300, base + DAY_MS, DAY_MS, 82);
    let all: Vec<Event> = rolled.iter().chain(&not_rolled).cloned().collect();
    let clickhouse = env.clickhouse();
    insert_events(&clickhouse, &all).await;
    insert_rollups(&clickhouse, &rollup_rows(&all)).await;
    // `plan` is rolled up on the first day only, as if the processor was
    // told to roll it up then told otherwise.
    insert_rows(
        &clickhouse,
        "property_rollups",
        &property_rollup_rows(&rolled, "plan"),
    )
    .await;
    let key = read_key(&env, &api, &p).await;
    let first_day = format!("from={base}&to={}", base + DAY_MS);
    let both_days = format!("from={base}&to={}", base + 2 * DAY_MS);
    let scalars = "count,sum_duration,avg_duration,min_duration,max_duration,dominant_status";
    for (range, group_by, metrics, answered_from, events) in [
        (&first_day, "property.plan", ALL_METRICS, "rollups", &rolled),
        (
            &first_day,
            "type,property.plan",
            scalars,
            "rollups",
            &rolled,
        ),
        (&first_day, "property.tier", scalars, "raw", &rolled),
        (&both_days, "property.plan", ALL_METRICS, "raw", &all),
        (&both_days, "property.plan,status", scalars, "raw", &all),
    ] {
        let path = format!("/v1/metrics?{range}&interval=1h&group_by={group_by}&metrics={metrics}");
        let body = api.get_ok(&path, &key).await;
        assert_eq!(body["source"], answered_from, "{path}: {body}");
        let dimensions: Vec<&'static str> = match group_by {
            "property.plan" => vec!["property.plan"],
            "type,property.plan" => vec!["type", "property.plan"],
            "property.tier" => vec!["property.tier"],
            _ => vec!["property.plan", "status"],
        };
        let expected = truth(events, HOUR, 0, by(dimensions.clone().leak()), |_| true);
        let exact = answered_from == "raw" || metrics == scalars;
        check_rows(&body, &dimensions, &expected, exact);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_copies_count_once_whether_or_not_days_are_merged() {
    let env = TestEnv::new("qrcopies");
    env.ensure_schema().await;
    let api = Api::start(&env).await;
    let p = project(&env, "p");
    let base = (now_ms() / DAY_MS - 3) * DAY_MS;
    let events = generate(&p, 2_000, base, 2 * DAY_MS, 71);
    let rows = rollup_rows(&events);
    let clickhouse = env.clickhouse();
    // One insert: a single unmerged part per day, read without FINAL.
    insert_rollups(&clickhouse, &rows).await;
    let key = read_key(&env, &api, &p).await;
    let scalars = "count,sum_duration,min_duration,max_duration,dominant_status";
    let path = format!(
        "/v1/metrics?from={base}&to={}&interval=1h&group_by=type&metrics={scalars}",
        base + 2 * DAY_MS
    );
    let expected = truth(&events, HOUR, 0, by(&["type"]), |_| true);
    for stage in [
        "one insert",
        "replayed copies",
        "merged",
        "merged plus new copies",
    ] {
        match stage {
            "replayed copies" => insert_rollups(&clickhouse, &rows[..300]).await,
            "merged" => env.optimize_final("rollups").await,
            "merged plus new copies" => insert_rollups(&clickhouse, &rows[500..900]).await,
            _ => {}
        }
        let body = api.get_ok(&path, &key).await;
        assert_eq!(body["source"], "rollups", "{stage}: {body}");
        check_rows(&body, &["type"], &expected, true);
    }
}

/// Small unique counts from rollups are exact: `user-82` and `user-357`
/// share a HyperLogLog register (of 2^14), so the old sketch counted them
/// as one; so are 40 users in one minute, and a day of both merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_unique_counts_from_rollups_are_exact() {
    let env = TestEnv::new("qsmall_uniques");
    let Pipeline {
        gateway,
        processor,
        api,
        project: p,
        ingest,
        key,
    } = Pipeline::start(&env).await;
    let minute = (now_ms() / HOUR - 2) * HOUR;
    let mut events = generate(&p, 42, minute, 1_000, 41);
    for (n, event) in events.iter_mut().enumerate() {
        event.timestamp_ms = minute + n as i64;
        event.source = Some("web".into());
        event.status = Some("200".into());
        let (event_type, user) = match n {
            0 => ("collide", "user-82".to_owned()),
            1 => ("collide", "user-357".to_owned()),
            n => ("forty", format!("user-{n}")),
        };
        event.event_type = event_type.into();
        event.user_id = Some(user);
    }
    send_through_gateway(&gateway, &ingest, &events).await;
    let stored = "SELECT toUInt64(sum(count)) FROM rollups FINAL";
    eventually("the rollups", Duration::from_secs(60), || async {
        (env.query_u64(stored).await == 42).then_some(())
    })
    .await;
    let range = format!("from={minute}&to={}", minute + MINUTE);
    for (interval, group_by) in [("1m", "type"), ("1d", "type")] {
        let body = api
            .get_ok(
                &format!("/v1/metrics?{range}&metrics=unique_users&interval={interval}&group_by={group_by}"),
                &key,
            )
            .await;
        assert!(
            body["source"].as_str().unwrap().starts_with("rollups"),
            "{body}"
        );
        let uniques: BTreeMap<String, u64> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["type"].as_str().unwrap().to_owned(),
                    row["unique_users"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(uniques["collide"], 2, "{body}");
        assert_eq!(uniques["forty"], 40, "{body}");
    }
    drop(processor);
}
