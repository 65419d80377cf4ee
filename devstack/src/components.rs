//! The three components: the broker (tansu, the Kafka protocol), ClickHouse
//! 18.16 and the chdb fixture (a current ClickHouse engine behind HTTP, for
//! tests only): how each starts, where it keeps its state, how to tell it
//! answers, and which version answers.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::clickhouse_config::{ServerConfig, User, server_binary, server_launch};
use crate::find_on_path;
use crate::probe::{http_get, http_ping, kafka_answers};
use crate::process::Launch;
use crate::settings::{HOST, StackSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Kafka,
    Clickhouse,
    Chdb,
}

impl Component {
    /// A command-line word: `kafka` (or `tansu`, `broker`), `clickhouse`
    /// (or `ch`), `chdb`, or `all`.
    pub fn parse(word: &str) -> Option<Vec<Self>> {
        Some(match word {
            "kafka" | "tansu" | "broker" => vec![Self::Kafka],
            "clickhouse" | "ch" => vec![Self::Clickhouse],
            "chdb" => vec![Self::Chdb],
            "all" => vec![Self::Clickhouse, Self::Kafka, Self::Chdb],
            _ => return None,
        })
    }

    /// What it is to Sluice.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Clickhouse => "clickhouse",
            Self::Chdb => "chdb",
        }
    }

    /// What runs, and names its files.
    fn process_name(self) -> &'static str {
        match self {
            Self::Kafka => "tansu",
            Self::Clickhouse => "clickhouse",
            Self::Chdb => "chdb",
        }
    }

    pub fn pid_file(self, settings: &StackSettings) -> PathBuf {
        settings
            .dir
            .join(format!("run/{}.pid", self.process_name()))
    }

    pub fn log_file(self, settings: &StackSettings) -> PathBuf {
        settings
            .dir
            .join(format!("logs/{}.log", self.process_name()))
    }

    pub fn data_dir(self, settings: &StackSettings) -> PathBuf {
        settings.dir.join(self.process_name())
    }

    pub fn url(self, settings: &StackSettings) -> String {
        match self {
            Self::Kafka => format!("tcp://{HOST}:{}", settings.kafka_port),
            Self::Clickhouse => format!(
                "http://{HOST}:{} (native tcp://{HOST}:{})",
                settings.clickhouse_http_port, settings.clickhouse_tcp_port
            ),
            Self::Chdb => format!("http://{HOST}:{} (test fixture)", settings.chdb_port),
        }
    }

    /// The ports it listens on, with the variable that moves each.
    pub fn ports(self, settings: &StackSettings) -> Vec<(u16, &'static str)> {
        match self {
            Self::Kafka => vec![(settings.kafka_port, "SLUICE_KAFKA_PORT")],
            Self::Clickhouse => vec![
                (settings.clickhouse_http_port, "SLUICE_CLICKHOUSE_HTTP_PORT"),
                (settings.clickhouse_tcp_port, "SLUICE_CLICKHOUSE_TCP_PORT"),
            ],
            Self::Chdb => vec![(settings.chdb_port, "SLUICE_CHDB_HTTP_PORT")],
        }
    }

    pub fn answers(self, settings: &StackSettings) -> bool {
        match self {
            Self::Kafka => kafka_answers(settings.kafka_port),
            Self::Clickhouse => http_ping(settings.clickhouse_http_port),
            Self::Chdb => http_ping(settings.chdb_port),
        }
    }

    /// What is missing to run it, each with how to get it.
    pub fn missing(self, settings: &StackSettings) -> Vec<String> {
        match self {
            Self::Kafka if tansu_binary().is_none() => vec![format!(
                "tansu (looked in SLUICE_TANSU_BIN, on PATH and in {})",
                cargo_bin().display()
            )],
            Self::Clickhouse => {
                let mut missing = Vec::new();
                if server_binary().is_none() {
                    missing.push("clickhouse-server".to_owned());
                }
                if find_on_path("clickhouse-client").is_none() {
                    missing.push("clickhouse-client".to_owned());
                }
                missing
            }
            Self::Chdb => {
                let imports = Command::new(settings.chdb_venv.join("bin/python"))
                    .args(["-c", "import chdb, lz4, clickhouse_cityhash"])
                    .output();
                if imports.is_ok_and(|output| output.status.success()) {
                    Vec::new()
                } else {
                    vec![format!(
                        "the chdb fixture's Python packages in {} (deploy/install.sh chdb)",
                        settings.chdb_venv.display()
                    )]
                }
            }
            Self::Kafka => Vec::new(),
        }
    }

    /// What to run; writes ClickHouse's config first.
    pub fn launch(self, settings: &StackSettings) -> anyhow::Result<Launch> {
        let dir = self.data_dir(settings);
        std::fs::create_dir_all(&dir)?;
        Ok(match self {
            Self::Kafka => {
                // The directory goes into a URL unescaped.
                anyhow::ensure!(
                    !dir.to_string_lossy().contains(char::is_whitespace),
                    "SLUICE_STACK_DIR must not contain whitespace: {}",
                    settings.dir.display()
                );
                let listener = format!("tcp://{HOST}:{}", settings.kafka_port);
                Launch {
                    program: tansu_binary().ok_or_else(|| anyhow::anyhow!("tansu is missing"))?,
                    // sqlite storage: durable across restarts, and resumes
                    // consumers exactly (the memory engine of 0.6.0 skips and
                    // repeats on resume). tansu 0.6.0 reads the URL's path as
                    // relative to its working directory even when absolute, so
                    // the file is named relative to the data directory.
                    args: [
                        "broker",
                        "--cluster-id",
                        "sluice-local",
                        "--listener-url",
                        &listener,
                        "--advertised-listener-url",
                        &listener,
                        "--storage-engine",
                        "sqlite://tansu.db",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    // tansu reads every option from a generic variable too:
                    // the caller's environment must not change the broker. No
                    // schema registry: Sluice validates and dead-letters itself.
                    env_remove: vec!["SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT"],
                    // A plain log file instead of ANSI escapes.
                    env: vec![("NO_COLOR", "1".to_owned())],
                    workdir: dir,
                }
            }
            Self::Clickhouse => server_launch(&self.server_config(settings))?,
            Self::Chdb => Launch {
                program: settings.chdb_venv.join("bin/python"),
                // The data path goes on the command line so that the process
                // is recognised as this stack's.
                args: vec![
                    settings
                        .repo
                        .join("testkit/chdb-fixture/chdb_http_fixture.py")
                        .display()
                        .to_string(),
                    "--host".into(),
                    HOST.into(),
                    "--port".into(),
                    settings.chdb_port.to_string(),
                    "--path".into(),
                    dir.join("data").display().to_string(),
                ],
                env_remove: Vec::new(),
                env: Vec::new(),
                workdir: dir,
            },
        })
    }

    fn server_config(self, settings: &StackSettings) -> ServerConfig {
        ServerConfig {
            dir: self.data_dir(settings),
            http_port: Some(settings.clickhouse_http_port),
            https: None,
            tcp_port: settings.clickhouse_tcp_port,
            cache_bytes: 256 << 20,
            // Passwordless, reachable from loopback only (it binds 127.0.0.1).
            users: vec![User::open_default()],
            replication: None,
        }
    }

    /// Files worth showing when it does not start.
    pub fn logs(self, settings: &StackSettings) -> Vec<PathBuf> {
        let mut logs = vec![self.log_file(settings)];
        if self == Self::Clickhouse {
            logs.push(self.server_config(settings).error_log());
        }
        logs
    }

    /// `/ping` says only that HTTP is up: a query must run too (for
    /// ClickHouse over the native protocol and over HTTP). The version.
    pub fn version(self, settings: &StackSettings) -> anyhow::Result<Option<String>> {
        let http_query = |port: u16, sql: &str| {
            http_get(port, &format!("/?query={sql}"), Duration::from_secs(10))
                .filter(|(status, _)| *status == 200)
                .map(|(_, body)| body.trim().to_owned())
        };
        match self {
            Self::Kafka => Ok(None),
            Self::Clickhouse => {
                let port = settings.clickhouse_tcp_port.to_string();
                let deadline = Instant::now() + Duration::from_secs(5);
                let version = loop {
                    let output = Command::new("clickhouse-client")
                        .args(["--host", HOST, "--port", &port, "-q", "SELECT version()"])
                        .output();
                    if let Ok(output) = output
                        && output.status.success()
                    {
                        break String::from_utf8_lossy(&output.stdout).trim().to_owned();
                    }
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "clickhouse: /ping answers but clickhouse-client --port {port} cannot run SELECT version()"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                };
                let one = http_query(settings.clickhouse_http_port, "SELECT%201");
                anyhow::ensure!(
                    one.as_deref() == Some("1"),
                    "clickhouse: HTTP query SELECT 1 failed: {one:?}"
                );
                Ok(Some(version))
            }
            Self::Chdb => http_query(settings.chdb_port, "SELECT%20version()")
                .map(Some)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "HTTP query SELECT version() on port {} failed",
                        settings.chdb_port
                    )
                }),
        }
    }
}

fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
}

/// `SLUICE_TANSU_BIN`, tansu on PATH, or cargo's bin directory.
pub fn tansu_binary() -> Option<PathBuf> {
    std::env::var_os("SLUICE_TANSU_BIN")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .or_else(|| find_on_path("tansu"))
        .or_else(|| Some(cargo_bin().join("tansu")).filter(|path| path.is_file()))
}
