//! The processor comes back by itself, and its readiness tells the truth
//! meanwhile: a restart within the session timeout of the crashed process
//! (tansu 0.6.0 then stores an empty assignment), a broker that stops and
//! returns, ClickHouse going silent, and a broker that lost messages below
//! a checkpoint.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::{
    ProcessorProcess, REBALANCE_GRACE_MS, SESSION_TIMEOUT_MS, assert_exactly, event, prepare,
    produce, start_processor,
};
use sluice_schemas::time_format::now_ms;
use sluice_testkit::{PrivateBroker, StallingProxy, TestEnv, eventually};

/// Time from a crash to processing again that the tests hold the processor
/// to: the dead member's session, tansu's 3 s join pause, the rebalance
/// grace, a look (2 s) and a rejoin, with room for a busy machine.
const RECOVERY_BOUND: Duration =
    Duration::from_secs((SESSION_TIMEOUT_MS + 3_000 + REBALANCE_GRACE_MS + 2_000) / 1000 + 45);

/// What a watcher saw of a processor while the test waited.
#[derive(Default)]
struct Seen {
    /// Readiness failed naming the group.
    group_not_ready: AtomicBool,
    /// The largest total lag the processor reported.
    max_lag: AtomicI64,
}

/// Polls the processor's readiness and lag every 200 ms until `stop`.
fn watch(processor: Arc<ProcessorProcess>, stop: Arc<AtomicBool>) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let record = seen.clone();
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let (status, body) = processor.readiness().await;
            if status == 503 && body["causes"]["group"].is_string() {
                record.group_not_ready.store(true, Ordering::Relaxed);
            }
            let lag = processor
                .metric_sum("sluice_processor_consumer_lag")
                .await
                .unwrap_or(0.0);
            record.max_lag.fetch_max(lag as i64, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_restarted_within_the_session_timeout_processes_again() {
    const WAVE: usize = 1_000;
    let env = TestEnv::new("recover");
    prepare(&env).await;
    let project = format!("p_{}", env.id);
    let base = now_ms() - 300_000;
    let events: Vec<_> = (0..2 * WAVE)
        .map(|n| event(&project, n, base + n as i64 * 100))
        .collect();

    let first = start_processor(&env, "main");
    produce(&env, &events[..WAVE]).await;
    eventually("the first wave written", Duration::from_secs(90), || {
        let env = &env;
        async move { (env.query_u64(common::RAW_COUNT).await == WAVE as u64).then_some(()) }
    })
    .await;
    first.kill().await;
    let crashed = Instant::now();
    // Back well within the dead member's session.
    tokio::time::sleep(Duration::from_millis(SESSION_TIMEOUT_MS / 2)).await;
    let second = Arc::new(start_processor(&env, "main"));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = watch(second.clone(), stop.clone());
    produce(&env, &events[WAVE..]).await;
    eventually("events written again", RECOVERY_BOUND, || {
        let env = &env;
        async move { (env.query_u64(common::RAW_COUNT).await == 2 * WAVE as u64).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let rejoins = second
        .metric("sluice_processor_group_rejoins_total")
        .await
        .unwrap_or(0.0);
    eprintln!(
        "processing again {:.1} s after the crash; rejoins: {rejoins}",
        crashed.elapsed().as_secs_f64()
    );
    if rejoins > 0.0 {
        // The broker left it without partitions: readiness said so, and the
        // lag showed the events nobody read.
        assert!(
            seen.group_not_ready.load(Ordering::Relaxed),
            "readiness stayed 200 while the processor held no partition"
        );
        assert!(seen.max_lag.load(Ordering::Relaxed) > 0);
    }
    assert_exactly(&env, 2 * WAVE as u64).await;
    eventually(
        "the restarted processor ready",
        Duration::from_secs(30),
        || {
            let second = &second;
            async move { (second.readiness().await.0 == 200).then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_a_broker_that_is_down_and_recovers_with_it() {
    let broker = PrivateBroker::start();
    let mut env = TestEnv::new("broker_down");
    env.kafka.brokers = broker.brokers();
    prepare(&env).await;
    let project = format!("p_{}", env.id);
    let processor = start_processor(&env, "main");
    let ready = || async {
        eventually("the processor ready", Duration::from_secs(60), || {
            let processor = &processor;
            async move { (processor.readiness().await.0 == 200).then_some(()) }
        })
        .await
    };
    ready().await;
    let before: Vec<_> = (0..200)
        .map(|n| event(&project, n, now_ms() - 60_000))
        .collect();
    produce(&env, &before).await;

    broker.stop();
    let cause = processor.not_ready_because("kafka").await;
    assert!(
        cause.contains(&broker.brokers()) && cause.contains("--kafka-brokers"),
        "{cause}"
    );

    broker.restart();
    ready().await;
    let after: Vec<_> = (200..400)
        .map(|n| event(&project, n, now_ms() - 30_000))
        .collect();
    produce(&env, &after).await;
    assert_exactly(&env, 400).await;
    processor.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_lost_messages_below_the_checkpoint_halts_the_partition() {
    let broker = PrivateBroker::start();
    let mut env = TestEnv::new("lost");
    env.kafka.brokers = broker.brokers();
    env.kafka.partitions = 1;
    prepare(&env).await;
    let project = format!("p_{}", env.id);
    let processor = start_processor(&env, "main");
    let first: Vec<_> = (0..300)
        .map(|n| event(&project, n, now_ms() - 60_000))
        .collect();
    produce(&env, &first).await;
    assert_exactly(&env, 300).await;
    processor.kill().await;

    // The broker loses everything; new messages get the old offsets.
    broker.wipe();
    prepare(&env).await;
    let reused: Vec<_> = (1_000..1_100)
        .map(|n| event(&project, n, now_ms() - 30_000))
        .collect();
    produce(&env, &reused).await;
    let processor = start_processor(&env, "main");
    let cause = processor.not_ready_because("offsets").await;
    assert!(cause.contains("partitions [0]"), "{cause}");
    assert_eq!(
        processor.metric("sluice_processor_halted_partitions").await,
        Some(1.0)
    );
    // Halted, not skipped: nothing of the new log was taken as a replay
    // and committed past.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.query_u64(common::RAW_COUNT).await, 300);
    assert_eq!(
        env.group_lag(&env.kafka.events_topic, &format!("main_{}", env.id))
            .await,
        100
    );
    processor.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_clickhouse_fails_readiness_and_nothing_is_lost() {
    let env = TestEnv::new("ch_silent");
    prepare(&env).await;
    // The processor reaches ClickHouse through the proxy; the test directly.
    let proxy = StallingProxy::in_front_of(&env.clickhouse.url).await;
    let project = format!("p_{}", env.id);
    let processor = common::start_processor_with(
        &env,
        "main",
        &[
            ("SLUICE_CLICKHOUSE_URL", proxy.http_url().as_str()),
            ("SLUICE_CLICKHOUSE_TIMEOUT_MS", "2000"),
        ],
    );
    let events: Vec<_> = (0..600)
        .map(|n| event(&project, n, now_ms() - 60_000 + n as i64))
        .collect();
    produce(&env, &events[..300]).await;
    assert_exactly(&env, 300).await;

    proxy.stall();
    produce(&env, &events[300..]).await;
    let cause = processor.not_ready_because("clickhouse").await;
    assert!(cause.contains("no answer within 2000 ms"), "{cause}");

    proxy.resume();
    assert_exactly(&env, 600).await;
    eventually("the processor ready again", Duration::from_secs(60), || {
        let processor = &processor;
        async move { (processor.readiness().await.0 == 200).then_some(()) }
    })
    .await;
    processor.kill().await;
}

/// A stop while ClickHouse stalls under an insert: the processor gives the
/// insert up and exits within `--shutdown-timeout-ms` instead of waiting
/// for it (the uncommitted messages are read again by the next processor,
/// so nothing is lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_stuck_insert_ends_in_time_and_loses_nothing() {
    let env = TestEnv::new("drain_deadline");
    prepare(&env).await;
    let proxy = StallingProxy::in_front_of(&env.clickhouse.url).await;
    let project = format!("p_{}", env.id);
    let events: Vec<_> = (0..100)
        .map(|n| event(&project, n, now_ms() - 60_000 + n as i64))
        .collect();
    let mut processor = common::start_processor_with(
        &env,
        "main",
        &[
            ("SLUICE_CLICKHOUSE_URL", proxy.http_url().as_str()),
            ("SLUICE_CLICKHOUSE_TIMEOUT_MS", "120000"),
            ("SLUICE_SHUTDOWN_TIMEOUT_MS", "5000"),
        ],
    );
    produce(&env, &events[..50]).await;
    assert_exactly(&env, 50).await;
    // The next insert hangs: ClickHouse answers nothing.
    proxy.stall();
    produce(&env, &events[50..]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    processor.signal("TERM");
    let code = processor.exit_code_within(Duration::from_secs(15)).await;
    assert!(
        matches!(code, Some(Some(0 | 130))),
        "exits by the deadline: {code:?}"
    );
    proxy.resume();
    let processor = common::start_processor(&env, "main");
    assert_exactly(&env, 100).await;
    processor.kill().await;
}
