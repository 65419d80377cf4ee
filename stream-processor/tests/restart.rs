//! Crash the real processor binary (SIGKILL) mid-stream, restart it, and
//! check that ClickHouse holds every event exactly once.

use std::process::Stdio;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use sluice_runtime::kafka::ensure_topics;
use sluice_schemas::Event;
use sluice_schemas::avro::encode_event;
use sluice_schemas::time_format::now_ms;
use sluice_testkit::{TestEnv, eventually};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

const TOTAL: usize = 6_000;
const WAVES: usize = 3;

fn event(project: &str, n: usize) -> Event {
    Event {
        event_id: format!("evt-{n:06}"),
        project_id: project.to_owned(),
        event_type: ["view", "click", "buy"][n % 3].to_owned(),
        timestamp_ms: now_ms() - (n as i64 % 600) * 1000,
        received_at_ms: now_ms(),
        user_id: Some(format!("user-{}", n % 97)),
        session_id: None,
        source: Some("restart-test".into()),
        duration_ms: Some(n as f64),
        status: None,
        tags: vec![],
        properties: format!(r#"{{"n":{n}}}"#),
        client_ip: None,
        user_agent: None,
    }
}

fn start_processor(env: &TestEnv, group: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice-stream-processor"))
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env("SLUICE_KAFKA_BROKERS", &env.kafka.brokers)
        .env("SLUICE_KAFKA_EVENTS_TOPIC", &env.kafka.events_topic)
        .env("SLUICE_KAFKA_DLQ_TOPIC", &env.kafka.dlq_topic)
        .env("SLUICE_CLICKHOUSE_URL", &env.clickhouse.url)
        .env("SLUICE_CLICKHOUSE_DATABASE", &env.clickhouse.database)
        .env("SLUICE_CONSUMER_GROUP", format!("{group}_{}", env.id))
        .env("SLUICE_BATCH_MAX_ROWS", "400")
        .env("SLUICE_BATCH_MAX_MS", "150")
        .env("SLUICE_KAFKA_SESSION_TIMEOUT_MS", "6000")
        .env("SLUICE_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the processor binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_and_duplicates_nothing() {
    let env = TestEnv::new("restart");
    let kafka = &env.kafka;
    ensure_topics(
        kafka,
        &[&kafka.events_topic, &kafka.dlq_topic],
        Duration::from_secs(30),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    env.ensure_schema().await;
    let producer = env.producer();
    let project = format!("p_{}", env.id);
    let mut processor = start_processor(&env, "main");

    let per_wave = TOTAL / WAVES;
    for wave in 0..WAVES {
        let mut acks = Vec::with_capacity(per_wave);
        for n in wave * per_wave..(wave + 1) * per_wave {
            let event = event(&project, n);
            let key = event.partition_key();
            let value = encode_event(&event);
            let record = FutureRecord::to(&kafka.events_topic)
                .key(&key)
                .payload(&value);
            acks.push(
                producer
                    .send_result(record)
                    .map_err(|(error, _)| error)
                    .expect("queued"),
            );
        }
        for ack in acks {
            ack.await.expect("delivery report").expect("broker acks");
        }
        // Kill once rows are arriving, i.e. while batches are in flight.
        let arrived_before = env.query_u64("SELECT count() FROM events").await;
        eventually("rows of this wave", Duration::from_secs(90), || {
            let env = &env;
            async move {
                (env.query_u64("SELECT count() FROM events").await > arrived_before).then_some(())
            }
        })
        .await;
        if wave + 1 < WAVES {
            // A varying delay moves the kill across fetch, insert and commit.
            let jitter = uuid::Uuid::new_v4().as_u128() % 400;
            tokio::time::sleep(Duration::from_millis(jitter as u64)).await;
            processor.start_kill().expect("SIGKILL");
            processor.wait().await.expect("reaped");
            processor = start_processor(&env, "main");
        }
    }

    let expected = TOTAL as u64;
    eventually(
        "every event in ClickHouse",
        Duration::from_secs(120),
        || {
            let env = &env;
            async move {
                (env.query_u64("SELECT count() FROM events FINAL").await >= expected).then_some(())
            }
        },
    )
    .await;
    // Let any replayed batches land, then count exactly.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.query_u64("SELECT count() FROM events FINAL").await,
        expected
    );
    assert_eq!(
        env.query_u64("SELECT uniqExact(event_id) FROM events")
            .await,
        expected
    );
    assert_eq!(
        env.query_u64("SELECT toUInt64(ifNull(sum(duration_ms), 0)) FROM events FINAL")
            .await,
        (0..TOTAL as u64).sum::<u64>()
    );
    eprintln!(
        "{} rows stored for {expected} events after the kills (before background merges)",
        env.query_u64("SELECT count() FROM events").await
    );
    processor.start_kill().ok();
    processor.wait().await.ok();

    // Replay the whole topic from offset 0 (a new consumer group): every row
    // is written again, and no query result may change.
    let mut replay = start_processor(&env, "replay");
    let replay_group = format!("replay_{}", env.id);
    eventually("the full replay", Duration::from_secs(120), || {
        let (env, group) = (&env, &replay_group);
        async move { (env.group_lag(&env.kafka.events_topic, group).await == 0).then_some(()) }
    })
    .await;
    assert_eq!(
        env.query_u64("SELECT count() FROM events FINAL").await,
        expected
    );
    assert_eq!(
        env.query_u64("SELECT toUInt64(ifNull(sum(duration_ms), 0)) FROM events FINAL")
            .await,
        (0..TOTAL as u64).sum::<u64>()
    );
    replay.start_kill().ok();
}
