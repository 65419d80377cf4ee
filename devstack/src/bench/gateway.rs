//! `sluice-dev bench gateway`: HTTP batch ingest through the gateway
//! against a bare rdkafka producer, on the same private broker, in the
//! same run (was `load-tests/bench-gateway.sh`). Each run starts a fresh
//! tansu (memory engine), then:
//!
//! 1. bare: `sluice-loadgen kafka`, the gateway's records straight to
//!    Kafka; ceiling: closed-loop HTTP on `http_produce_ceiling` (reads
//!    each body, produces 100 ready events), unless `--no-ceiling`;
//! 2. peak: the gateway under closed-loop HTTP load;
//! 3. half: open loop at half of that peak (p99 from each request's due
//!    time); floor: the bare producer in open loop at the same rate, in
//!    groups of one request's events;
//! 4. overload: open loop at `--overload-factor` x peak, unless `--no-overload`;
//! 5. traced (`--tracing`): a fresh gateway exporting spans to
//!    `sluice-loadgen otlp-sink`, the peak phase's load with traceparents.
//!
//! One JSON file per phase (`runN-PHASE.json`) and the logs go to
//! `.sluice/bench/<time>/`; the table (one row per run, then median, min
//! and max) to the terminal and `table.txt`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::processes::{Processes, ServiceLaunch, cpu_seconds, create_api_key, peak_rss_kib};
use super::stats::{Spread, trimmed};
use super::{Binaries, log, run_dir};
use crate::probe::port_open;
use crate::settings::HOST;

const API_KEY: &str = "bench-key-0123456789abcdef";
const PROJECT: &str = "bench";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

#[derive(Debug, Clone, clap::Args)]
pub struct GatewayBench {
    /// Repeat the whole benchmark N times, fresh broker each time.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
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
    /// HTTP connections of the half-peak phase.
    #[arg(long, default_value_t = 64)]
    pub half_connections: u32,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub loadgen_threads: u32,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// The gateway's SLUICE_KAFKA_PROPERTIES, e.g. linger.ms=1 (the bare
    /// producer's linger.ms follows it).
    #[arg(long, default_value = "")]
    pub kafka_properties: String,
    /// POST single events to /v1/events (needs --batch 1).
    #[arg(long)]
    pub single_event: bool,
    /// Skip the HTTP-and-produce-only ceiling phase.
    #[arg(long)]
    pub no_ceiling: bool,
    /// HTTP connections of the ceiling phase.
    #[arg(long, default_value_t = 256)]
    pub ceiling_connections: u32,
    /// Skip the overload phase.
    #[arg(long)]
    pub no_overload: bool,
    /// Add the traced phase: peak load on a gateway exporting spans over OTLP.
    #[arg(long)]
    pub tracing: bool,
    /// Port of the stand-in OTLP collector.
    #[arg(long, default_value_t = 18190)]
    pub otlp_port: u16,
    /// Overload rate as a multiple of the peak.
    #[arg(long, default_value_t = 2.0)]
    pub overload_factor: f64,
    /// Connections of the overload phase.
    #[arg(long, default_value_t = 256)]
    pub overload_connections: u32,
    #[command(flatten)]
    pub binaries: Binaries,
    /// Port of the private broker.
    #[arg(long, default_value_t = 19192)]
    pub kafka_port: u16,
    /// Port of the gateway.
    #[arg(long, default_value_t = 18180)]
    pub http_port: u16,
    /// Only print the table of an earlier run's results directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

/// For the defaults of [`GatewayBench`] as clap gives them.
#[derive(Debug, clap::Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    bench: GatewayBench,
}

impl GatewayBench {
    /// Every option at its default.
    pub fn defaults() -> Self {
        <DefaultsOnly as clap::Parser>::parse_from(["gateway"]).bench
    }

    /// Runs the benchmark (or prints `--report`); the results directory.
    pub fn run(&self, repo: &Path) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.report {
            println!("{}", table(dir)?);
            if let Ok(settings) = std::fs::read_to_string(dir.join("settings.txt")) {
                print!("{settings}");
            }
            return Ok(dir.clone());
        }
        let mut needed = vec!["sluice-ingest-gateway", "sluice-loadgen"];
        let examples: &[&str] = if self.no_ceiling {
            &[]
        } else {
            &["http_produce_ceiling"]
        };
        if !self.no_ceiling {
            needed.push("examples/http_produce_ceiling");
        }
        let bin_dir = self.binaries.prepare(
            repo,
            &["sluice-ingest-gateway", "sluice-loadgen"],
            examples,
            &needed,
        )?;
        let out = run_dir(repo, "")?;
        for run in 1..=self.runs {
            Run {
                bench: self,
                bin_dir: &bin_dir,
                out: &out,
                run,
                processes: Processes::default(),
            }
            .once()?;
        }
        let table = table(&out)?;
        std::fs::write(out.join("table.txt"), format!("{table}\n"))?;
        println!("{table}");
        let settings = self.settings_text(&out, repo);
        std::fs::write(out.join("settings.txt"), &settings)?;
        print!("{settings}");
        Ok(out)
    }

    fn settings_text(&self, out: &Path, repo: &Path) -> String {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let shown = out.strip_prefix(repo).unwrap_or(out).display();
        let mut text = format!(
            "\nbatch {}, event {} B, {} partitions, {} s per phase, {} connections at peak, {} at half peak, loadgen threads {}, {cores} cores; results in {shown}\n",
            self.batch,
            self.event_bytes,
            self.partitions,
            self.duration,
            self.connections,
            self.half_connections,
            self.loadgen_threads
        );
        if self.tracing {
            text.push_str("traced: the peak phase's load on a fresh gateway exporting spans over OTLP/HTTP, each request with a traceparent, last in each run\n");
        }
        text
    }

    /// The bare producer's linger.ms: the one --kafka-properties names, if any.
    fn bare_linger(&self) -> Option<String> {
        linger_ms(&self.kafka_properties)
    }
}

/// The last `linger.ms=N` of a comma-separated property list.
pub fn linger_ms(properties: &str) -> Option<String> {
    properties
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == "linger.ms")
        .map(|(_, value)| value.trim().to_owned())
        .next_back()
}

struct Run<'a> {
    bench: &'a GatewayBench,
    bin_dir: &'a Path,
    out: &'a Path,
    run: u32,
    processes: Processes,
}

impl Run<'_> {
    fn file(&self, phase: &str) -> PathBuf {
        self.out.join(format!("run{}-{phase}.json", self.run))
    }

    fn log_file(&self, name: &str) -> PathBuf {
        self.out.join(format!("run{}-{name}.log", self.run))
    }

    fn once(&mut self) -> anyhow::Result<()> {
        let b = self.bench;
        let (run, runs) = (self.run, b.runs);
        let brokers = format!("{HOST}:{}", b.kafka_port);
        log(
            "bench",
            format!("run {run}/{runs}: broker on {brokers} (memory engine)"),
        );
        self.processes
            .tansu(b.kafka_port, &self.log_file("tansu"))?;

        log(
            "bench",
            format!("run {run}: bare producer, {} s", b.duration),
        );
        self.bare("bench.bare", None)?;

        if !b.no_ceiling {
            let ceiling = self.processes.service(&ServiceLaunch {
                binary: self.bin_dir.join("examples/http_produce_ceiling"),
                log: self.log_file("ceiling"),
                port: b.http_port,
                port_option: "--http-port",
                env: self.kafka_env("bench.ceiling"),
            })?;
            log(
                "bench",
                format!(
                    "run {run}: HTTP-and-produce ceiling, closed loop, {} connections",
                    b.ceiling_connections
                ),
            );
            self.http_load(
                "ceiling",
                &["--connections", &b.ceiling_connections.to_string()],
            )?;
            self.processes.stop(ceiling);
        }

        let gateway = self.start_gateway(&[])?;
        let cpu_before = cpu_seconds(gateway).unwrap_or(0.0);
        log(
            "bench",
            format!(
                "run {run}: gateway peak, closed loop, batch {}, {} connections",
                b.batch, b.connections
            ),
        );
        let peak = self.http_load("peak", &["--connections", &b.connections.to_string()])?;
        let cpu_peak = cpu_seconds(gateway).unwrap_or(0.0) - cpu_before;
        let peak_eps = number(&peak, "/events_per_s");
        if peak_eps <= 0.0 {
            bail!(
                "the gateway acked nothing; see {}",
                self.file("peak").display()
            );
        }
        let half = peak_eps / 2.0;
        log(
            "bench",
            format!("run {run}: gateway at half peak, open loop, {half} events/s"),
        );
        self.http_load(
            "half",
            &[
                "--connections",
                &b.half_connections.to_string(),
                "--rate",
                &half.to_string(),
            ],
        )?;
        let rss_normal = peak_rss_kib(gateway);

        log(
            "bench",
            format!(
                "run {run}: latency floor, bare producer at {half} events/s in groups of {}",
                b.batch
            ),
        );
        self.bare("bench.floor", Some(half))?;

        let mut rss_overload = None;
        if !b.no_overload {
            let over = peak_eps * b.overload_factor;
            log(
                "bench",
                format!(
                    "run {run}: overload, open loop, {over} events/s, {} connections",
                    b.overload_connections
                ),
            );
            self.http_load(
                "overload",
                &[
                    "--connections",
                    &b.overload_connections.to_string(),
                    "--rate",
                    &over.to_string(),
                    "--timeout-ms",
                    "10000",
                ],
            )?;
            rss_overload = peak_rss_kib(gateway);
        }
        if b.tracing {
            self.processes.stop(gateway);
            self.traced_phase()?;
        }
        let summary = json!({"run": run, "gateway_peak_rss_kib": rss_normal,
            "gateway_overload_peak_rss_kib": rss_overload, "gateway_cpu_s_peak_phase": cpu_peak});
        std::fs::write(self.file("gateway"), format!("{summary}\n"))?;
        self.processes.stop_all();
        Ok(())
    }

    fn kafka_env(&self, topic: &str) -> Vec<(&'static str, String)> {
        let b = self.bench;
        vec![
            ("SLUICE_LISTEN", format!("{HOST}:{}", b.http_port)),
            ("SLUICE_KAFKA_BROKERS", format!("{HOST}:{}", b.kafka_port)),
            ("SLUICE_KAFKA_EVENTS_TOPIC", topic.to_owned()),
            ("SLUICE_KAFKA_PARTITIONS", b.partitions.to_string()),
            ("SLUICE_KAFKA_PROPERTIES", b.kafka_properties.clone()),
        ]
    }

    /// The gateway with the benchmark's admin token, and the benchmark key.
    fn start_gateway(&mut self, extra: &[(&'static str, String)]) -> anyhow::Result<u32> {
        let mut env = self.kafka_env("bench.events");
        env.push(("SLUICE_KAFKA_DLQ_TOPIC", "bench.events.dlq".into()));
        env.push(("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN.into()));
        env.extend(extra.iter().cloned());
        let pid = self.processes.service(&ServiceLaunch {
            binary: self.bin_dir.join("sluice-ingest-gateway"),
            log: self.log_file("gateway"),
            port: self.bench.http_port,
            port_option: "--http-port",
            env,
        })?;
        create_api_key(
            self.bench.http_port,
            ADMIN_TOKEN,
            PROJECT,
            API_KEY,
            &["ingest"],
        )?;
        Ok(pid)
    }

    fn bare(&self, topic: &str, rate: Option<f64>) -> anyhow::Result<Value> {
        let b = self.bench;
        let mut args: Vec<String> = [
            "--json",
            "kafka",
            "--brokers",
            &format!("{HOST}:{}", b.kafka_port),
            "--topic",
            topic,
            "--partitions",
            &b.partitions.to_string(),
            "--project",
            PROJECT,
            "--event-bytes",
            &b.event_bytes.to_string(),
            "--duration",
            &b.duration.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some(linger) = b.bare_linger() {
            args.extend(["--linger-ms".into(), linger]);
        }
        if let Some(rate) = rate {
            args.extend([
                "--rate".into(),
                rate.to_string(),
                "--group".into(),
                b.batch.to_string(),
            ]);
        }
        let phase = if rate.is_some() { "floor" } else { "bare" };
        loadgen(self.bin_dir, &args, &self.file(phase))
    }

    fn http_load(&self, phase: &str, extra: &[&str]) -> anyhow::Result<Value> {
        let b = self.bench;
        let mut args: Vec<String> = [
            "--json",
            "--threads",
            &b.loadgen_threads.to_string(),
            "http",
            "--url",
            &format!("http://{HOST}:{}", b.http_port),
            "--api-key",
            API_KEY,
            "--batch",
            &b.batch.to_string(),
            "--event-bytes",
            &b.event_bytes.to_string(),
            "--duration",
            &b.duration.to_string(),
            "--warmup",
            &b.warmup.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        if b.single_event {
            args.push("--single-event".into());
        }
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        loadgen(self.bin_dir, &args, &self.file(phase))
    }

    /// The peak phase again, on a fresh gateway exporting its spans to the
    /// stand-in collector; every request carries a traceparent.
    fn traced_phase(&mut self) -> anyhow::Result<()> {
        let b = self.bench;
        super::processes::ensure_free(b.otlp_port, "--otlp-port")?;
        let sink_out = std::fs::File::create(self.file("otlp-sink"))?;
        let sink_log = std::fs::File::create(self.log_file("otlp-sink"))?;
        let mut sink = Command::new(self.bin_dir.join("sluice-loadgen"))
            .args([
                "--json",
                "otlp-sink",
                "--listen",
                &format!("{HOST}:{}", b.otlp_port),
            ])
            .stdout(sink_out)
            .stderr(sink_log)
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start sluice-loadgen otlp-sink")?;
        let port = b.otlp_port;
        let started = (0..300).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            port_open(port)
        });
        if !started {
            let _ = sink.kill();
            bail!(
                "otlp-sink did not listen on {port}; see {}",
                self.log_file("otlp-sink").display()
            );
        }
        let gateway =
            self.start_gateway(&[("SLUICE_OTLP_ENDPOINT", format!("http://{HOST}:{port}"))])?;
        let before = cpu_seconds(gateway).unwrap_or(0.0);
        log(
            "bench",
            format!(
                "run {}: traced gateway peak, closed loop, batch {}, {} connections",
                self.run, b.batch, b.connections
            ),
        );
        self.http_load(
            "traced",
            &["--connections", &b.connections.to_string(), "--traceparent"],
        )?;
        let cpu = cpu_seconds(gateway).unwrap_or(0.0) - before;
        // Its last spans reach the collector as the gateway stops.
        self.processes.stop(gateway);
        let _ = crate::process::stop(sink.id(), std::time::Duration::from_secs(5));
        let _ = sink.wait();
        let mut report: Value = read_json(&self.file("otlp-sink"))?;
        report["gateway_cpu_s"] = json!(cpu);
        std::fs::write(self.file("otlp"), format!("{report}\n"))?;
        std::fs::remove_file(self.file("otlp-sink"))?;
        Ok(())
    }
}

/// Runs `sluice-loadgen ARGS`, its JSON report into `out`; the report.
pub fn loadgen(bin_dir: &Path, args: &[String], out: &Path) -> anyhow::Result<Value> {
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let status = Command::new(bin_dir.join("sluice-loadgen"))
        .args(args)
        .stdout(file)
        .status()
        .context("cannot run sluice-loadgen")?;
    if !status.success() {
        bail!("sluice-loadgen {} failed ({status})", args.join(" "));
    }
    read_json(out)
}

pub fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(text.trim())
        .with_context(|| format!("{} is not one JSON object", path.display()))
}

/// A number at `pointer` (e.g. `/latency_ms/p99`), 0 when absent.
pub fn number(value: &Value, pointer: &str) -> f64 {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

const COLUMNS: [&str; 20] = [
    "run",
    "bare ev/s",
    "gateway ev/s",
    "ratio",
    "ceiling ev/s",
    "ceiling ratio",
    "peak p99 ms",
    "half rate",
    "half p99 ms",
    "half p99.9 ms",
    "floor p99 ms",
    "gw CPU us/event",
    "loadgen CPU %",
    "gw RSS MiB",
    "overload RSS MiB",
    "traced ev/s",
    "traced/peak",
    "traced CPU us/event",
    "OTLP posts",
    "overload answers",
];

/// One run's row: the numeric columns (all but the first and last) and the
/// overload answers.
fn row(phases: &std::collections::BTreeMap<String, Value>) -> (Vec<Option<f64>>, String) {
    let get = |phase: &str, pointer: &str| {
        phases
            .get(phase)
            .and_then(|v| v.pointer(pointer))
            .and_then(Value::as_f64)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let bare = get("bare", "/events_per_s");
    let peak = get("peak", "/events_per_s");
    let ceiling = get("ceiling", "/events_per_s");
    let traced = get("traced", "/events_per_s");
    let numbers = vec![
        bare,
        peak,
        ratio(peak, bare),
        ceiling,
        ratio(ceiling, bare),
        get("peak", "/latency_ms/p99"),
        get("half", "/target_events_per_s"),
        get("half", "/events_per_s"),
        get("half", "/latency_ms/p99"),
        get("half", "/latency_ms/p999"),
        get("floor", "/group_latency_ms/p99"),
        ratio(
            get("gateway", "/gateway_cpu_s_peak_phase").map(|s| s * 1e6),
            get("peak", "/events_acked"),
        ),
        ratio(
            get("peak", "/loadgen_cpu_s").map(|s| s * 100.0),
            get("peak", "/seconds"),
        ),
        get("gateway", "/gateway_peak_rss_kib").map(|kib| kib / 1024.0),
        get("gateway", "/gateway_overload_peak_rss_kib").map(|kib| kib / 1024.0),
        traced,
        ratio(traced, peak),
        ratio(
            get("otlp", "/gateway_cpu_s").map(|s| s * 1e6),
            get("traced", "/events_acked"),
        ),
        get("otlp", "/otlp_requests"),
    ];
    let answers = phases.get("overload").map_or_else(
        || "-".to_owned(),
        |over| {
            let mut parts = Vec::new();
            for key in ["statuses", "errors"] {
                if let Some(map) = over.get(key).and_then(Value::as_object) {
                    parts.extend(map.iter().map(|(k, v)| format!("{k}={v}")));
                }
            }
            parts.join(" ")
        },
    );
    (numbers, answers)
}

/// A cell of the gateway table: three decimals under 10, else one.
fn cell(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v < 10.0 => trimmed(v, 3),
        Some(v) => trimmed(v, 1),
    }
}

/// The table of a results directory: one row per run, then median, min and
/// max of each column when there are several runs, aligned in columns.
pub fn table(dir: &Path) -> anyhow::Result<String> {
    let mut runs: std::collections::BTreeMap<u32, std::collections::BTreeMap<String, Value>> =
        Default::default();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let Some((run, phase)) = name
            .strip_prefix("run")
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let Ok(run) = run.parse() else { continue };
        runs.entry(run)
            .or_default()
            .insert(phase.to_owned(), read_json(&path)?);
    }
    let mut lines = vec![COLUMNS.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>()];
    let rows: Vec<(Vec<Option<f64>>, String)> = runs.values().map(row).collect();
    for (run, (numbers, answers)) in runs.keys().zip(&rows) {
        let mut line = vec![run.to_string()];
        line.extend(numbers.iter().map(|v| cell(*v)));
        line.push(answers.clone());
        lines.push(line);
    }
    if rows.len() > 1 {
        for stat in ["median", "min", "max"] {
            let mut line = vec![stat.to_owned()];
            for column in 0..rows[0].0.len() {
                let values: Vec<f64> = rows
                    .iter()
                    .filter_map(|(numbers, _)| numbers[column])
                    .collect();
                let spread = Spread::of(&values);
                line.push(cell(spread.map(|s| match stat {
                    "median" => s.median,
                    "min" => s.min,
                    _ => s.max,
                })));
            }
            line.push("-".into());
            lines.push(line);
        }
    }
    Ok(aligned(&lines))
}

/// Rows of cells as aligned columns (what `column -t` printed).
pub fn aligned(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|line| {
            let cells: Vec<String> = line
                .iter()
                .enumerate()
                .map(|(c, text)| format!("{text:<width$}", width = widths[c]))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bare_producer_follows_the_gateways_linger() {
        assert_eq!(
            linger_ms("acks=all, linger.ms = 3,linger.ms=7"),
            Some("7".into())
        );
        assert_eq!(linger_ms("acks=all"), None);
        assert_eq!(linger_ms(""), None);
    }

    #[test]
    fn a_results_directory_reads_as_a_table() {
        let dir = std::env::temp_dir().join(format!("sluice-bench-gateway-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write =
            |name: &str, value: Value| std::fs::write(dir.join(name), value.to_string()).unwrap();
        for (run, bare, peak) in [(1, 100_000.0, 50_000.0), (2, 200_000.0, 150_000.0)] {
            write(
                &format!("run{run}-bare.json"),
                json!({"events_per_s": bare}),
            );
            write(
                &format!("run{run}-peak.json"),
                json!({"events_per_s": peak, "events_acked": 1_000_000,
                "latency_ms": {"p99": 7.25}, "loadgen_cpu_s": 5.0, "seconds": 10.0}),
            );
            write(
                &format!("run{run}-gateway.json"),
                json!({"gateway_peak_rss_kib": 20480,
                "gateway_overload_peak_rss_kib": null, "gateway_cpu_s_peak_phase": 2.0}),
            );
            write(
                &format!("run{run}-overload.json"),
                json!({"statuses": {"202": 10, "429": 2}, "errors": {}}),
            );
        }
        let text = table(&dir).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cells = |line: &str| {
            line.split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(cells(lines[0]), "run bare ev/s gateway", "{text}");
        assert_eq!(cells(lines[1]), "1 100000 50000 0.5", "{text}");
        assert!(lines[1].ends_with("202=10 429=2"), "{text}");
        assert!(lines[1].contains(" 7.25 "), "{text}");
        assert_eq!(cells(lines[3]), "median 150000 100000 0.625", "{text}");
        assert_eq!(lines.len(), 6, "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
