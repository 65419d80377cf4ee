//! Faults of a ClickHouse cluster under the real processor (issue 19): a
//! private cluster (ZooKeeper and three ClickHouse 18.16 servers, shard 1 on
//! node1 and node2, shard 2 on node3; `sluice_devstack::Cluster`), the
//! processor in cluster mode writing through node1, and events sent straight
//! to the test's topic while
//! - a replica of shard 1 is SIGKILLed: every event counts exactly once, and
//!   the replica catches up once it is back;
//! - ZooKeeper is stopped for 30 s: inserts fail, the processor retries and
//!   reports not ready with the cause, and nothing is lost or doubled after;
//! - the whole of shard 2 is down: the processor commits no offset past the
//!   rows it could not write, and stores every event once the shard is back.
//!
//! The cluster is 18.16 whatever the engine of a run, so the engine passes
//! leave this binary out (`.config/nextest.toml`) and `sluice-dev test` runs
//! it once, beside `devstack/tests/cluster.rs`.

mod common;

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sluice_devstack::cluster::CLUSTER_NAME;
use sluice_devstack::{Cluster, ClusterSettings, Member};
use sluice_runtime::clickhouse::CLICKHOUSE_CHECK;
use sluice_runtime::kafka::client_config;
use sluice_schemas::ddl::shard_of;
use sluice_testkit::{Running, TestEnv, eventually};

use common::{project, start_processor};

/// How long a fault may take to show, or the cluster to recover from it:
/// generous, as the suite must pass on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(180);

/// The test's own cluster, stopped and wiped when dropped (kept after a
/// failure, for its logs).
struct Private {
    cluster: Cluster,
}

impl Private {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sluice-cluster-faults-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let private = Self {
            cluster: Cluster::new(ClusterSettings::private(&dir)),
        };
        let cluster = private.cluster.clone();
        tokio::task::spawn_blocking(move || cluster.up())
            .await
            .unwrap()
            .unwrap_or_else(|error| {
                panic!("the cluster (deploy/install.sh zookeeper; clickhouse-server): {error:#}")
            });
        private
    }

    async fn act(
        &self,
        what: &str,
        act: impl FnOnce(&Cluster) -> anyhow::Result<()> + Send + 'static,
    ) {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || act(&cluster))
            .await
            .unwrap()
            .unwrap_or_else(|error| panic!("{what}: {error:#}"));
    }

    /// Node `node`'s answer to `sql`, trimmed; `None` while it does not answer.
    async fn query(&self, node: usize, sql: String) -> Option<String> {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || cluster.query(node, &sql).ok())
            .await
            .unwrap()
            .map(|answer| answer.trim().to_owned())
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.cluster.end_of_test();
    }
}

/// A cluster, a test topic set and database on it, and the processor in
/// cluster mode writing through node1, ready.
/// Fields drop in order: the processor first, the cluster last.
struct Scenario {
    processor: Running,
    producer: FutureProducer,
    project: String,
    env: TestEnv,
    private: Private,
}

impl Scenario {
    async fn start(name: &str) -> Self {
        let private = Private::start().await;
        let mut env = TestEnv::new(name);
        env.clickhouse.url = private.cluster.url(1);
        env.clickhouse.cluster = CLUSTER_NAME.into();
        env.ensure_schema().await;
        let project = project(&env);
        let producer = client_config(&env.kafka)
            .expect("client config")
            .set("acks", "all")
            .create()
            .expect("Kafka producer");
        let processor = start_processor(&env).await;
        processor.wait_ready().await;
        Self {
            processor,
            producer,
            project,
            env,
            private,
        }
    }

    /// `count` events with ids `{round}-{n}`, as JSON straight to the
    /// topic, acknowledged by the broker.
    async fn send(&self, round: &str, count: usize) {
        for n in 0..count {
            let id = format!("{round}-{n}");
            let value =
                json!({"event_id": id, "type": "view", "project_id": self.project}).to_string();
            let key = format!("{}/{id}", self.project);
            self.producer
                .send(
                    FutureRecord::to(&self.env.kafka.events_topic)
                        .key(&key)
                        .payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .expect("the broker acks");
        }
    }

    /// The project's events counted once each (`FINAL`) through `table`.
    fn count_sql(&self, table: &str) -> String {
        format!(
            "SELECT count() FROM {}.{table} FINAL WHERE project_id = '{}'",
            self.env.clickhouse.database, self.project
        )
    }

    /// Waits until node `node` counts exactly `expected` events through the
    /// Distributed table.
    async fn wait_count(&self, node: usize, expected: usize, what: &str) {
        let (sql, expected) = (self.count_sql("events"), expected.to_string());
        eventually(what, PATIENCE, || {
            let (sql, expected) = (sql.clone(), expected.clone());
            async move { (self.private.query(node, sql).await? == expected).then_some(()) }
        })
        .await;
    }

    /// Waits until the processor's readiness fails on an insert, and checks
    /// that the cause it gives says `why`.
    async fn wait_insert_failing(&self, why: &str) {
        let cause = self
            .processor
            .not_ready_because(CLICKHOUSE_CHECK, PATIENCE)
            .await;
        assert!(
            cause.contains("ClickHouse insert failed") && cause.contains(why),
            "readiness names the failing insert and why ({why}): {cause}"
        );
    }

    /// After a fault: every node counts `total` events exactly, every offset
    /// is committed, the processor is ready again and stops cleanly.
    async fn recovered(self, total: usize) {
        for node in 1..=3 {
            self.wait_count(node, total, "every event once after the fault")
                .await;
        }
        self.wait_committed().await;
        self.processor.wait_ready().await;
        self.processor.stop().await.expect("a clean stop");
    }

    /// Waits until the processor's group has committed every message.
    async fn wait_committed(&self) {
        let (topic, group) = (
            &self.env.kafka.events_topic,
            format!("group_{}", self.env.id),
        );
        eventually("every offset committed", PATIENCE, || async {
            (self.env.group_lag(topic, &group).await == 0).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_during_inserts_loses_and_doubles_nothing() {
    let scenario = Scenario::start("cluster_replica").await;
    let private = &scenario.private;

    scenario.send("before", 400).await;
    // SIGKILL node2, a replica of shard 1, while the processor writes.
    private
        .act("kill node2", |cluster| cluster.kill(Member::Node(2)))
        .await;
    scenario.send("during", 400).await;
    scenario
        .wait_count(1, 800, "every event stored once with a replica down")
        .await;
    private
        .act("restart node2", |cluster| cluster.start(Member::Node(2)))
        .await;
    scenario.send("after", 400).await;

    // Exactly once through the Distributed table, from every node.
    for node in 1..=3 {
        scenario
            .wait_count(node, 1200, "every event once, on every node")
            .await;
    }
    // The killed replica caught up: shard 1's rows, the same on both replicas.
    let local = scenario.count_sql("events_local");
    let on_node1 = private
        .query(1, local.clone())
        .await
        .expect("node1 answers");
    assert_ne!(on_node1, "0", "shard 1 holds events");
    eventually("node2 to catch up with node1", PATIENCE, || {
        let (local, on_node1) = (local.clone(), on_node1.clone());
        async move { (private.query(2, local).await? == on_node1).then_some(()) }
    })
    .await;
    scenario.processor.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_stopped_for_30_s_fails_readiness_and_loses_nothing() {
    let scenario = Scenario::start("cluster_zookeeper").await;
    scenario.send("before", 300).await;
    scenario.wait_count(1, 300, "the first events stored").await;

    scenario
        .private
        .act("stop ZooKeeper", |cluster| cluster.stop(Member::Zookeeper))
        .await;
    let stopped_at = tokio::time::Instant::now();
    scenario.send("during", 300).await;
    // Replicated tables refuse inserts without ZooKeeper: the processor
    // keeps the batch, retries, and says why it is not ready.
    scenario
        .wait_insert_failing("while its replica has no ZooKeeper")
        .await;
    // An outage of 30 s, as an operator restarting ZooKeeper would cause.
    tokio::time::sleep_until(stopped_at + Duration::from_secs(30)).await;
    scenario
        .private
        .act("start ZooKeeper", |cluster| {
            cluster.start(Member::Zookeeper)
        })
        .await;
    scenario.send("after", 300).await;

    scenario.recovered(900).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_down_holds_its_offsets_until_its_rows_are_written() {
    let scenario = Scenario::start("cluster_shard").await;
    let (topic, group) = (
        &scenario.env.kafka.events_topic,
        format!("group_{}", scenario.env.id),
    );
    scenario.send("before", 300).await;
    scenario.wait_count(1, 300, "the first events stored").await;
    scenario.wait_committed().await;

    // Shard 2 is node3 alone: SIGKILL it, then send more to every partition.
    scenario
        .private
        .act("kill node3", |cluster| cluster.kill(Member::Node(3)))
        .await;
    let before = scenario.env.offsets(topic, &group).await;
    scenario.send("during", 300).await;
    scenario
        .wait_insert_failing("no replica of a shard answers")
        .await;
    // The processor has tried, and failed, to write shard 2's rows: no
    // partition of shard 2 has its offset committed past what was stored
    // before the shard went down, though its new messages are in Kafka.
    let during = scenario.env.offsets(topic, &group).await;
    let shard_2: Vec<usize> = (0..during.len())
        .filter(|partition| shard_of(*partition as u32, 2) == 1)
        .collect();
    assert!(
        shard_2.iter().any(|p| during[*p].high > before[*p].high),
        "shard 2's partitions received messages while it was down: {before:?} -> {during:?}"
    );
    for partition in &shard_2 {
        assert_eq!(
            during[*partition].committed, before[*partition].committed,
            "partition {partition} (shard 2) committed past rows not written"
        );
    }

    scenario
        .private
        .act("restart node3", |cluster| cluster.start(Member::Node(3)))
        .await;
    scenario.recovered(600).await;
}
