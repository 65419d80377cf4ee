//! Exactly once across client retries and across processors: two processors
//! share the partitions, one is killed mid-stream, and the totals stay exact.

mod common;

use std::time::{Duration, Instant};

use common::{assert_exactly, event, prepare, produce, start_processor, start_processor_with};
use sluice_schemas::time_format::now_ms;
use sluice_testkit::{TestEnv, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_retries_count_once_in_raw_events_and_rollups() {
    let env = TestEnv::new("retries");
    prepare(&env).await;
    let project = format!("p_{}", env.id);
    let processor = start_processor(&env, "main");
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
    processor.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processors_one_killed_mid_stream_count_exactly() {
    const TOTAL: usize = 4_000;
    let env = TestEnv::new("pair");
    prepare(&env).await;
    let project = format!("p_{}", env.id);
    // The default session timeout: with it, tansu 0.6.0 leaves the dead
    // member's partitions assigned to it (with the tests' 6 s it mostly
    // does not), so the survivor must notice them stall and rejoin.
    let slow = [("SLUICE_KAFKA_SESSION_TIMEOUT_MS", "10000")];
    let first = start_processor_with(&env, "shared", &slow);
    let second = start_processor_with(&env, "shared", &slow);
    let base = now_ms() - 600_000;
    let events: Vec<_> = (0..TOTAL)
        .map(|n| {
            let late = if n % 11 == 4 { 240_000 } else { 0 };
            event(&project, n, base + n as i64 * 100 - late)
        })
        .collect();
    eventually(
        "the partitions shared by both processors",
        Duration::from_secs(60),
        || {
            let (first, second) = (&first, &second);
            async move {
                let a = first.metric("sluice_processor_assigned_partitions").await?;
                let b = second
                    .metric("sluice_processor_assigned_partitions")
                    .await?;
                (a > 0.0 && b > 0.0 && a + b == 4.0).then_some(())
            }
        },
    )
    .await;
    produce(&env, &events[..TOTAL / 2]).await;
    eventually("both processors writing", Duration::from_secs(90), || {
        let env = &env;
        async move { (env.query_u64("SELECT count() FROM events").await > 0).then_some(()) }
    })
    .await;
    let jitter = uuid::Uuid::new_v4().as_u128() % 300;
    tokio::time::sleep(Duration::from_millis(jitter as u64)).await;
    first.kill().await;
    let died = Instant::now();
    produce(&env, &events[TOTAL / 2..]).await;
    // The survivor takes the dead one's partitions after the session
    // timeout, rejoining if the broker leaves them with the dead member:
    // session (10 s) + stall timeout (10 s) + a look (2 s) + a rejoin, with
    // room for a busy machine.
    eventually(
        "the survivor to hold every partition",
        Duration::from_secs(75),
        || {
            let second = &second;
            async move {
                let held = second.metric("sluice_processor_assigned_partitions").await;
                (held == Some(4.0)).then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "the survivor held every partition {:.1} s after the other died",
        died.elapsed().as_secs_f64()
    );
    assert_exactly(&env, TOTAL as u64).await;
    assert_eq!(
        env.query_u64("SELECT uniqExact(kafka_partition) FROM rollups")
            .await,
        u64::from(env.kafka.partitions as u32)
    );
    second.kill().await;
}
