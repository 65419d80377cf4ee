//! Late events become corrections of their window, never drops; window
//! results reach the live topic; retention drops old day partitions.

mod common;

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use sluice_runtime::kafka::client_config;
use sluice_runtime::rollups::RollupRow;
use sluice_schemas::ddl::{ClusterName, Database};
use sluice_schemas::rollup::{Aggregate, LiveUpdate, WindowKey};
use sluice_schemas::time_format::now_ms;
use sluice_stream_processor::config::ProcessorSettings;
use sluice_stream_processor::retention::drop_expired;
use sluice_stream_processor::sink::{EventRow, EventSink};
use sluice_testkit::{TestEnv, eventually};

use common::{ROLLUP_COUNT, assert_exactly, event, prepare, produce, spawn_processor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_are_corrections_and_windows_go_live() {
    let mut env = TestEnv::new("late");
    // One partition, so that every event meets the same watermark.
    env.kafka.partitions = 1;
    prepare(&env).await;
    let settings = ProcessorSettings {
        batch_max_ms: 100,
        allowed_lateness_ms: 1_000,
        idle_timeout_ms: 500,
        ..ProcessorSettings::default()
    };
    let processor = spawn_processor(&env, settings).await;
    let project = format!("p_{}", env.id);
    let minute = (now_ms() / 60_000 - 30) * 60_000;
    // One window key: type "view" and status "200" (n % 6 == 0).
    let on_time: Vec<_> = (0..5)
        .map(|k| event(&project, k * 6, minute + 1_000 * k as i64))
        .collect();
    produce(&env, &on_time).await;
    // The windows close once the partitions go idle (watermark markers).
    assert_exactly(&env, 5).await;
    let late: Vec<_> = (5..8)
        .map(|k| event(&project, k * 6, minute + 30_000))
        .collect();
    produce(&env, &late).await;
    assert_exactly(&env, 8).await;

    let rows: Vec<RollupRow> = env
        .clickhouse()
        .query("SELECT ?fields FROM rollups FINAL WHERE project_id = ? ORDER BY seq")
        .bind(&project)
        .fetch_all()
        .await
        .unwrap();
    let counts: Vec<u64> = rows.iter().map(|row| row.count).collect();
    assert_eq!(
        counts,
        [5, 3],
        "the window, then one correction with the late events"
    );
    let mut total = Aggregate::default();
    for row in &rows {
        total.merge(&row.aggregate().unwrap());
    }
    let summary = total.summary();
    assert_eq!((summary.count, summary.duration_count), (8, 8));
    assert_eq!(summary.users, 8);
    assert_eq!(summary.duration_max, Some(42.0));
    let metrics = reqwest::get(processor.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sluice_processor_late_events_total 3"),
        "{metrics}"
    );

    // The closed window reached the live topic, final and complete.
    let consumer: StreamConsumer = client_config(&env.kafka)
        .unwrap()
        .set("group.id", format!("live_reader_{}", env.id))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&env.kafka.live_topic]).unwrap();
    let key = WindowKey {
        minute: (minute / 1000) as u32,
        ..rows[0].key()
    };
    let update = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a live update within 30 s")
            .expect("a live message");
        let update: LiveUpdate = serde_json::from_slice(message.payload().unwrap()).unwrap();
        if update.is_final && update.key() == key {
            break update;
        }
    };
    assert_eq!((update.summary.count, update.seq), (5, rows[0].seq));
    assert_eq!(update.aggregate().unwrap(), rows[0].aggregate().unwrap());
    processor.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_day_partitions_only() {
    let env = TestEnv::new("retention");
    env.ensure_schema().await;
    let sink = EventSink::new(env.clickhouse());
    let day = 86_400_000;
    let mut rows = Vec::new();
    let mut rollups = Vec::new();
    for (n, age_days) in [40i64, 31, 29, 0].into_iter().enumerate() {
        let event = event("p", n, now_ms() - age_days * day);
        let key = WindowKey {
            project_id: "p".into(),
            minute: WindowKey::minute_of(event.timestamp_ms),
            event_type: event.event_type.clone(),
            source: String::new(),
            status: String::new(),
        };
        let aggregate = Aggregate {
            count: 1,
            ..Aggregate::default()
        };
        rollups.push(RollupRow::new(&key, &aggregate, 0, n as u64));
        rows.push(EventRow::new(event, 0, n as i64));
    }
    sink.insert(&rows).await.unwrap();
    sink.insert_into("rollups", &rollups).await.unwrap();
    let database = Database::new(&env.clickhouse.database).unwrap();
    // On a cluster (the test matrix's cluster pass), every shard's partitions.
    let cluster = ClusterName::new(&env.clickhouse.cluster).ok();
    let today = time::OffsetDateTime::now_utc().date();
    let dropped = drop_expired(&env.clickhouse(), &database, cluster.as_ref(), 30, today)
        .await
        .unwrap();
    assert_eq!(dropped.len(), 4, "{dropped:?}");
    assert_eq!(env.query_u64("SELECT count() FROM events").await, 2);
    assert_eq!(env.query_u64(ROLLUP_COUNT).await, 2);
    assert!(
        drop_expired(&env.clickhouse(), &database, cluster.as_ref(), 30, today)
            .await
            .unwrap()
            .is_empty()
    );
    eventually("nothing else dropped", Duration::from_secs(1), || async {
        (env.query_u64("SELECT count() FROM events").await == 2).then_some(())
    })
    .await;
}
