//! Exactly once across client retries and across processors: two processors
//! share the partitions, one is killed mid-stream, and the totals stay exact.

mod common;

use std::time::Duration;

use common::{assert_exactly, event, kill, prepare, produce, start_processor};
use sluice_schemas::time_format::now_ms;
use sluice_testkit::{TestEnv, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_retries_count_once_in_raw_events_and_rollups() {
    let env = TestEnv::new("retries");
    prepare(&env).await;
    let project = format!("p_{}", env.id);
    let mut processor = start_processor(&env, "main");
    let base = now_ms() - 120_000;
    let originals: Vec<_> = (0..300)
        .map(|n| event(&project, n, base + n as i64 * 10))
        .collect();
    produce(&env, &originals).await;
    // Every tenth event again, as a client retry without an explicit
    // timestamp: same event_id, a different event time, received later.
    let retries: Vec<_> = (0..300)
        .step_by(10)
        .map(|n| {
            let mut retry = event(&project, n, now_ms());
            retry.received_at_ms = now_ms();
            retry
        })
        .collect();
    produce(&env, &retries).await;
    assert_exactly(&env, 300).await;
    assert_eq!(
        env.query_u64("SELECT count() FROM events WHERE timestamp_ms > toUInt64(0) AND event_id = 'evt-000010'")
            .await,
        1,
        "the first copy stays, the retry is not stored"
    );
    kill(&mut processor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processors_one_killed_mid_stream_count_exactly() {
    const TOTAL: usize = 4_000;
    let env = TestEnv::new("pair");
    prepare(&env).await;
    let project = format!("p_{}", env.id);
    let mut first = start_processor(&env, "shared");
    let mut second = start_processor(&env, "shared");
    let base = now_ms() - 600_000;
    let events: Vec<_> = (0..TOTAL)
        .map(|n| {
            let late = if n % 11 == 4 { 240_000 } else { 0 };
            event(&project, n, base + n as i64 * 100 - late)
        })
        .collect();
    produce(&env, &events[..TOTAL / 2]).await;
    eventually("both processors writing", Duration::from_secs(90), || {
        let env = &env;
        async move { (env.query_u64("SELECT count() FROM events").await > 0).then_some(()) }
    })
    .await;
    let jitter = uuid::Uuid::new_v4().as_u128() % 300;
    tokio::time::sleep(Duration::from_millis(jitter as u64)).await;
    kill(&mut first).await;
    produce(&env, &events[TOTAL / 2..]).await;
    // The survivor takes the dead one's partitions after the session timeout.
    assert_exactly(&env, TOTAL as u64).await;
    assert_eq!(
        env.query_u64("SELECT uniqExact(kafka_partition) FROM rollups")
            .await,
        u64::from(env.kafka.partitions as u32)
    );
    kill(&mut second).await;
}
