//! A real replicated, sharded ClickHouse cluster on this machine, as plain
//! processes with their own configs and data directories: one ZooKeeper 3.8
//! (Debian's jars, run by `java` with a zoo.cfg of its own) and three
//! ClickHouse 18.16 servers forming the cluster [`CLUSTER_NAME`] of two
//! shards: shard 1 on nodes 1 and 2 (two replicas), shard 2 on node 3.
//!
//! The guarantees are the stack's: `up` is idempotent, pid files name the
//! processes and stale ones are cleaned, a taken port is refused naming its
//! variable, `down` sends SIGTERM then SIGKILL, `down --wipe` deletes the
//! data. Single members start, stop and die on request ([`Cluster::start`],
//! [`Cluster::stop`], [`Cluster::kill`]) for fault tests.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::clickhouse_config::{
    RemoteCluster, Replication, ServerConfig, User, server_binary, server_launch,
};
use crate::find_on_path;
use crate::probe::{http_ping, http_request, zookeeper_answers};
use crate::process::{Launch, PidFile, is_alive, launch, signal, stop};
use crate::settings::{HOST, absolute, number, port};
use crate::stack::{STOP_PATIENCE, lock_state_dir, refuse_taken_port, remove, tail_files};

/// The cluster's name in `remote_servers`, for `ON CLUSTER` and Distributed.
pub const CLUSTER_NAME: &str = "sluice";
/// A second cluster in `remote_servers`: shard 1 (nodes 1 and 2) alone, so
/// one set of servers can compare writing into one shard against two
/// (docs/scaling.md).
pub const ONE_SHARD_CLUSTER_NAME: &str = "sluice_one_shard";

/// Per node (1, 2, 3): its `{shard}` and `{replica}` macros.
pub const TOPOLOGY: [(u32, &str); 3] = [(1, "node1"), (1, "node2"), (2, "node3")];

/// Debian's ZooKeeper jar (its manifest names the other jars it needs) and
/// a logging backend for it (otherwise it logs nothing at all).
const ZOOKEEPER_CLASSPATH: [&str; 2] = [
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-simple.jar",
];

/// Where the cluster lives and listens: `SLUICE_CLUSTER_*` variables over
/// defaults that do not collide with the stack's, or a struct literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// State: configs, data, pid files, logs (`SLUICE_CLUSTER_DIR`, default
    /// `<repo>/.sluice/cluster`).
    pub dir: PathBuf,
    /// ZooKeeper's client port (`SLUICE_CLUSTER_ZOOKEEPER_PORT`, 12181).
    pub zookeeper_port: u16,
    /// Node 1's ports; node N listens on these plus N - 1
    /// (`SLUICE_CLUSTER_HTTP_PORT` 18131, `SLUICE_CLUSTER_TCP_PORT` 19131,
    /// `SLUICE_CLUSTER_INTERSERVER_PORT` 19141).
    pub http_port: u16,
    pub tcp_port: u16,
    pub interserver_port: u16,
    /// How long a member may take to answer after it started
    /// (`SLUICE_CLUSTER_TIMEOUT`, 60 s).
    pub ready_timeout: Duration,
}

impl ClusterSettings {
    /// A cluster of a test's own: its state in `dir`, on free ports (three
    /// in a row of each kind, one per node).
    pub fn private(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            zookeeper_port: free_ports(1),
            http_port: free_ports(3),
            tcp_port: free_ports(3),
            interserver_port: free_ports(3),
            ready_timeout: Duration::from_secs(60),
        }
    }

    pub fn from_env(repo: &Path) -> anyhow::Result<Self> {
        let dir = match std::env::var_os("SLUICE_CLUSTER_DIR") {
            Some(dir) => absolute(Path::new(&dir))?,
            None => repo.join(".sluice/cluster"),
        };
        let settings = Self {
            dir,
            zookeeper_port: port("SLUICE_CLUSTER_ZOOKEEPER_PORT", 12181)?,
            http_port: port("SLUICE_CLUSTER_HTTP_PORT", 18131)?,
            tcp_port: port("SLUICE_CLUSTER_TCP_PORT", 19131)?,
            interserver_port: port("SLUICE_CLUSTER_INTERSERVER_PORT", 19141)?,
            ready_timeout: Duration::from_secs(number("SLUICE_CLUSTER_TIMEOUT", 60)?),
        };
        for (variable, base) in [
            ("SLUICE_CLUSTER_HTTP_PORT", settings.http_port),
            ("SLUICE_CLUSTER_TCP_PORT", settings.tcp_port),
            ("SLUICE_CLUSTER_INTERSERVER_PORT", settings.interserver_port),
        ] {
            anyhow::ensure!(
                base <= u16::MAX - 2,
                "{variable} must leave room for three nodes, got {base}"
            );
        }
        Ok(settings)
    }
}

/// The first of `count` consecutive ports that are free now, below Linux's
/// ephemeral range (32768 and up): the kernel gives those to outgoing
/// connections, which could take a member's port while it is stopped and
/// make its restart fail.
fn free_ports(count: u16) -> u16 {
    static DRAWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let free = |port: u16| std::net::TcpListener::bind((HOST, port)).is_ok();
    loop {
        // A cheap spread over 20000..32000 that differs between processes
        // and between calls; a taken port is simply drawn again.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| u64::from(since.subsec_nanos()));
        let draw = DRAWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mixed = (nanos ^ u64::from(std::process::id()).rotate_left(17))
            .wrapping_add(draw.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let first = 20_000 + (mixed % 12_000) as u16;
        if (0..count).all(|n| free(first + n)) {
            return first;
        }
    }
}

/// One process of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Zookeeper,
    /// ClickHouse node 1, 2 or 3.
    Node(usize),
}

impl Member {
    /// Every member, in start order.
    pub const ALL: [Self; 4] = [Self::Zookeeper, Self::Node(1), Self::Node(2), Self::Node(3)];

    /// `zookeeper` (or `zk`), `node1`, `node2`, `node3`.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|member| member.to_string() == word)
            .or((word == "zk").then_some(Self::Zookeeper))
    }

    /// The nodes of `shard` (1 or 2): stopping them all takes the shard down.
    pub fn shard(shard: u32) -> Vec<Self> {
        (1..=TOPOLOGY.len())
            .filter(|node| TOPOLOGY[node - 1].0 == shard)
            .map(Self::Node)
            .collect()
    }

    fn file_name(self) -> String {
        match self {
            Self::Zookeeper => "zookeeper".to_owned(),
            Self::Node(node) => format!("clickhouse-{node}"),
        }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zookeeper => f.write_str("zookeeper"),
            Self::Node(node) => write!(f, "node{node}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub settings: ClusterSettings,
}

/// Progress lines, as `cluster: …`.
fn say(line: impl AsRef<str>) {
    println!("cluster: {}", line.as_ref());
}

impl Cluster {
    pub fn new(settings: ClusterSettings) -> Self {
        Self { settings }
    }

    /// For a test's own cluster, when the test ends: stops every member and
    /// deletes its state, or, after a failure (the thread is panicking),
    /// keeps the logs and data to read and says where they are.
    pub fn end_of_test(&self) {
        if std::thread::panicking() {
            let _ = self.down(false);
            eprintln!(
                "the cluster's logs and data: {}",
                self.settings.dir.display()
            );
        } else {
            let _ = self.down(true);
            let _ = std::fs::remove_dir_all(&self.settings.dir);
        }
    }

    /// Node `node`'s HTTP port (1-based, as the members are named).
    pub fn http_port(&self, node: usize) -> u16 {
        self.settings.http_port + offset(node)
    }

    pub fn tcp_port(&self, node: usize) -> u16 {
        self.settings.tcp_port + offset(node)
    }

    pub fn interserver_port(&self, node: usize) -> u16 {
        self.settings.interserver_port + offset(node)
    }

    /// Node `node`'s HTTP URL, for the `clickhouse` crate or curl.
    pub fn url(&self, node: usize) -> String {
        format!("http://{HOST}:{}", self.http_port(node))
    }

    /// Starts what is not running (ZooKeeper first), then checks that every
    /// node has a ZooKeeper session and knows the cluster.
    pub fn up(&self) -> anyhow::Result<()> {
        self.require()?;
        let _lock = self.lock()?;
        // Every port first: a taken one stops `up` before anything started.
        for member in Member::ALL {
            if self.pid_file(member).running(&self.settings.dir).is_none() {
                self.check_ports_free(member)?;
            }
        }
        for member in Member::ALL {
            self.up_one(member)?;
        }
        for node in 1..=TOPOLOGY.len() {
            self.wait_joined(node)?;
        }
        say(format!(
            "up: cluster '{CLUSTER_NAME}', shard 1 on node1 and node2, shard 2 on node3; \
             ZooKeeper {HOST}:{}",
            self.settings.zookeeper_port
        ));
        Ok(())
    }

    /// Stops every member (nodes first); `wipe` also deletes data and logs.
    pub fn down(&self, wipe: bool) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        for member in Member::ALL.into_iter().rev() {
            self.down_one(member, Signal::Term)?;
            if wipe {
                let data = self.data_dir(member);
                remove(&data)?;
                remove(&self.log_file(member))?;
                say(format!("{member}: wiped {}", data.display()));
            }
        }
        Ok(())
    }

    /// Starts one member (kept data), e.g. after [`Cluster::stop`]. Start a
    /// node only while ZooKeeper serves: 18.16's `ON CLUSTER` worker gives
    /// up for good when ZooKeeper is unreachable at startup, and the node's
    /// next distributed DDL then crashes it.
    pub fn start(&self, member: Member) -> anyhow::Result<()> {
        self.require()?;
        let _lock = self.lock()?;
        self.up_one(member)
    }

    /// Stops one member: SIGTERM, SIGKILL after 10 s.
    pub fn stop(&self, member: Member) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        self.down_one(member, Signal::Term)
    }

    /// Kills one member with SIGKILL at once, as a crash would.
    pub fn kill(&self, member: Member) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        self.down_one(member, Signal::Kill)
    }

    /// One line per member; true when all are up and answering.
    pub fn status(&self) -> bool {
        let mut all_up = true;
        for member in Member::ALL {
            let pid_file = self.pid_file(member);
            let line = match pid_file.running(&self.settings.dir) {
                Some(pid) if self.answers(member) => {
                    format!("up, pid {pid}, {}", self.address(member))
                }
                Some(pid) => {
                    all_up = false;
                    format!(
                        "running but NOT answering, pid {pid}, {} (log: {})",
                        self.address(member),
                        self.log_file(member).display()
                    )
                }
                None => {
                    all_up = false;
                    "down".to_owned()
                }
            };
            println!("{member}: {line}");
        }
        println!("cluster dir: {}", self.settings.dir.display());
        all_up
    }

    /// Runs `sql` on node `node` over HTTP: the answer's body, or the
    /// server's error.
    pub fn query(&self, node: usize, sql: &str) -> anyhow::Result<String> {
        let port = self.http_port(node);
        match http_request(port, "POST", "/", &[], sql, Duration::from_secs(60)) {
            Some((200, body)) => Ok(body),
            Some((status, body)) => bail!("node{node}: HTTP {status}: {}", body.trim()),
            None => bail!("node{node}: no answer on {HOST}:{port}"),
        }
    }

    /// Fails early, naming every missing program and how to get it.
    fn require(&self) -> anyhow::Result<()> {
        let mut missing = Vec::new();
        if find_on_path("java").is_none() {
            missing.push("java".to_owned());
        }
        for jar in ZOOKEEPER_CLASSPATH {
            if !Path::new(jar).is_file() {
                missing.push(jar.to_owned());
            }
        }
        if server_binary().is_none() {
            missing.push("clickhouse-server".to_owned());
        }
        if !missing.is_empty() {
            bail!(
                "missing: {}\nrun deploy/install.sh zookeeper (ZooKeeper 3.8 and Java) \
                 and deploy/install.sh apt (ClickHouse)",
                missing.join(", ")
            );
        }
        Ok(())
    }

    fn lock(&self) -> anyhow::Result<std::fs::File> {
        let patience = self.settings.ready_timeout * 4 + Duration::from_secs(60);
        lock_state_dir(&self.settings.dir, "cluster", patience)
    }

    fn pid_file(&self, member: Member) -> PidFile {
        PidFile(
            self.settings
                .dir
                .join(format!("run/{}.pid", member.file_name())),
        )
    }

    fn log_file(&self, member: Member) -> PathBuf {
        self.settings
            .dir
            .join(format!("logs/{}.log", member.file_name()))
    }

    fn data_dir(&self, member: Member) -> PathBuf {
        self.settings.dir.join(member.file_name())
    }

    fn address(&self, member: Member) -> String {
        match member {
            Member::Zookeeper => format!("{HOST}:{}", self.settings.zookeeper_port),
            Member::Node(node) => format!(
                "{} (native {HOST}:{}, shard {}, replica {})",
                self.url(node),
                self.tcp_port(node),
                TOPOLOGY[node - 1].0,
                TOPOLOGY[node - 1].1
            ),
        }
    }

    /// The ports a member listens on, with the variable that moves each and
    /// its value.
    fn ports(&self, member: Member) -> Vec<(u16, &'static str, u16)> {
        let s = &self.settings;
        match member {
            Member::Zookeeper => vec![(
                s.zookeeper_port,
                "SLUICE_CLUSTER_ZOOKEEPER_PORT",
                s.zookeeper_port,
            )],
            Member::Node(node) => vec![
                (
                    self.http_port(node),
                    "SLUICE_CLUSTER_HTTP_PORT",
                    s.http_port,
                ),
                (self.tcp_port(node), "SLUICE_CLUSTER_TCP_PORT", s.tcp_port),
                (
                    self.interserver_port(node),
                    "SLUICE_CLUSTER_INTERSERVER_PORT",
                    s.interserver_port,
                ),
            ],
        }
    }

    fn answers(&self, member: Member) -> bool {
        match member {
            Member::Zookeeper => zookeeper_answers(self.settings.zookeeper_port),
            Member::Node(node) => http_ping(self.http_port(node)),
        }
    }

    fn server_config(&self, node: usize) -> ServerConfig {
        let (shard, replica) = TOPOLOGY[node - 1];
        let mut shards: Vec<Vec<u16>> = Vec::new();
        for (index, (shard, _)) in TOPOLOGY.iter().enumerate() {
            let shard = *shard as usize;
            if shards.len() < shard {
                shards.resize(shard, Vec::new());
            }
            shards[shard - 1].push(self.tcp_port(index + 1));
        }
        ServerConfig {
            dir: self.data_dir(Member::Node(node)),
            http_port: Some(self.http_port(node)),
            https: None,
            tcp_port: self.tcp_port(node),
            // Three servers share two cores and the stack's server.
            cache_bytes: 128 << 20,
            users: vec![User::open_default()],
            replication: Some(Replication {
                interserver_http_port: self.interserver_port(node),
                zookeeper_ports: vec![self.settings.zookeeper_port],
                shard,
                replica: replica.to_owned(),
                remote_servers: vec![
                    RemoteCluster {
                        name: ONE_SHARD_CLUSTER_NAME.to_owned(),
                        shards: shards[..1].to_vec(),
                    },
                    RemoteCluster {
                        name: CLUSTER_NAME.to_owned(),
                        shards,
                    },
                ],
            }),
        }
    }

    /// ZooKeeper's zoo.cfg (standalone, loopback only, `ruok` and `stat`
    /// allowed, no admin server: its port 8080 would collide).
    fn zookeeper_launch(&self) -> anyhow::Result<Launch> {
        let dir = self.data_dir(Member::Zookeeper);
        std::fs::create_dir_all(dir.join("data"))?;
        let config = dir.join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "# Generated by sluice-dev (devstack/); edits are overwritten on the next start.\n\
                 tickTime=2000\n\
                 dataDir={data}\n\
                 clientPort={port}\n\
                 clientPortAddress={HOST}\n\
                 maxClientCnxns=0\n\
                 admin.enableServer=false\n\
                 4lw.commands.whitelist=ruok,stat\n\
                 autopurge.snapRetainCount=3\n\
                 autopurge.purgeInterval=1\n",
                data = dir.join("data").display(),
                port = self.settings.zookeeper_port,
            ),
        )?;
        Ok(Launch {
            program: find_on_path("java").ok_or_else(|| anyhow::anyhow!("java is missing"))?,
            args: vec![
                "-Xmx256m".into(),
                "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
                "-cp".into(),
                ZOOKEEPER_CLASSPATH.join(":"),
                "org.apache.zookeeper.server.ZooKeeperServerMain".into(),
                config.display().to_string(),
            ],
            // The caller's JVM options must not change the server.
            env_remove: vec!["JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "CLASSPATH"],
            env: Vec::new(),
            workdir: dir,
        })
    }

    fn up_one(&self, member: Member) -> anyhow::Result<()> {
        let pid_file = self.pid_file(member);
        if let Some(pid) = pid_file.running(&self.settings.dir) {
            self.wait_ready(member, pid)?;
            say(format!(
                "{member}: already up (pid {pid}) at {}",
                self.address(member)
            ));
            return Ok(());
        }
        if let Some(stale) = pid_file.clean_if_stale(&self.settings.dir) {
            say(format!("{member}: {stale}"));
        }
        for sub in ["run", "logs"] {
            std::fs::create_dir_all(self.settings.dir.join(sub))?;
        }
        self.check_ports_free(member)?;
        say(format!("{member}: starting"));
        let spec = match member {
            Member::Zookeeper => self.zookeeper_launch()?,
            Member::Node(node) => server_launch(&self.server_config(node))?,
        };
        let pid = launch(&spec, &self.log_file(member), &pid_file)?;
        self.wait_ready(member, pid)?;
        say(format!(
            "{member}: up (pid {pid}) at {}; data in {}",
            self.address(member),
            self.data_dir(member).display()
        ));
        Ok(())
    }

    /// Another program on a member's port would make it die with a bind
    /// error, or the tests talk to the wrong server.
    fn check_ports_free(&self, member: Member) -> anyhow::Result<()> {
        for (port, variable, value) in self.ports(member) {
            refuse_taken_port(
                &member.to_string(),
                port,
                (variable, value),
                "sluice-dev cluster up\n(node N uses the variable's port plus N - 1)",
            )?;
        }
        Ok(())
    }

    fn wait_ready(&self, member: Member, pid: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.settings.ready_timeout;
        while !self.answers(member) {
            if !is_alive(pid) {
                self.pid_file(member).remove();
                bail!(
                    "{member}: the server (pid {pid}) exited during startup\n{}",
                    self.tail_logs(member)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{member}: pid {pid} is running but not answering at {} after {} s\n{}",
                    self.address(member),
                    self.settings.ready_timeout.as_secs(),
                    self.tail_logs(member)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The node has a ZooKeeper session and the cluster in its config.
    fn wait_joined(&self, node: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.settings.ready_timeout;
        let check = format!(
            "SELECT (SELECT count() FROM system.zookeeper WHERE path = '/') > 0, \
             (SELECT count() FROM system.clusters WHERE cluster = '{CLUSTER_NAME}')"
        );
        loop {
            let answer = self.query(node, &check);
            match &answer {
                Ok(body) if body.trim() == format!("1\t{}", TOPOLOGY.len()) => return Ok(()),
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(300)),
                _ => bail!(
                    "node{node}: no ZooKeeper session or no cluster '{CLUSTER_NAME}' after {} s: {answer:?}\n{}",
                    self.settings.ready_timeout.as_secs(),
                    self.tail_logs(Member::Node(node))
                ),
            }
        }
    }

    fn tail_logs(&self, member: Member) -> String {
        let mut logs = vec![self.log_file(member)];
        if let Member::Node(node) = member {
            logs.push(self.server_config(node).error_log());
        }
        tail_files(&logs)
    }

    fn down_one(&self, member: Member, how: Signal) -> anyhow::Result<()> {
        let pid_file = self.pid_file(member);
        let Some(pid) = pid_file.running(&self.settings.dir) else {
            if let Some(stale) = pid_file.clean_if_stale(&self.settings.dir) {
                say(format!("{member}: {stale}"));
            }
            say(format!("{member}: not running"));
            return Ok(());
        };
        match how {
            Signal::Term => {
                if stop(pid, STOP_PATIENCE).with_context(|| member.to_string())? {
                    say(format!(
                        "{member}: pid {pid} did not stop within {} s of SIGTERM; sent SIGKILL",
                        STOP_PATIENCE.as_secs()
                    ));
                }
                say(format!("{member}: stopped (pid {pid})"));
            }
            Signal::Kill => {
                signal(pid, "KILL");
                let deadline = Instant::now() + Duration::from_secs(5);
                while is_alive(pid) {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "{member}: pid {pid} survived SIGKILL"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                say(format!("{member}: killed (pid {pid}, SIGKILL)"));
            }
        }
        pid_file.remove();
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

/// Node N's ports are node 1's plus N - 1.
fn offset(node: usize) -> u16 {
    assert!(
        (1..=TOPOLOGY.len()).contains(&node),
        "nodes are 1 to {}, not {node}",
        TOPOLOGY.len()
    );
    (node - 1) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        Cluster::new(ClusterSettings {
            dir: PathBuf::from("/srv/cluster"),
            zookeeper_port: 2181,
            http_port: 8100,
            tcp_port: 9100,
            interserver_port: 9200,
            ready_timeout: Duration::from_secs(1),
        })
    }

    #[test]
    fn two_shards_the_first_with_two_replicas() {
        let cluster = cluster();
        let config = cluster.server_config(2);
        let replication = config.replication.unwrap();
        assert_eq!(
            (replication.shard, replication.replica.as_str()),
            (1, "node2")
        );
        let clusters: Vec<_> = replication
            .remote_servers
            .iter()
            .map(|cluster| (cluster.name.as_str(), cluster.shards.clone()))
            .collect();
        assert_eq!(
            clusters,
            [
                (ONE_SHARD_CLUSTER_NAME, vec![vec![9100, 9101]]),
                (CLUSTER_NAME, vec![vec![9100, 9101], vec![9102]])
            ]
        );
        assert_eq!(
            (
                config.http_port,
                config.tcp_port,
                replication.interserver_http_port
            ),
            (Some(8101), 9101, 9201)
        );
        assert_eq!(config.dir, PathBuf::from("/srv/cluster/clickhouse-2"));
        assert_eq!(Member::shard(1), [Member::Node(1), Member::Node(2)]);
        assert_eq!(Member::shard(2), [Member::Node(3)]);
    }

    #[test]
    fn members_by_name() {
        for member in Member::ALL {
            assert_eq!(Member::parse(&member.to_string()), Some(member));
        }
        assert_eq!(Member::parse("zk"), Some(Member::Zookeeper));
        assert_eq!(Member::parse("node4"), None);
    }
}
