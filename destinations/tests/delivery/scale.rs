//! Scale-out: two instances in one consumer group share the partitions;
//! one is SIGKILLed in the middle of a backlog and the other takes over
//! its partitions, so every match still arrives.

use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_testkit::eventually;
use sluice_testkit::processes::{free_port, wait_until_ready};

use crate::backlog::Backlog;
use crate::harness::{PrivateStack, call, metric};
use crate::receiver::Receiver;

const PATIENCE: Duration = Duration::from_secs(240);
const PARTITIONS: i32 = 4;

/// The partitions an instance's events consumer holds, by its metrics.
async fn held(base: &str) -> Option<f64> {
    let page = reqwest::get(format!("{base}/metrics")).await.ok()?;
    let page = page.text().await.ok()?;
    metric(
        &page,
        "sluice_destination_assigned_partitions{consumer=\"events\"}",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_survivor_takes_over_the_partitions_of_a_killed_instance() {
    let mut stack = PrivateStack::start("scale");
    stack.kafka.partitions = PARTITIONS;
    let (receiver, receiver_addr) = Receiver::start().await;
    let mut config = stack.config();
    // About 40 requests a second per instance to the slow webhook.
    config.destinations.concurrency = 4;
    config.destinations.breaker_threshold = 1_000;
    // Past the session timeout (10 s), so the dead member is gone by then.
    config.destinations.stall_timeout_ms = 15_000;
    let group = config.destinations.consumer_group.clone();
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let mut doomed = stack.spawn_binary(&config, port_a);
    wait_until_ready(&base_a, PATIENCE).await;
    let survivor = stack.spawn_binary(&config, port_b);
    wait_until_ready(&base_b, PATIENCE).await;

    let client = reqwest::Client::new();
    let ids = Backlog::webhooks(&client, &format!("{base_a}/v1/webhooks"), receiver_addr).await;
    // Both instances know both webhooks before any event comes.
    for id in &ids {
        let url = format!("{base_b}/v1/webhooks/{id}");
        eventually("the webhooks at the second instance", PATIENCE, || async {
            let (status, _) = call(&client, "GET", &url, Value::Null).await;
            Some(()).filter(|()| status == 200)
        })
        .await;
    }
    // The two share the partitions.
    eventually("both instances holding partitions", PATIENCE, || async {
        let (a, b) = (held(&base_a).await?, held(&base_b).await?);
        Some(()).filter(|()| a > 0.0 && b > 0.0 && a + b == f64::from(PARTITIONS))
    })
    .await;

    let backlog = Backlog::send(&stack, 800).await;
    assert_eq!(backlog.partitions().len(), PARTITIONS as usize);
    let doomed_held = held(&base_a).await;
    let at_kill = backlog
        .kill_midway((&stack, &group), &receiver, 200, &mut doomed)
        .await;
    let killed_at = Instant::now();

    // The survivor comes to hold every partition.
    eventually("the survivor holding every partition", PATIENCE, || async {
        let all = held(&base_b).await == Some(f64::from(PARTITIONS));
        Some(()).filter(|()| all)
    })
    .await;
    let taken_over_after = killed_at.elapsed();

    // Every match arrives at least once; only what matched; repeats only
    // inside the documented window: after the offset committed at the kill
    // (the dead instance's deliveries not committed yet, and the
    // survivor's own, read again after the rebalance that gave it every
    // partition).
    let received = backlog.all_arrived(&receiver, PATIENCE).await;
    let repeats = backlog.repeats(&received, &at_kill);
    println!(
        "scale-out: the killed instance held {doomed_held:?} of {PARTITIONS} partitions; \
         {} of {} orders delivered at the kill, committed then {:?}; the survivor held \
         every partition {taken_over_after:?} after the kill and had delivered every \
         order {:?} after it; {} orders sent more than once ({} requests in all)",
        at_kill.delivered.len(),
        backlog.orders.len(),
        at_kill.committed,
        killed_at.elapsed(),
        repeats.len(),
        received.len(),
    );
    let (clean, output) = survivor.end().await;
    assert!(!output.contains(crate::harness::ADMIN_TOKEN), "{clean}");
}
