//! What a benchmark starts and stops: private tansu brokers (memory
//! engine), Sluice's release services with only the settings the stage
//! gives them (none of the caller's `SLUICE_*`), and the readings taken
//! from `/proc` (CPU seconds, peak RSS). Everything started is stopped,
//! newest first, when the [`Processes`] is dropped, on success or error.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::HttpEndpoint;
use crate::clickhouse_config::{ServerConfig, server_launch};
use crate::components::tansu_binary;
use crate::probe::{http_get, port_open, post_admin_key};
use crate::process::{Launch, attached_command, is_alive, stop};
use crate::settings::HOST;

/// How long a process may take to answer after it started.
const READY_PATIENCE: Duration = Duration::from_secs(30);

/// The processes a benchmark started, stopped newest first on drop.
#[derive(Debug)]
pub struct Processes {
    children: Vec<Child>,
    /// How long a process may take to answer after it started.
    pub patience: Duration,
}

impl Default for Processes {
    fn default() -> Self {
        Self {
            children: Vec::new(),
            patience: READY_PATIENCE,
        }
    }
}

/// A private tansu: where it listens and what it advertises, its storage
/// (a `sqlite://` file is relative to `workdir`), extra arguments (e.g.
/// `--authentication`), and the option that moves its port.
#[derive(Debug, Clone)]
pub struct Broker<'a> {
    pub port: u16,
    pub advertised: u16,
    pub storage: &'a str,
    pub workdir: PathBuf,
    pub extra: &'a [&'a str],
    pub port_option: &'static str,
}

/// A service to start: its binary, log, port and settings.
#[derive(Debug, Clone)]
pub struct ServiceLaunch {
    pub binary: PathBuf,
    pub log: PathBuf,
    /// Answers `/health/ready` here once ready.
    pub port: u16,
    /// The option that moves the port, named when it is taken.
    pub port_option: &'static str,
    pub env: Vec<(&'static str, String)>,
}

impl Processes {
    /// A private tansu on `port` with the memory engine (fast; fine for
    /// throughput, never for consumer restarts).
    pub fn tansu(&mut self, port: u16, log: &Path) -> anyhow::Result<u32> {
        let broker = Broker {
            port,
            advertised: port,
            storage: "memory://tansu/",
            workdir: log
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            extra: &[],
            port_option: "--kafka-port",
        };
        self.tansu_with(&broker, log)
    }

    /// A private tansu as `broker` says.
    pub fn tansu_with(&mut self, broker: &Broker<'_>, log: &Path) -> anyhow::Result<u32> {
        let Broker {
            port,
            advertised,
            storage,
            extra,
            port_option,
            ..
        } = *broker;
        ensure_free(port, port_option)?;
        let listener = format!("tcp://{HOST}:{port}");
        let advertised = format!("tcp://{HOST}:{advertised}");
        let mut args = vec![
            "broker",
            "--cluster-id",
            "sluice-bench",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &advertised,
            "--storage-engine",
            storage,
        ];
        args.extend_from_slice(extra);
        let launch = Launch {
            program: tansu_binary()
                .ok_or_else(|| anyhow::anyhow!("tansu is not on PATH (deploy/install.sh tansu)"))?,
            args: args.into_iter().map(str::to_owned).collect(),
            // tansu reads options from generic variables too.
            env_remove: vec![
                "SCHEMA_REGISTRY",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "STORAGE_ENGINE",
                "CLUSTER_ID",
                "LISTENER_URL",
                "ADVERTISED_LISTENER_URL",
            ],
            env: vec![("NO_COLOR", "1".into())],
            workdir: broker.workdir.clone(),
        };
        let pid = self.spawn(&launch, log, false)?;
        self.wait_until("tansu", pid, log, || port_open(port))?;
        Ok(pid)
    }

    /// A private ClickHouse server as `config` says (HTTP port required),
    /// its stderr into `log`; waits until it answers `/ping`. Its pid and
    /// HTTP endpoint.
    pub fn clickhouse(
        &mut self,
        config: &ServerConfig,
        log: &Path,
    ) -> anyhow::Result<(u32, HttpEndpoint)> {
        let port = config
            .http_port
            .ok_or_else(|| anyhow::anyhow!("a benchmark's ClickHouse needs an HTTP port"))?;
        let pid = self.spawn(&server_launch(config)?, log, false)?;
        let endpoint = HttpEndpoint {
            host: HOST.into(),
            port,
        };
        self.wait_until("clickhouse-server", pid, &config.error_log(), || {
            endpoint.ping()
        })?;
        Ok((pid, endpoint))
    }

    /// A Sluice service (or the ceiling example) with exactly `service.env`
    /// of the `SLUICE_*` settings, `SLUICE_LOG=warn` unless given; waits
    /// until `/health/ready` answers 200.
    pub fn service(&mut self, service: &ServiceLaunch) -> anyhow::Result<u32> {
        ensure_free(service.port, service.port_option)?;
        let mut env = vec![("SLUICE_LOG", "warn".to_owned())];
        env.extend(service.env.iter().cloned());
        let launch = Launch {
            program: service.binary.clone(),
            args: Vec::new(),
            env_remove: Vec::new(),
            env,
            workdir: service
                .log
                .parent()
                .map_or_else(|| ".".into(), Path::to_path_buf),
        };
        let pid = self.spawn(&launch, &service.log, true)?;
        let name = service
            .binary
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
        self.wait_until(&name, pid, &service.log, || {
            http_get(service.port, "/health/ready", Duration::from_secs(2))
                .is_some_and(|(status, _)| status == 200)
        })?;
        Ok(pid)
    }

    /// Starts `launch` (without the caller's `SLUICE_*` when
    /// `clear_sluice_env`); the pid.
    pub fn spawn(
        &mut self,
        launch: &Launch,
        log: &Path,
        clear_sluice_env: bool,
    ) -> anyhow::Result<u32> {
        let mut command = attached_command(launch, log)?;
        if clear_sluice_env {
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("SLUICE_") {
                    command.env_remove(name);
                }
            }
            command.envs(launch.env.iter().map(|(name, value)| (name, value)));
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", launch.program.display()))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Polls `ready` for the patience while `pid` lives.
    pub fn wait_until(
        &mut self,
        what: &str,
        pid: u32,
        log: &Path,
        ready: impl Fn() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.patience;
        loop {
            if ready() {
                return Ok(());
            }
            self.reap();
            if !is_alive(pid) {
                bail!("{what} exited at startup; see {}", log.display());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{what} not ready after {} s; see {}",
                    self.patience.as_secs(),
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn reap(&mut self) {
        for child in &mut self.children {
            let _ = child.try_wait();
        }
    }

    /// Stops one process this started (SIGTERM, SIGKILL after 5 s).
    pub fn stop(&mut self, pid: u32) {
        if let Some(index) = self.children.iter().position(|child| child.id() == pid) {
            let mut child = self.children.remove(index);
            stop_child(&mut child);
        }
    }

    /// Stops everything, newest first.
    pub fn stop_all(&mut self) {
        while let Some(mut child) = self.children.pop() {
            stop_child(&mut child);
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn stop_child(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = stop(child.id(), Duration::from_secs(5));
    }
    let _ = child.wait();
}

/// Fails when something listens on `port`; names the option that moves it.
pub fn ensure_free(port: u16, option: &str) -> anyhow::Result<()> {
    if port_open(port) {
        bail!("port {port} is taken ({option})");
    }
    Ok(())
}

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// Peak resident memory of `pid` so far (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmHWM:")
}

/// A process's resident memory now (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A key of `scopes` for `project` through the gateway's admin API, with
/// limits far above any benchmark's load; an existing key is kept.
pub fn create_api_key(
    gateway_port: u16,
    admin_token: &str,
    project: &str,
    key: &str,
    scopes: &[&str],
) -> anyhow::Result<()> {
    let limit = 1_000_000_000u64;
    let body = serde_json::json!({
        "project_id": project, "scopes": scopes, "key": key, "label": "benchmark",
        "limits": {"requests_per_second": limit, "request_burst": limit,
                   "events_per_second": limit, "event_burst": limit},
    })
    .to_string();
    let answer = post_admin_key(gateway_port, admin_token, &body).ok_or_else(|| {
        anyhow::anyhow!("cannot reach the gateway's admin API on port {gateway_port}")
    })?;
    if answer.contains("\"key_id\"") || answer.contains("already exists") {
        Ok(())
    } else {
        bail!("the gateway refused the benchmark key: {answer}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(peak_rss_kib(pid).is_some_and(|kib| kib > 0.0));
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn a_taken_port_names_its_option() {
        let listener = std::net::TcpListener::bind((HOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let error = ensure_free(port, "--kafka-port").unwrap_err().to_string();
        assert!(error.contains("--kafka-port"), "{error}");
    }
}
