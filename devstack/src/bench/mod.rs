//! `sluice-dev bench`: the benchmark stages of `BENCHMARKS.md`, in Rust
//! instead of the shell scripts that ran them (issue 18). Each stage
//! starts private brokers and release services on its own ports, drives
//! them with `sluice-loadgen`, reads its JSON reports and writes the
//! tables.
//!
//! - [`all`]: `bench all` / `bench quick`: every stage, one table; its
//!   [`drain`] (processor) and [`query`] stages.
//! - [`gateway`]: `bench gateway`: the gateway against a bare producer,
//!   with [`gateway_table`]'s table.
//! - [`destinations`]: `bench destinations`: webhook deliveries per
//!   second, latency to the receiver, CPU per delivery.
//! - [`e2e`]: `bench e2e`: freshness, ack to visible, and the exact count.
//! - [`sweep`]: `bench sweep-gateway` and `bench sweep-e2e`.
//! - [`k6`]: `bench k6`: a k6 suite with the real k6 binary.
//! - [`tls`]: `bench tls`: plaintext against SASL_SSL to the broker
//!   (and HTTPS to ClickHouse): [`tls_rig`] starts what runs,
//!   [`tls_phases`] measures, [`tls_table`] tabulates.
//! - [`processes`]: what a stage starts, stopped on drop; `/proc` readings.
//! - [`report`]: running the load generator and reading its JSON reports.
//! - [`figures`]: measured figures, and their tables (median, min, max).
//! - [`stats`]: median, minimum, maximum, percentiles, number formats.

pub mod all;
pub mod destinations;
pub mod drain;
pub mod e2e;
pub mod figures;
pub mod gateway;
pub mod gateway_table;
pub mod k6;
pub mod processes;
pub mod query;
pub mod report;
pub mod stats;
pub mod sweep;
pub mod tls;
pub mod tls_phases;
pub mod tls_rig;
pub mod tls_settings;
pub mod tls_table;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::probe::HttpRequest;

/// Where the release binaries are, and whether to build them first.
#[derive(Debug, Clone, clap::Args)]
pub struct Binaries {
    /// Use the release binaries already built.
    #[arg(long)]
    pub no_build: bool,
    /// Take the binaries from DIR, examples from DIR/examples (implies --no-build).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

impl Binaries {
    /// The directory of the binaries: --bin-dir, else CARGO_TARGET_DIR's
    /// (or the checkout's target's) release directory.
    pub fn dir(&self, repo: &Path) -> PathBuf {
        self.bin_dir.clone().unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo.join("target"), PathBuf::from)
                .join("release")
        })
    }

    /// Builds `packages` (and `examples`) in release unless told not to,
    /// then checks that each of `needed` (relative to the directory) exists.
    pub fn prepare(
        &self,
        repo: &Path,
        packages: &[&str],
        examples: &[&str],
        needed: &[&str],
    ) -> anyhow::Result<PathBuf> {
        if !self.no_build && self.bin_dir.is_none() {
            eprintln!("bench: building release binaries");
            let mut command = Command::new("cargo");
            command
                .args(["build", "--release", "--bins"])
                .current_dir(repo);
            for package in packages {
                command.args(["-p", package]);
            }
            for example in examples {
                command.args(["--example", example]);
            }
            if !command.status().context("cannot run cargo")?.success() {
                bail!("the release build failed; its errors are above");
            }
        }
        let dir = self.dir(repo);
        for binary in needed {
            if !dir.join(binary).is_file() {
                bail!(
                    "no {binary} in {} (run without --no-build, or pass --bin-dir)",
                    dir.display()
                );
            }
        }
        Ok(dir)
    }
}

/// The closed-loop HTTP load of the gateway's peak phase, as `bench
/// gateway` and `bench tls` send it.
#[derive(Debug, Clone, clap::Args)]
pub struct PeakLoad {
    /// Unmeasured seconds before each HTTP phase.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Events per HTTP request.
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
    /// Size of one event as JSON.
    #[arg(long, default_value_t = 300)]
    pub event_bytes: u32,
    /// HTTP connections of the peak phase (closed loop: events/s =
    /// connections x batch / latency, so 64 keep the gateway busy).
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
}

/// A fresh directory for one run's results and logs:
/// `<repo>/.sluice/bench/<prefix><UTC time>`.
/// (`-2`, `-3`… when runs start within one second).
pub fn run_dir(repo: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    let parent = repo.join(".sluice/bench");
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let stem = format!("{prefix}{}", utc_stamp());
    for n in 1.. {
        let dir = match n {
            1 => parent.join(&stem),
            _ => parent.join(format!("{stem}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot create {}", dir.display()));
            }
        }
    }
    unreachable!("a free directory name exists")
}

/// Now as `YYYYMMDDTHHMMSSZ` (UTC).
pub fn utc_stamp() -> String {
    let (date, time) = civil(unix_seconds());
    format!("{date}T{time}Z")
}

/// Seconds since the epoch as `YYYYMMDD` and `HHMMSS` (UTC).
fn civil(seconds: u64) -> (String, String) {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}{month:02}{day:02}"),
        format!("{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60),
    )
}

/// Seconds since the epoch (for unique database names).
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// An HTTP server at `http://HOST:PORT`: ClickHouse's HTTP interface
/// (`query`, `count`, `ping`) or a Sluice service (`request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpoint {
    pub host: String,
    pub port: u16,
}

impl HttpEndpoint {
    /// Parses `url` (`http://host:port`, path ignored); `option` names the
    /// setting in errors.
    pub fn parse(url: &str, option: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("{option} must be an http:// URL, got '{url}'");
        };
        let address = rest.split('/').next().unwrap_or_default();
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("{option} must name a port, got '{url}'"))?;
        let port = port
            .parse()
            .map_err(|_| anyhow::anyhow!("{option} has no valid port: '{url}'"))?;
        Ok(Self {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    pub fn ping(&self) -> bool {
        self.request("GET", "/ping", "")
            .is_some_and(|(status, body)| status == 200 && body.trim() == "Ok.")
    }

    /// One statement; its answer, trimmed.
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        match self.request("POST", "/", sql) {
            Some((200, body)) => Ok(body.trim().to_owned()),
            Some((status, body)) => bail!(
                "ClickHouse at {} refused ({status}): {sql}: {body}",
                self.url()
            ),
            None => bail!("no answer from ClickHouse at {}: {sql}", self.url()),
        }
    }

    /// `SELECT count() …` as a number.
    pub fn count(&self, sql: &str) -> anyhow::Result<u64> {
        let answer = self.query(sql)?;
        answer
            .parse()
            .with_context(|| format!("ClickHouse answered '{answer}' to {sql}"))
    }

    fn request(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        self.call(method, path, &[], body)
    }

    /// One request with `headers`: the status and body, `None` without an answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<(u16, String)> {
        HttpRequest {
            host: &self.host,
            port: self.port,
            method,
            path,
            headers,
            body,
        }
        .answer(Duration::from_secs(60))
    }
}

/// The ClickHouse of `url` (named by `--clickhouse-url`), else the stack's,
/// started when it is not running.
pub fn clickhouse_or_stack(url: Option<&str>, repo: &Path) -> anyhow::Result<HttpEndpoint> {
    if let Some(url) = url {
        return HttpEndpoint::parse(url, "--clickhouse-url");
    }
    let settings = crate::settings::StackSettings::from_env(repo)?;
    crate::stack::Stack::new(settings.clone()).up(&[crate::components::Component::Clickhouse])?;
    HttpEndpoint::parse(&settings.clickhouse_url(), "SLUICE_CLICKHOUSE_HTTP_PORT")
}

/// The load average over 1, 5 and 15 minutes.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|f| f.parse().unwrap_or(0.0));
    [(); 3].map(|()| fields.next().unwrap_or(0.0))
}

/// The first line a command prints, or `unknown`.
pub fn first_line_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            text.lines().next().map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The checkout's commit, "(with local changes)" when it has any.
pub fn commit(repo: &Path) -> String {
    let head = first_line_of(
        "git",
        &[
            "-C",
            &repo.display().to_string(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    let clean = Command::new("git")
        .args([
            "-C",
            &repo.display().to_string(),
            "diff",
            "--quiet",
            "HEAD",
            "--",
            ".",
        ])
        .status()
        .is_ok_and(|status| status.success());
    if clean {
        head
    } else {
        format!("{head} (with local changes)")
    }
}

/// A Python with matplotlib in `~/.cache/sluice/plot-venv`, made on first use.
pub fn plot_python() -> anyhow::Result<PathBuf> {
    let venv = crate::sluice_cache_dir("plot-venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import matplotlib"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !ready {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status();
        if !made.is_ok_and(|status| status.success()) {
            bail!(
                "cannot make a venv in {} (apt-get install python3-venv)",
                venv.display()
            );
        }
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "matplotlib==3.9.2"])
            .status();
        if !installed.is_ok_and(|status| status.success()) {
            bail!("cannot install matplotlib into {}", venv.display());
        }
    }
    Ok(python)
}

/// Runs a plot script of load-tests/ with `args`.
pub fn plot(repo: &Path, script: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(plot_python()?)
        .arg(repo.join("load-tests").join(script))
        .args(args)
        .status()
        .with_context(|| format!("cannot run {script}"))?;
    if !status.success() {
        bail!("{script} failed");
    }
    Ok(())
}

/// Logs a line of `tag` on stderr.
pub fn log(tag: &str, line: impl AsRef<str>) {
    eprintln!("{tag}: {}", line.as_ref());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(civil(0), ("19700101".into(), "000000".into()));
        assert_eq!(civil(1_700_000_000), ("20231114".into(), "221320".into()));
        assert_eq!(civil(951_782_400), ("20000229".into(), "000000".into()));
    }

    #[test]
    fn clickhouse_urls_name_their_option_when_wrong() {
        let parsed = HttpEndpoint::parse("http://127.0.0.1:8123/", "--clickhouse-url").unwrap();
        assert_eq!(parsed.port, 8123);
        assert_eq!(parsed.url(), "http://127.0.0.1:8123");
        for bad in ["https://x:1", "http://nohost", "http://h:port"] {
            let error = HttpEndpoint::parse(bad, "--clickhouse-url").unwrap_err();
            assert!(error.to_string().contains("--clickhouse-url"), "{error}");
        }
    }
}
