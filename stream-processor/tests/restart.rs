//! Crash the real processor binary (SIGKILL) mid-stream, restart it, and
//! check that ClickHouse holds every event exactly once, in raw events and in
//! rollups; then replay the topic from offset 0 and check nothing changed.

mod common;

use std::time::Duration;

use common::{RAW_COUNT, assert_exactly, event, prepare, produce, results, start_processor};
use sluice_schemas::time_format::now_ms;
use sluice_testkit::{TestEnv, eventually};

const TOTAL: usize = 6_000;
const WAVES: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_and_duplicates_nothing() {
    let env = TestEnv::new("restart");
    prepare(&env).await;
    let project = format!("p_{}", env.id);
    let mut processor = start_processor(&env, "main");

    let per_wave = TOTAL / WAVES;
    let started = now_ms();
    for wave in 0..WAVES {
        // Event times move forward with n, with every seventh event ten
        // minutes late: windows close during the run and corrections follow.
        let events: Vec<_> = (wave * per_wave..(wave + 1) * per_wave)
            .map(|n| {
                let late = if n % 7 == 3 { 600_000 } else { 0 };
                event(&project, n, started - 900_000 + n as i64 * 100 - late)
            })
            .collect();
        produce(&env, &events).await;
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
            // A varying delay moves the kill across fetch, insert, checkpoint and commit.
            let jitter = uuid::Uuid::new_v4().as_u128() % 400;
            tokio::time::sleep(Duration::from_millis(jitter as u64)).await;
            processor.kill().await;
            processor = start_processor(&env, "main");
        }
    }

    assert_exactly(&env, TOTAL as u64).await;
    assert_eq!(
        env.query_u64("SELECT uniqExact(event_id) FROM events")
            .await,
        TOTAL as u64
    );
    assert_eq!(
        env.query_u64("SELECT toUInt64(sum(duration_sum_us) / 1000) FROM rollups FINAL")
            .await,
        (0..TOTAL as u64).sum::<u64>()
    );
    eprintln!(
        "{} raw rows and {} rollup rows stored for {TOTAL} events after the kills (before merges)",
        env.query_u64("SELECT count() FROM events").await,
        env.query_u64("SELECT count() FROM rollups").await
    );
    processor.kill().await;
    let before = results(&env).await;

    // Replay the whole topic from offset 0 (a new consumer group): every row
    // is written again, and no query result may change.
    let replay = start_processor(&env, "replay");
    let replay_group = format!("replay_{}", env.id);
    eventually("the full replay", Duration::from_secs(120), || {
        let (env, group) = (&env, &replay_group);
        async move { (env.group_lag(&env.kafka.events_topic, group).await == 0).then_some(()) }
    })
    .await;
    assert_eq!(env.query_u64(RAW_COUNT).await, TOTAL as u64);
    assert_eq!(results(&env).await, before);
    replay.kill().await;
}
