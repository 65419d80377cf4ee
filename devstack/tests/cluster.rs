//! The local cluster for real: ZooKeeper and three ClickHouse 18.16 servers
//! in a private state directory on free ports, the cluster DDL of
//! `sluice_schemas::ddl` created `ON CLUSTER`, rows written to the
//! shard-local tables of both shards, replicated to the second replica of
//! shard 1 (also after that replica was SIGKILLed and restarted), and read
//! once each through the Distributed table with `FINAL` from every node.
//! Fails, never skips, without ZooKeeper or ClickHouse. The cluster is
//! 18.16 whatever the engine of a run, so the engine passes leave this
//! binary out (`.config/nextest.toml`'s default filter) and `sluice-dev
//! test` runs it once, in a step of its own.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice_devstack::cluster::{CLUSTER_NAME, TOPOLOGY};
use sluice_devstack::probe::http_request;
use sluice_devstack::{Cluster, ClusterSettings, Member};
use sluice_schemas::clickhouse_features::ServerFeatures;
use sluice_schemas::ddl::{ClusterName, Database, shard_of};

const DATABASE: &str = "cluster_test";

struct Private {
    cluster: Cluster,
    dir: PathBuf,
}

impl Private {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("sluice-cluster-test-{}", std::process::id()));
        let settings = ClusterSettings::private(&dir);
        Self {
            cluster: Cluster::new(settings),
            dir,
        }
    }

    fn query(&self, node: usize, sql: &str) -> String {
        self.cluster
            .query(node, sql)
            .unwrap_or_else(|error| panic!("{sql}\n{error:#}"))
            .trim()
            .to_owned()
    }

    /// Polls until node `node` answers `sql` with `expected`.
    fn wait_for(&self, node: usize, sql: &str, expected: &str) {
        // A killed replica waits out its old ZooKeeper session first.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answer = self.cluster.query(node, sql);
            match &answer {
                Ok(body) if body.trim() == expected => return,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
                _ => panic!("node{node}: {sql}: expected {expected}, got {answer:?} after 120 s"),
            }
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.cluster.end_of_test();
    }
}

/// Rows of `events_local`: (event id, Kafka partition, offset, received at).
fn insert(events: &[(&str, u32, u64, u64)]) -> String {
    let rows: Vec<String> = events
        .iter()
        .map(|(id, partition, offset, received)| {
            format!("('p1', 'view', 1700000000, 1700000000000, '{id}', {received}, {partition}, {offset})")
        })
        .collect();
    format!(
        "INSERT INTO {DATABASE}.events_local (project_id, type, timestamp, timestamp_ms, \
         event_id, received_at_ms, kafka_partition, kafka_offset) VALUES {}",
        rows.join(", ")
    )
}

#[test]
fn a_replicated_sharded_cluster_replicates_and_reads_every_row_once() {
    let private = Private::new();
    let cluster = &private.cluster;

    // A taken port stops `up` before anything starts, naming its variable.
    let holder = TcpListener::bind(("127.0.0.1", cluster.interserver_port(3))).unwrap();
    let error = format!("{:#}", cluster.up().unwrap_err());
    assert!(
        error.contains("SLUICE_CLUSTER_INTERSERVER_PORT=") && error.contains("already in use"),
        "{error}"
    );
    assert!(
        !private.dir.join("run/zookeeper.pid").exists(),
        "nothing started"
    );
    drop(holder);

    cluster.up().unwrap_or_else(|error| {
        panic!(
            "the local cluster needs ZooKeeper, Java and ClickHouse: deploy/install.sh zookeeper \
             and deploy/install.sh apt\n{error:#}"
        )
    });
    let pid_file = private.dir.join("run/clickhouse-1.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    cluster.up().expect("a second up finds the cluster up");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        pid,
        "not restarted"
    );
    assert!(cluster.status());
    assert_eq!(private.query(3, "SELECT substring(version(), 1, 3)"), "18.");

    let database = Database::new(DATABASE).unwrap();
    let cluster_name = ClusterName::new(CLUSTER_NAME).unwrap();
    for statement in
        database.create_cluster_statements(&cluster_name, ServerFeatures::COMMON_SUBSET, None)
    {
        // ON CLUSTER: one node runs it everywhere, answering once all did.
        private.query(1, &statement);
    }
    for node in 1..=TOPOLOGY.len() {
        assert_eq!(
            private.query(node, &format!("EXISTS TABLE {DATABASE}.events_local")),
            "1",
            "node{node}"
        );
    }

    // Shard 1 (partition 0) through node1, shard 2 (partition 1) through
    // node3; each with a client retry of one event, a copy in another insert.
    assert_eq!(shard_of(0, 2), 0);
    assert_eq!(shard_of(1, 2), 1);
    private.query(
        1,
        &insert(&[("a", 0, 0, 10), ("b", 0, 1, 10), ("c", 0, 2, 10)]),
    );
    private.query(1, &insert(&[("a", 0, 3, 20)]));
    private.query(3, &insert(&[("d", 1, 0, 10), ("e", 1, 1, 10)]));
    private.query(3, &insert(&[("d", 1, 2, 20)]));

    let local = format!("SELECT count() FROM {DATABASE}.events_local");
    private.wait_for(2, &local, "4");
    assert_eq!(private.query(3, &local), "3", "shard 2 holds its rows only");
    let distinct = format!("SELECT count() FROM {DATABASE}.events FINAL");
    for node in 1..=TOPOLOGY.len() {
        assert_eq!(private.query(node, &distinct), "5", "node{node}");
    }
    let retried = format!(
        "SELECT kafka_offset FROM {DATABASE}.events FINAL WHERE event_id = 'a' OR event_id = 'd' \
         ORDER BY event_id"
    );
    assert_eq!(private.query(3, &retried), "3\n2", "the latest copy wins");

    // A synchronous insert through the Distributed table picks the shard
    // that shard_of names, so writers of the shard-local tables agree.
    for partition in [2u32, 3] {
        let id = format!("via-{partition}");
        let sql = insert(&[(&id, partition, 0, 10)]).replace("events_local", "events");
        let answer = http_request(
            cluster.http_port(2),
            "POST",
            "/?insert_distributed_sync=1",
            &[],
            &sql,
            Duration::from_secs(60),
        );
        assert!(matches!(answer, Some((200, _))), "{sql}: {answer:?}");
        let node = if shard_of(partition, 2) == 0 { 1 } else { 3 };
        private.wait_for(
            node,
            &format!("SELECT count() FROM {DATABASE}.events_local WHERE event_id = '{id}'"),
            "1",
        );
    }

    // A replica killed mid-stream catches up once it is back.
    cluster.kill(Member::Node(2)).expect("SIGKILL node2");
    private.query(1, &insert(&[("f", 0, 4, 10)]));
    cluster.start(Member::Node(2)).expect("node2 starts again");
    // a, b, c, the retry of a, via-2 and f.
    private.wait_for(2, &local, "6");
    assert_eq!(private.query(2, &distinct), "8");

    cluster.down(true).expect("down --wipe");
    assert!(!private.dir.join("clickhouse-1").exists());
    assert!(!cluster.status());
}
