//! `sluice-dev bench all` (and `bench quick`, a check in a few minutes):
//! every benchmark of the pipeline, one table. Builds the release binaries once, brings
//! up a private ClickHouse (its own state directory and ports) unless
//! `--clickhouse-url`, and a private tansu (memory engine) per stage:
//!
//! - ingest: `bench gateway` (bare producer, ceiling, gateway, peak RSS);
//! - processor: 1 and 2 processors in one consumer group drain
//!   `--proc-events` records into ClickHouse, produced at full speed once
//!   the group has settled (tansu 0.6.0's memory engine skips and repeats
//!   messages when a consumer resumes from a committed offset, which a
//!   rebalance while draining causes);
//! - e2e: `bench e2e` with 1 and 2 processors;
//! - query: `bench_seed` seeds `--seed-events`, then real requests to a
//!   release query API (p50/p95/p99 per question), a CSV export of every
//!   row (rows/s), its peak RSS.
//!
//! Each figure is the median of `--runs` runs, with min and max, written
//! to RESULTS_DIR/bench-all.{md,csv}; the processor instances dimension to
//! RESULTS_DIR/processor-instances.{csv,md,png}.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::bail;

use super::e2e::E2eBench;
use super::figures::Figures;
use super::gateway::GatewayBench;
use super::report::{number, read_json};
use super::{Binaries, HttpEndpoint, commit, first_line_of, load_average, log, plot, run_dir};
use crate::components::Component;
use crate::settings::StackSettings;
use crate::stack::Stack;

pub(super) const PROJECT: &str = "bench";
pub(super) const TAG: &str = "bench-all";

#[derive(Debug, Clone, clap::Args)]
pub struct AllBench {
    /// Runs per figure; each figure is their median, min and max.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Seconds per ingest phase.
    #[arg(long, default_value_t = 10.0)]
    pub gateway_duration: f64,
    /// Events pre-filled for the processor stage.
    #[arg(long, default_value_t = 2_000_000)]
    pub proc_events: u64,
    /// Events/s of the end-to-end stage.
    #[arg(long, default_value_t = 5000.0)]
    pub e2e_rate: f64,
    /// Seconds of sending in the end-to-end stage.
    #[arg(long, default_value_t = 15.0)]
    pub e2e_duration: f64,
    /// Events seeded for the query stage.
    #[arg(long, default_value_t = 10_000_000)]
    pub seed_events: u64,
    /// Requests per question and run.
    #[arg(long, default_value_t = 20)]
    pub query_reps: u32,
    /// Processor instances to compare, e.g. "1 2".
    #[arg(long, default_value = "1 2")]
    pub instances: String,
    /// Partitions of the processor stage's topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// The processor stage's SLUICE_ROLLUP_PROPERTIES, e.g. country,path.
    #[arg(long, default_value = "")]
    pub rollup_properties: String,
    /// ClickHouse clusters to compare in the processor stage, e.g.
    /// "sluice_one_shard sluice" (`sluice-dev cluster up` has both), each run
    /// draining into each in turn in cluster mode; needs --clickhouse-url
    /// naming a server of them. Empty: one server, no cluster mode.
    #[arg(long, default_value = "")]
    pub clickhouse_clusters: String,
    /// Which stages, of: ingest processor e2e query.
    #[arg(long, default_value = "ingest processor e2e query")]
    pub stages: String,
    #[command(flatten)]
    pub binaries: Binaries,
    /// Use this ClickHouse instead of starting a private one.
    #[arg(long)]
    pub clickhouse_url: Option<String>,
    /// Where the tables and the plot go (default load-tests/results; with
    /// `bench quick`, the run's directory under .sluice/bench/).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Private broker.
    #[arg(long, env = "SLUICE_BENCH_KAFKA_PORT", default_value_t = 29292)]
    pub kafka_port: u16,
    /// Private ClickHouse's HTTP port.
    #[arg(
        long,
        env = "SLUICE_BENCH_CLICKHOUSE_HTTP_PORT",
        default_value_t = 28223
    )]
    pub clickhouse_http_port: u16,
    /// Private ClickHouse's native port.
    #[arg(
        long,
        env = "SLUICE_BENCH_CLICKHOUSE_TCP_PORT",
        default_value_t = 29200
    )]
    pub clickhouse_tcp_port: u16,
    /// Gateway.
    #[arg(long, env = "SLUICE_BENCH_GATEWAY_PORT", default_value_t = 28280)]
    pub gateway_port: u16,
    /// Query API.
    #[arg(long, env = "SLUICE_BENCH_QUERY_PORT", default_value_t = 28281)]
    pub query_port: u16,
    /// First processor; the others the next ports.
    #[arg(long, env = "SLUICE_BENCH_PROCESSOR_PORT", default_value_t = 28282)]
    pub processor_port: u16,
}

/// What `bench quick` sets before the caller's options (which win): 1 run,
/// small counts, short phases.
pub const QUICK: [&str; 14] = [
    "--runs",
    "1",
    "--gateway-duration",
    "3",
    "--proc-events",
    "200000",
    "--e2e-rate",
    "2000",
    "--e2e-duration",
    "4",
    "--seed-events",
    "200000",
    "--query-reps",
    "5",
];

/// `args` (a command line) with [`QUICK`] after `bench quick`, so that
/// options given on the command line override them.
pub fn with_quick_defaults(args: Vec<String>) -> Vec<String> {
    let at = args
        .windows(2)
        .position(|pair| pair[0] == "bench" && pair[1] == "quick");
    match at {
        Some(at) => {
            let (head, tail) = args.split_at(at + 2);
            let quick = QUICK.iter().map(|arg| (*arg).to_owned());
            head.iter()
                .cloned()
                .chain(quick)
                .chain(tail.iter().cloned())
                .collect()
        }
        None => args,
    }
}

impl AllBench {
    fn stage_on(&self, stage: &str) -> bool {
        self.stages.split_whitespace().any(|word| word == stage)
    }

    /// The binaries the chosen stages run (a processor-only run needs no
    /// gateway and no query examples).
    fn needed_binaries(&self) -> Vec<&'static str> {
        let mut needed = vec!["sluice-stream-processor", "sluice-loadgen"];
        if self.stage_on("ingest") {
            needed.push("examples/http_produce_ceiling");
        }
        if self.stage_on("ingest") || self.stage_on("e2e") {
            needed.push("sluice-ingest-gateway");
        }
        if self.stage_on("e2e") || self.stage_on("query") {
            needed.push("sluice-query-api");
        }
        if self.stage_on("query") {
            needed.push("examples/bench_seed");
        }
        needed
    }

    /// The processor stage's ClickHouse targets: each cluster of
    /// --clickhouse-clusters, or the one server (`None`).
    pub(super) fn clusters(&self) -> Vec<Option<&str>> {
        let clusters: Vec<Option<&str>> = self
            .clickhouse_clusters
            .split_whitespace()
            .map(Some)
            .collect();
        if clusters.is_empty() {
            vec![None]
        } else {
            clusters
        }
    }

    fn instances(&self) -> anyhow::Result<Vec<u16>> {
        self.instances
            .split_whitespace()
            .map(|word| {
                word.parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| anyhow::anyhow!("--instances takes numbers, got '{word}'"))
            })
            .collect()
    }

    /// Runs the stages; false when an end-to-end run failed (the table counts them).
    pub fn run(&self, repo: &Path, quick: bool, command: &str) -> anyhow::Result<bool> {
        for word in self.stages.split_whitespace() {
            if !["ingest", "processor", "e2e", "query"].contains(&word) {
                bail!("--stages: unknown stage '{word}' (ingest processor e2e query)");
            }
        }
        let instances = self.instances()?;
        if !self.clickhouse_clusters.trim().is_empty() && self.clickhouse_url.is_none() {
            bail!("--clickhouse-clusters needs --clickhouse-url, a server of those clusters");
        }
        let load_start = load_average();
        let bin_dir = self.binaries.prepare(
            repo,
            &super::e2e::PACKAGES,
            &["bench_seed", "http_produce_ceiling"],
            &self.needed_binaries(),
        )?;
        let out = run_dir(repo, "all-")?;
        let results = match (&self.results_dir, quick) {
            (Some(dir), _) => dir.clone(),
            (None, true) => out.clone(),
            (None, false) => repo.join("load-tests/results"),
        };
        std::fs::create_dir_all(&results)?;
        let stack_settings = StackSettings {
            dir: repo.join(".sluice/bench-all-stack"),
            clickhouse_http_port: self.clickhouse_http_port,
            clickhouse_tcp_port: self.clickhouse_tcp_port,
            ..StackSettings::from_env(repo)?
        };
        let mut private_stack = None;
        let clickhouse = match &self.clickhouse_url {
            Some(url) => {
                let clickhouse = HttpEndpoint::parse(url, "--clickhouse-url")?;
                if !clickhouse.ping() {
                    bail!("no ClickHouse answers at {url} (--clickhouse-url)");
                }
                clickhouse
            }
            None => {
                let clickhouse = HttpEndpoint::parse(
                    &stack_settings.clickhouse_url(),
                    "--clickhouse-http-port",
                )?;
                if !clickhouse.ping() {
                    log(
                        TAG,
                        format!(
                            "starting a private ClickHouse on {} (state in {})",
                            self.clickhouse_http_port,
                            stack_settings.dir.display()
                        ),
                    );
                    let stack = Stack::new(stack_settings);
                    stack.up(&[Component::Clickhouse])?;
                    private_stack = Some(stack);
                }
                clickhouse
            }
        };
        let mut stages = Stages {
            bench: self,
            repo,
            bin_dir: &bin_dir,
            out: &out,
            clickhouse: &clickhouse,
            figures: Figures::default(),
            failed: 0,
        };
        let outcome = stages.all(&instances);
        // Asked while the server still runs.
        let version = clickhouse
            .query("SELECT version()")
            .unwrap_or_else(|_| "unknown".into());
        if let Some(stack) = private_stack {
            let _ = stack.down(&[Component::Clickhouse], true);
        }
        outcome?;
        stages.figures.write_jsonl(&out.join("figures.jsonl"))?;
        let context = self.context(repo, &version, load_start, command);
        std::fs::write(results.join("bench-all.csv"), stages.figures.csv())?;
        let table = format!("{}\n{context}", stages.figures.markdown());
        std::fs::write(results.join("bench-all.md"), &table)?;
        // The instances plot is of the one-server drain.
        if self.clickhouse_clusters.trim().is_empty() {
            let csv = results.join("processor-instances.csv");
            std::fs::write(&csv, instances_csv(&stages.figures, &instances))?;
            plot(
                repo,
                "plot_instances.py",
                &[&csv.display().to_string(), &results.display().to_string()],
            )?;
        }
        println!("{table}");
        log(
            TAG,
            format!(
                "tables in {}/bench-all.{{md,csv}} and processor-instances.{{md,csv,png}}; logs in {}",
                results.display(),
                out.display()
            ),
        );
        if stages.failed > 0 {
            log(
                TAG,
                format!(
                    "error: {} end-to-end run(s) failed; the table counts them",
                    stages.failed
                ),
            );
        }
        Ok(stages.failed == 0)
    }

    fn context(&self, repo: &Path, version: &str, load_start: [f64; 3], command: &str) -> String {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|kib| kib.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map_or_else(|| "?".into(), |kib| format!("{:.0}", kib / 1_048_576.0));
        let rustc = first_line_of("rustc", &["--version"])
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let [a, b, c] = load_start;
        let [x, y, z] = load_average();
        format!(
            "Run {}, commit {},\ncommand `{command}`;\n{cores} cores, {memory} GiB RAM,\n{rustc}, broker {} (memory engine),\nClickHouse {version}; load average at the start: {a} {b} {c}, at the end: {x} {y} {z}.\n",
            iso_minute(),
            commit(repo),
            first_line_of("tansu", &["--version"]),
        )
    }
}

/// Now as `YYYY-MM-DDTHH:MMZ`.
fn iso_minute() -> String {
    let stamp = super::utc_stamp();
    format!(
        "{}-{}-{}T{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13]
    )
}

pub(super) struct Stages<'a> {
    pub(super) bench: &'a AllBench,
    pub(super) repo: &'a Path,
    pub(super) bin_dir: &'a Path,
    pub(super) out: &'a Path,
    pub(super) clickhouse: &'a HttpEndpoint,
    pub(super) figures: Figures,
    pub(super) failed: u32,
}

impl Stages<'_> {
    fn all(&mut self, instances: &[u16]) -> anyhow::Result<()> {
        let b = self.bench;
        if b.stage_on("ingest") {
            self.ingest()?;
        }
        for run in 1..=b.runs {
            if b.stage_on("processor") {
                for n in instances {
                    for cluster in b.clusters() {
                        log(
                            TAG,
                            format!(
                                "processor: run {run}/{}, {n} instance(s) drain {} events{}",
                                b.runs,
                                b.proc_events,
                                cluster.map_or(String::new(), |c| format!(" into cluster {c}"))
                            ),
                        );
                        self.processor_drain(run, *n, cluster)?;
                    }
                }
            }
        }
        if b.stage_on("e2e") {
            for run in 1..=b.runs {
                for n in instances {
                    self.e2e(run, *n)?;
                }
            }
        }
        if b.stage_on("query") {
            self.query()?;
        }
        Ok(())
    }

    fn ingest(&mut self) -> anyhow::Result<()> {
        let b = self.bench;
        log(
            TAG,
            format!(
                "ingest: bench gateway, {} run(s) of {} s per phase",
                b.runs, b.gateway_duration
            ),
        );
        let gateway = GatewayBench {
            runs: b.runs,
            duration: b.gateway_duration,
            no_overload: true,
            binaries: Binaries {
                no_build: true,
                bin_dir: Some(self.bin_dir.to_path_buf()),
            },
            kafka_port: b.kafka_port,
            http_port: b.gateway_port,
            ..GatewayBench::defaults()
        };
        let dir = gateway.run(self.repo)?;
        for run in 1..=b.runs {
            let phase = |name: &str| read_json(&dir.join(format!("run{run}-{name}.json")));
            let bare = number(&phase("bare")?, "/events_per_s");
            let peak = number(&phase("peak")?, "/events_per_s");
            let ceiling = number(&phase("ceiling")?, "/events_per_s");
            let f = &mut self.figures;
            f.record("ingest", "bare rdkafka producer", "events/s", run, bare);
            f.record(
                "ingest",
                "HTTP and producing alone (ceiling), batches of 100",
                "events/s",
                run,
                ceiling,
            );
            f.record("ingest", "ceiling / bare", "ratio", run, ceiling / bare);
            f.record(
                "ingest",
                "gateway HTTP, batches of 100",
                "events/s",
                run,
                peak,
            );
            f.record("ingest", "gateway / bare", "ratio", run, peak / bare);
            f.record(
                "memory",
                "gateway peak RSS (VmHWM, after half-peak load)",
                "MiB",
                run,
                number(&phase("gateway")?, "/gateway_peak_rss_kib") / 1024.0,
            );
        }
        Ok(())
    }

    fn e2e(&mut self, run: u32, n: u16) -> anyhow::Result<()> {
        let b = self.bench;
        log(
            TAG,
            format!(
                "e2e: run {run}/{}, {n} processor(s), {} events/s for {} s",
                b.runs, b.e2e_rate, b.e2e_duration
            ),
        );
        let e2e = E2eBench {
            rate: b.e2e_rate,
            duration: b.e2e_duration,
            batch_max_ms: 250,
            processors: n,
            clickhouse_url: Some(self.clickhouse.url()),
            processor_kafka_properties: String::new(),
            binaries: Binaries {
                no_build: true,
                bin_dir: Some(self.bin_dir.to_path_buf()),
            },
            kafka_port: b.kafka_port,
            http_port: b.gateway_port,
            query_port: b.query_port,
            processor_port: b.processor_port,
            result: Some(self.out.join(format!("e2e-run{run}-x{n}.json"))),
        };
        let dir = self.out.join(format!("e2e-run{run}-x{n}"));
        std::fs::create_dir_all(&dir)?;
        let result = e2e.measure(self.bin_dir, self.clickhouse, &dir);
        let f = &mut self.figures;
        let result = match result {
            Ok(result) if result["exact"] == serde_json::json!(true) => result,
            other => {
                let why = match other {
                    Ok(result) => result["error"].to_string(),
                    Err(error) => format!("{error:#}"),
                };
                log(
                    TAG,
                    format!(
                        "e2e: run {run} with {n} processor(s) FAILED: {why} (logs in {})",
                        dir.display()
                    ),
                );
                f.record(
                    "e2e",
                    format!(
                        "{n} processor(s): FAILED runs (count not exact or probes not visible)"
                    ),
                    "runs",
                    run,
                    1.0,
                );
                self.failed += 1;
                return Ok(());
            }
        };
        f.record(
            "e2e",
            format!("{n} processor(s): acknowledged events/s"),
            "events/s",
            run,
            number(&result, "/events_acked") / number(&result, "/seconds"),
        );
        for q in ["p50", "p95", "p99"] {
            f.record(
                "e2e",
                format!("{n} processor(s): freshness {q} (ack to visible in the query API)"),
                "ms",
                run,
                number(&result, &format!("/freshness_ms/{q}")),
            );
        }
        f.record(
            "e2e",
            format!("{n} processor(s): events counted / acknowledged"),
            "ratio",
            run,
            number(&result, "/events_visible") / number(&result, "/events_acked"),
        );
        Ok(())
    }
}

/// The processor-instances dimension as CSV: drain events/s (median, min,
/// max), events per CPU-second, end-to-end p99 (median, min, max).
pub fn instances_csv(figures: &Figures, instances: &[u16]) -> String {
    let mut out = String::from(
        "\"instances\",\"drain_eps\",\"drain_eps_min\",\"drain_eps_max\",\"events_per_cpu_s\",\"e2e_p99_ms\",\"e2e_p99_ms_min\",\"e2e_p99_ms_max\"\n",
    );
    for n in instances {
        let three = |figure: String| {
            figures.median(&figure).map_or_else(
                || vec![String::new(); 3],
                |s| vec![s.median.to_string(), s.min.to_string(), s.max.to_string()],
            )
        };
        let mut cells = vec![n.to_string()];
        cells.extend(three(format!("{n} processor(s): fill and drain, wall")));
        cells.push(three(format!("{n} processor(s): events per processor CPU-second")).remove(0));
        cells.extend(three(format!(
            "{n} processor(s): freshness p99 (ack to visible in the query API)"
        )));
        let _ = writeln!(out, "{}", cells.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_sets_small_counts_that_the_command_line_overrides() {
        #[derive(Debug, clap::Parser)]
        #[command(args_override_self = true)]
        struct Cli {
            #[command(flatten)]
            bench: AllBench,
        }
        let words = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let args = with_quick_defaults(words("sluice-dev bench quick --runs 2"));
        assert_eq!(args[..4], words("sluice-dev bench quick --runs"));
        let parsed = <Cli as clap::Parser>::parse_from(&args[2..]).bench;
        assert_eq!(
            (parsed.runs, parsed.query_reps, parsed.seed_events),
            (2, 5, 200_000)
        );
        assert_eq!(
            with_quick_defaults(words("sluice-dev bench all")),
            words("sluice-dev bench all")
        );
    }

    #[test]
    fn the_instances_table_takes_each_dimensions_figures() {
        let mut figures = Figures::default();
        figures.record(
            "processor",
            "1 processor(s): fill and drain, wall",
            "events/s",
            1,
            100.0,
        );
        figures.record(
            "processor",
            "1 processor(s): fill and drain, wall",
            "events/s",
            2,
            300.0,
        );
        figures.record(
            "processor",
            "1 processor(s): events per processor CPU-second",
            "events/CPU-s",
            1,
            50.0,
        );
        let csv = instances_csv(&figures, &[1, 2]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[1], "1,200,100,300,50,,,");
        assert_eq!(lines[2], "2,,,,,,,");
    }
}
