//! Faults of a ClickHouse cluster under the real processor (issue 19): a
//! private cluster (ZooKeeper and three ClickHouse 18.16 servers, shard 1 on
//! node1 and node2, shard 2 on node3; `sluice_devstack::Cluster`), the
//! processor in cluster mode writing through node1, and events sent straight
//! to the test's topic while a replica of shard 1 is SIGKILLed: every event
//! counts exactly once, and the replica catches up once it is back.
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
use sluice_runtime::kafka::client_config;
use sluice_testkit::{TestEnv, eventually};

use common::{project, start_processor};

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

    async fn act(&self, what: &str, act: fn(&Cluster) -> anyhow::Result<()>) {
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

/// `count` events of `project` with ids `{round}-{n}`, as JSON straight to
/// the topic, acknowledged by the broker.
async fn send(env: &TestEnv, producer: &FutureProducer, project: &str, round: &str, count: usize) {
    for n in 0..count {
        let id = format!("{round}-{n}");
        let value = json!({"event_id": id, "type": "view", "project_id": project}).to_string();
        let key = format!("{project}/{id}");
        producer
            .send(
                FutureRecord::to(&env.kafka.events_topic)
                    .key(&key)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .expect("the broker acks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_during_inserts_loses_and_doubles_nothing() {
    let private = Private::start().await;
    let mut env = TestEnv::new("cluster_replica");
    env.clickhouse.url = private.cluster.url(1);
    env.clickhouse.cluster = CLUSTER_NAME.into();
    env.ensure_schema().await;
    let project = project(&env);
    let producer: FutureProducer = client_config(&env.kafka)
        .expect("client config")
        .set("acks", "all")
        .create()
        .expect("Kafka producer");
    let processor = start_processor(&env).await;
    processor.wait_ready().await;

    send(&env, &producer, &project, "before", 400).await;
    // SIGKILL node2, a replica of shard 1, while the processor writes.
    private
        .act("kill node2", |cluster| cluster.kill(Member::Node(2)))
        .await;
    send(&env, &producer, &project, "during", 400).await;
    let count = format!(
        "SELECT count() FROM {}.events FINAL WHERE project_id = '{project}'",
        env.clickhouse.database
    );
    eventually(
        "every event stored once with a replica down",
        Duration::from_secs(120),
        || {
            let (private, count) = (&private, count.clone());
            async move { (private.query(1, count).await? == "800").then_some(()) }
        },
    )
    .await;
    private
        .act("restart node2", |cluster| cluster.start(Member::Node(2)))
        .await;
    send(&env, &producer, &project, "after", 400).await;

    // Exactly once through the Distributed table, from every node.
    for node in 1..=3 {
        let (private, count) = (&private, count.clone());
        eventually(
            "every event once, on every node",
            Duration::from_secs(120),
            || {
                let count = count.clone();
                async move { (private.query(node, count).await? == "1200").then_some(()) }
            },
        )
        .await;
    }
    // The killed replica caught up: shard 1's rows, the same on both replicas.
    let local = format!(
        "SELECT count() FROM {}.events_local FINAL WHERE project_id = '{project}'",
        env.clickhouse.database
    );
    let on_node1 = private
        .query(1, local.clone())
        .await
        .expect("node1 answers");
    assert_ne!(on_node1, "0", "shard 1 holds events");
    eventually(
        "node2 to catch up with node1",
        Duration::from_secs(120),
        || {
            let (private, local, on_node1) = (&private, local.clone(), on_node1.clone());
            async move { (private.query(2, local).await? == on_node1).then_some(()) }
        },
    )
    .await;
    processor.stop().await.expect("a clean stop");
}
