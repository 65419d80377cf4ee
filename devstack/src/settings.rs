//! Where the stack lives and listens: `SLUICE_*` variables over defaults,
//! each checked, or a struct literal (testkit's private stacks).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

/// Everything binds here only.
pub const HOST: &str = "127.0.0.1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSettings {
    /// State: data, generated configs, pid files, logs (`SLUICE_STACK_DIR`,
    /// default `<repo>/.sluice`). Absolute: it ends up in configs and URLs.
    pub dir: PathBuf,
    pub kafka_port: u16,
    pub clickhouse_http_port: u16,
    pub clickhouse_tcp_port: u16,
    pub chdb_port: u16,
    /// How long a component may take to answer after it started.
    pub ready_timeout: Duration,
    /// The chdb fixture's Python environment (`deploy/install.sh chdb`).
    pub chdb_venv: PathBuf,
    /// The repository, for the chdb fixture's script.
    pub repo: PathBuf,
}

impl StackSettings {
    /// The settings of `repo`'s stack from the environment.
    pub fn from_env(repo: &Path) -> anyhow::Result<Self> {
        let dir = match std::env::var_os("SLUICE_STACK_DIR") {
            Some(dir) => absolute(Path::new(&dir))?,
            None => repo.join(".sluice"),
        };
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        Ok(Self {
            dir,
            kafka_port: port("SLUICE_KAFKA_PORT", 9092)?,
            clickhouse_http_port: port("SLUICE_CLICKHOUSE_HTTP_PORT", 8123)?,
            clickhouse_tcp_port: port("SLUICE_CLICKHOUSE_TCP_PORT", 9000)?,
            chdb_port: port("SLUICE_CHDB_HTTP_PORT", 8124)?,
            ready_timeout: Duration::from_secs(number("SLUICE_STACK_TIMEOUT", 30)?),
            chdb_venv: std::env::var_os("SLUICE_CHDB_VENV")
                .map_or_else(|| home.join(".cache/sluice/chdb-venv"), PathBuf::from),
            repo: repo.to_path_buf(),
        })
    }

    /// Only a broker, on `kafka_port`, with its state in `dir`: a test's
    /// private broker.
    pub fn private(dir: &Path, kafka_port: u16) -> Self {
        Self {
            dir: dir.to_path_buf(),
            kafka_port,
            clickhouse_http_port: 0,
            clickhouse_tcp_port: 0,
            chdb_port: 0,
            ready_timeout: Duration::from_secs(30),
            chdb_venv: PathBuf::new(),
            repo: PathBuf::new(),
        }
    }

    pub fn kafka_brokers(&self) -> String {
        format!("{HOST}:{}", self.kafka_port)
    }

    pub fn clickhouse_url(&self) -> String {
        format!("http://{HOST}:{}", self.clickhouse_http_port)
    }
}

pub(crate) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("SLUICE_STACK_DIR {}", path.display()))
}

pub(crate) fn number(variable: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(variable) {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse() {
            Ok(value) => Ok(value),
            Err(_) => bail!("{variable} must be a number, got '{text}'"),
        },
    }
}

pub(crate) fn port(variable: &str, default: u16) -> anyhow::Result<u16> {
    let value = number(variable, u64::from(default))?;
    match u16::try_from(value) {
        Ok(port) if port > 0 => Ok(port),
        _ => bail!("{variable} must be a port (1 to 65535), got '{value}'"),
    }
}
