//! `sluice-dev bench e2e`: end-to-end freshness. Events go through the gateway at a constant
//! rate, the processor(s) write them to ClickHouse, and `sluice-loadgen
//! e2e` measures how long after the gateway's ack each request's events
//! are visible through the query API, then waits until the query API
//! counts exactly the acknowledged events.
//!
//! A private tansu (memory engine: no consumer restarts happen here, and
//! the processors join their group before any event is sent), the stack's
//! ClickHouse unless `--clickhouse-url`, and release builds. The result
//! also holds each process's CPU share of one core over the sending window
//! (the ClickHouse server's is shared with anything else using it) and the
//! load average at the start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::processes::{Processes, ServiceLaunch, create_api_key, peak_rss_kib};
use super::report::read_json;
use super::{Binaries, HttpEndpoint, clickhouse_or_stack, load_average, log, run_dir};
use crate::settings::HOST;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const API_KEY: &str = "bench-e2e-key-0123456789";

/// The services a run needs, built in release.
pub const PACKAGES: [&str; 4] = [
    "sluice-ingest-gateway",
    "sluice-stream-processor",
    "sluice-query-api",
    "sluice-loadgen",
];

#[derive(Debug, Clone, clap::Args)]
pub struct E2eBench {
    /// Events per second sent through the gateway.
    #[arg(long, default_value_t = 20_000.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// The processor's SLUICE_BATCH_MAX_MS.
    #[arg(long, default_value_t = 250)]
    pub batch_max_ms: u32,
    /// Processor instances in one consumer group.
    #[arg(long, default_value_t = 1)]
    pub processors: u16,
    /// ClickHouse to write to (default: the stack's, started with `stack up clickhouse`).
    #[arg(long)]
    pub clickhouse_url: Option<String>,
    /// librdkafka properties for the processor, e.g. fetch.wait.max.ms=20.
    #[arg(long, env = "E2E_PROCESSOR_KAFKA_PROPERTIES", default_value = "")]
    pub processor_kafka_properties: String,
    #[command(flatten)]
    pub binaries: Binaries,
    /// Private broker.
    #[arg(long, env = "SLUICE_BENCH_E2E_KAFKA_PORT", default_value_t = 19292)]
    pub kafka_port: u16,
    /// Gateway.
    #[arg(long, env = "SLUICE_BENCH_E2E_HTTP_PORT", default_value_t = 18280)]
    pub http_port: u16,
    /// Query API.
    #[arg(long, env = "SLUICE_BENCH_E2E_QUERY_PORT", default_value_t = 18281)]
    pub query_port: u16,
    /// First processor; the others take the next ports.
    #[arg(long, env = "SLUICE_BENCH_E2E_PROCESSOR_PORT", default_value_t = 18282)]
    pub processor_port: u16,
    /// Also write the result (one JSON object) to FILE.
    #[arg(long, value_name = "FILE")]
    pub result: Option<PathBuf>,
}

impl E2eBench {
    /// `bench e2e`: builds, runs once, prints the result; fails when the
    /// run did (no exact count, or probes never visible).
    pub fn run(&self, repo: &Path) -> anyhow::Result<bool> {
        let bin_dir = self.binaries.prepare(repo, &PACKAGES, &[], &PACKAGES)?;
        let clickhouse = clickhouse_or_stack(self.clickhouse_url.as_deref(), repo)?;
        let out = run_dir(repo, "e2e-")?;
        let result = self.measure(&bin_dir, &clickhouse, &out)?;
        println!("{result}");
        log("e2e", format!("results and logs in {}", out.display()));
        match result.get("error").and_then(Value::as_str) {
            Some(error) => anyhow::bail!(
                "the end-to-end check failed: {error}; logs in {}",
                out.display()
            ),
            None => Ok(result["exact"] == json!(true)),
        }
    }

    /// One run with the binaries of `bin_dir`, logs in `out`: the result,
    /// written to `--result` too. A failed check is a result with `exact`
    /// false and the `error`; only a failure to set up is an error.
    pub fn measure(
        &self,
        bin_dir: &Path,
        clickhouse: &HttpEndpoint,
        out: &Path,
    ) -> anyhow::Result<Value> {
        let database = format!(
            "bench_e2e_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let mut processes = Processes::default();
        let result = self.measure_with(bin_dir, clickhouse, out, &database, &mut processes);
        processes.stop_all();
        let _ = clickhouse.query(&format!("DROP DATABASE IF EXISTS {database}"));
        let result = result?;
        if let Some(path) = &self.result {
            std::fs::write(path, format!("{result}\n"))
                .with_context(|| format!("--result {}", path.display()))?;
        }
        Ok(result)
    }

    fn measure_with(
        &self,
        bin_dir: &Path,
        clickhouse: &HttpEndpoint,
        out: &Path,
        database: &str,
        processes: &mut Processes,
    ) -> anyhow::Result<Value> {
        let common = [
            (
                "SLUICE_KAFKA_BROKERS",
                format!("{HOST}:{}", self.kafka_port),
            ),
            ("SLUICE_KAFKA_EVENTS_TOPIC", "e2e.events".into()),
            ("SLUICE_KAFKA_DLQ_TOPIC", "e2e.dlq".into()),
            ("SLUICE_KAFKA_KEYS_TOPIC", "e2e.keys".into()),
            ("SLUICE_KAFKA_LIVE_TOPIC", "e2e.live".into()),
            ("SLUICE_CLICKHOUSE_URL", clickhouse.url()),
            ("SLUICE_CLICKHOUSE_DATABASE", database.to_owned()),
        ];
        let service = |binary: &str,
                       log: &str,
                       port: u16,
                       option: &'static str,
                       extra: Vec<(&'static str, String)>| {
            let mut env = common.to_vec();
            env.push(("SLUICE_LISTEN", format!("{HOST}:{port}")));
            env.extend(extra);
            ServiceLaunch {
                binary: bin_dir.join(binary),
                log: out.join(log),
                port,
                port_option: option,
                env,
            }
        };
        let tansu = processes.tansu(self.kafka_port, &out.join("tansu.log"))?;
        let gateway = processes.service(&service(
            "sluice-ingest-gateway",
            "gateway.log",
            self.http_port,
            "--http-port",
            vec![("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN.into())],
        ))?;
        let mut processors = Vec::new();
        for i in 0..self.processors {
            processors.push(processes.service(&service(
                "sluice-stream-processor",
                &format!("processor{i}.log"),
                self.processor_port + i,
                "--processor-port",
                vec![
                    ("SLUICE_CONSUMER_GROUP", database.to_owned()),
                    ("SLUICE_BATCH_MAX_MS", self.batch_max_ms.to_string()),
                    (
                        "SLUICE_KAFKA_PROPERTIES",
                        self.processor_kafka_properties.clone(),
                    ),
                ],
            ))?);
        }
        let query = processes.service(&service(
            "sluice-query-api",
            "query-api.log",
            self.query_port,
            "--query-port",
            Vec::new(),
        ))?;
        create_api_key(
            self.http_port,
            ADMIN_TOKEN,
            "bench",
            API_KEY,
            &["ingest", "read"],
        )?;
        wait_for_key(self.query_port, API_KEY)?;
        if self.processors > 1 {
            // Let the group settle (every instance assigned) before the clock starts.
            std::thread::sleep(Duration::from_secs(5));
        }
        let clickhouse_pid = listening_pid(clickhouse.port);
        let mut watched = vec![
            ("gateway".to_owned(), gateway),
            ("query_api".into(), query),
            ("tansu".into(), tansu),
        ];
        watched.extend(
            processors
                .iter()
                .enumerate()
                .map(|(i, pid)| (format!("processor{i}"), *pid)),
        );
        if let Some(pid) = clickhouse_pid {
            watched.push(("clickhouse_server_shared".into(), pid));
        }
        let load = load_average();
        log(
            "e2e",
            format!(
                "sending {} events/s for {} s ({} processor(s), batches up to {} ms, load average {load:?})",
                self.rate, self.duration, self.processors, self.batch_max_ms
            ),
        );
        let stdout = std::fs::File::create(out.join("e2e-load.json"))?;
        let stderr = std::fs::File::create(out.join("e2e-load.err"))?;
        let mut loadgen = Command::new(bin_dir.join("sluice-loadgen"))
            .args([
                "--json",
                "e2e",
                "--url",
                &format!("http://{HOST}:{}", self.http_port),
                "--api-key",
                API_KEY,
                "--query-url",
                &format!("http://{HOST}:{}", self.query_port),
                "--rate",
                &self.rate.to_string(),
                "--duration",
                &self.duration.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .context("cannot run sluice-loadgen")?;
        // CPU over the sending window: it sends for --duration from its
        // start, then waits for the last probes and the count.
        watched.push(("loadgen".into(), loadgen.id()));
        let window = CpuWindow::start(&watched);
        std::thread::sleep(Duration::from_secs_f64(self.duration));
        let cpu_share = window.end();
        let status = loadgen.wait()?;
        let load_json = json!(load);
        if !status.success() {
            let error = failure_text(
                &std::fs::read_to_string(out.join("e2e-load.err")).unwrap_or_default(),
            );
            return Ok(
                json!({"mode": "e2e", "target_events_per_s": self.rate, "exact": false, "error": error,
                "cpu_share_of_one_core": cpu_share, "load_average_at_start": load_json}),
            );
        }
        let processor_rss = processors
            .iter()
            .filter_map(|pid| peak_rss_kib(*pid))
            .fold(0.0, f64::max);
        let mut result = read_json(&out.join("e2e-load.json"))?;
        let extra = json!({"processors": self.processors,
            "peak_rss_kib": {"gateway": peak_rss_kib(gateway), "processor": processor_rss, "query_api": peak_rss_kib(query)},
            "cpu_share_of_one_core": cpu_share, "load_average_at_start": load_json,
            "clickhouse_pid_shared": clickhouse_pid});
        if let (Some(result), Some(extra)) = (result.as_object_mut(), extra.as_object()) {
            result.extend(extra.clone());
        }
        std::fs::write(out.join("e2e.json"), format!("{result}\n"))?;
        for (port, file) in [
            (self.processor_port, "processor-metrics.txt"),
            (self.http_port, "gateway-metrics.txt"),
        ] {
            if let Some((_, metrics)) =
                crate::probe::http_get(port, "/metrics", Duration::from_secs(5))
            {
                let _ = std::fs::write(out.join(file), metrics);
            }
        }
        Ok(result)
    }
}

/// The query API learns keys from the keys topic: waits until it knows `key`.
pub fn wait_for_key(query_port: u16, key: &str) -> anyhow::Result<()> {
    wait_for_key_at(
        &HttpEndpoint {
            host: HOST.into(),
            port: query_port,
        },
        key,
    )
}

/// [`wait_for_key`] for a query API anywhere.
pub fn wait_for_key_at(query: &HttpEndpoint, key: &str) -> anyhow::Result<()> {
    let authorization = format!("Bearer {key}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = query.call(
            "GET",
            "/v1/events?limit=1",
            &[("Authorization", &authorization)],
            "",
        );
        if answer.as_ref().is_some_and(|(status, _)| *status == 200) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the query API at {} does not accept the key after 30 s (answer {:?})",
                query.url(),
                answer.map(|(status, _)| status)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a failed load generator said: its `Error` line and three more, or
/// its last three lines.
pub fn failure_text(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    match lines.iter().position(|line| line.starts_with("Error")) {
        Some(at) => lines[at..(at + 4).min(lines.len())].join("\n"),
        None => lines[lines.len().saturating_sub(3)..].join("\n"),
    }
}

/// The pid of the process listening on a local TCP port, if one.
pub fn listening_pid(port: u16) -> Option<u32> {
    let output = Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let at = text.find("pid=")? + 4;
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// CPU shares of processes over a window: each the fraction of one core
/// (utime + stime over wall time; 0.63 is 63 % of a core); a process gone
/// before the end gets null.
pub struct CpuWindow {
    started: Instant,
    before: Vec<(String, u32, Option<f64>)>,
}

impl CpuWindow {
    pub fn start(processes: &[(String, u32)]) -> Self {
        Self {
            started: Instant::now(),
            before: processes
                .iter()
                .map(|(name, pid)| (name.clone(), *pid, super::processes::cpu_seconds(*pid)))
                .collect(),
        }
    }

    pub fn end(&self) -> Value {
        let wall = self.started.elapsed().as_secs_f64();
        let shares: BTreeMap<String, Value> = self
            .before
            .iter()
            .map(|(name, pid, before)| {
                let after = super::processes::cpu_seconds(*pid);
                let share = match (before, after) {
                    (Some(before), Some(after)) => {
                        json!(((after - before) / wall * 1000.0).round() / 1000.0)
                    }
                    _ => Value::Null,
                };
                (name.clone(), share)
            })
            .collect();
        json!(shares)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_told_by_its_error_line() {
        let stderr = "starting\nError: 3 events missing\ncaused by\n  a\n  b\n  c\n";
        assert_eq!(
            failure_text(stderr),
            "Error: 3 events missing\ncaused by\n  a\n  b"
        );
        assert_eq!(failure_text("one\ntwo\nthree\nfour"), "two\nthree\nfour");
    }

    #[test]
    fn cpu_shares_name_each_process() {
        let window =
            CpuWindow::start(&[("me".into(), std::process::id()), ("gone".into(), u32::MAX)]);
        let shares = window.end();
        assert!(shares["me"].is_number(), "{shares}");
        assert!(shares["gone"].is_null(), "{shares}");
    }
}
