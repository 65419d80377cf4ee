//! `sluice-dev bench sweep-gateway` and `bench sweep-e2e`: how the cost
//! grows.
//!
//! - sweep-gateway runs `bench gateway` once per batch size (1, 10, 100,
//!   1000), partition count (1, 2, 4, 8) and event size (100 B, 1 KB,
//!   10 KB), the others at their defaults, into
//!   RESULTS/gateway-sweep.{csv,md} and one PNG per dimension.
//! - sweep-e2e runs `bench e2e` at stepped rates and stops after the first
//!   rate at which a run fails (freshness p95 over `--max-p95-ms`, the
//!   count not exact, or the gateway accepting less than 95 % of the
//!   offered rate), into RESULTS/NAME.{csv,md} and a PNG of freshness
//!   against rate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use serde_json::Value;

use super::e2e::{E2eBench, PACKAGES};
use super::figures::quoted;
use super::gateway::GatewayBench;
use super::report::{number, read_json};
use super::{Binaries, clickhouse_or_stack, log, plot, run_dir};

#[derive(Debug, Clone, clap::Args)]
pub struct GatewaySweep {
    /// Measured seconds per phase and setting.
    #[arg(long, default_value_t = 6.0)]
    pub duration: f64,
    /// Use the release binaries already built.
    #[arg(long)]
    pub no_build: bool,
    /// Where the table and plots go (default load-tests/results).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
}

/// The settings swept: dimension, value, and what changes.
fn gateway_settings() -> Vec<(&'static str, u32, GatewayBench)> {
    let mut settings = Vec::new();
    for batch in [1, 10, 100, 1000] {
        let mut bench = GatewayBench::defaults();
        bench.load.batch = batch;
        bench.single_event = batch == 1;
        settings.push(("batch", batch, bench));
    }
    for partitions in [1, 2, 4, 8] {
        let mut bench = GatewayBench::defaults();
        bench.partitions = partitions;
        settings.push(("partitions", partitions, bench));
    }
    for event_bytes in [100, 1000, 10_000] {
        let mut bench = GatewayBench::defaults();
        bench.load.event_bytes = event_bytes;
        settings.push(("event_bytes", event_bytes, bench));
    }
    settings
}

impl GatewaySweep {
    pub fn run(&self, repo: &Path) -> anyhow::Result<()> {
        let binaries = Binaries {
            no_build: self.no_build,
            bin_dir: None,
        };
        let bin_dir = binaries.prepare(
            repo,
            &["sluice-ingest-gateway", "sluice-loadgen"],
            &[],
            &["sluice-ingest-gateway", "sluice-loadgen"],
        )?;
        let out = self
            .results_dir
            .clone()
            .unwrap_or_else(|| repo.join("load-tests/results"));
        std::fs::create_dir_all(&out)?;
        let mut csv = String::from(
            "dimension,value,bare_eps,gateway_eps,ratio,peak_p99_ms,half_p99_ms,cpu_us_per_event\n",
        );
        for (dimension, value, setting) in gateway_settings() {
            log("sweep", format!("{dimension} = {value}"));
            let bench = GatewayBench {
                runs: 1,
                duration: self.duration,
                no_overload: true,
                no_ceiling: true,
                binaries: Binaries {
                    no_build: true,
                    bin_dir: Some(bin_dir.clone()),
                },
                ..setting
            };
            let dir = bench.run(repo)?;
            let phase = |name: &str| read_json(&dir.join(format!("run1-{name}.json")));
            let (bare, peak, half, gateway) = (
                phase("bare")?,
                phase("peak")?,
                phase("half")?,
                phase("gateway")?,
            );
            let _ = writeln!(
                csv,
                "{}",
                sweep_row(dimension, value, &bare, &peak, &half, &gateway)
            );
        }
        let file = out.join("gateway-sweep.csv");
        std::fs::write(&file, csv)?;
        plot(
            repo,
            "plot_sweep.py",
            &[&file.display().to_string(), &out.display().to_string()],
        )?;
        log(
            "sweep",
            format!(
                "wrote {}, {}/gateway-sweep.md and {}/gateway-*.png",
                file.display(),
                out.display(),
                out.display()
            ),
        );
        Ok(())
    }
}

/// One setting's CSV row (strings quoted, as jq's @csv wrote them).
fn sweep_row(
    dimension: &str,
    value: u32,
    bare: &Value,
    peak: &Value,
    half: &Value,
    gateway: &Value,
) -> String {
    let bare_eps = number(bare, "/events_per_s");
    let peak_eps = number(peak, "/events_per_s");
    [
        quoted(dimension),
        quoted(&value.to_string()),
        bare_eps.to_string(),
        peak_eps.to_string(),
        (peak_eps / bare_eps).to_string(),
        number(peak, "/latency_ms/p99").to_string(),
        number(half, "/latency_ms/p99").to_string(),
        (number(gateway, "/gateway_cpu_s_peak_phase") * 1e6 / number(peak, "/events_acked"))
            .to_string(),
    ]
    .join(",")
}

#[derive(Debug, Clone, clap::Args)]
pub struct E2eSweep {
    /// Offered rates, events/s, comma-separated, ascending.
    #[arg(long, default_value = "5000,10000,15000,20000,30000,40000")]
    pub rates: String,
    /// Seconds of sending per run.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Runs per rate.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// A run whose freshness p95 exceeds it fails the rate.
    #[arg(long, default_value_t = 1000.0)]
    pub max_p95_ms: f64,
    /// Go on past a failing rate.
    #[arg(long)]
    pub no_stop: bool,
    /// RESULTS/NAME.csv and .md, RESULTS/<NAME without -sweep>-freshness.png.
    #[arg(long, default_value = "e2e-sweep")]
    pub name: String,
    /// Where they go (default load-tests/results).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Use the release binaries already built.
    #[arg(long)]
    pub no_build: bool,
    /// Options for every `bench e2e` run, after --, e.g. -- --processors 2
    /// --clickhouse-url URL --batch-max-ms 100.
    #[arg(last = true)]
    pub e2e_args: Vec<String>,
}

#[derive(Debug, Parser)]
struct E2eOptions {
    #[command(flatten)]
    e2e: E2eBench,
}

const E2E_HEADER: &str = "rate,run,accepted_eps,freshness_p50_ms,freshness_p95_ms,freshness_p99_ms,exact,passed,cpu_gateway,cpu_processors,cpu_query_api,cpu_tansu,cpu_clickhouse_shared,cpu_loadgen,load1,load5,load15,error";

impl E2eSweep {
    pub fn run(&self, repo: &Path) -> anyhow::Result<()> {
        let rates: Vec<f64> = self
            .rates
            .split(',')
            .map(|rate| {
                rate.trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--rates takes numbers, got '{rate}'"))
            })
            .collect::<Result<_, _>>()?;
        let mut e2e = E2eOptions::try_parse_from(
            std::iter::once("e2e".to_owned()).chain(self.e2e_args.iter().cloned()),
        )
        .context("the options after --")?
        .e2e;
        let binaries = Binaries {
            no_build: self.no_build,
            bin_dir: None,
        };
        let bin_dir = binaries.prepare(repo, &PACKAGES, &[], &PACKAGES)?;
        let clickhouse = clickhouse_or_stack(e2e.clickhouse_url.as_deref(), repo)?;
        let results = self
            .results_dir
            .clone()
            .unwrap_or_else(|| repo.join("load-tests/results"));
        std::fs::create_dir_all(&results)?;
        let csv = results.join(format!("{}.csv", self.name));
        let mut rows = format!("{E2E_HEADER}\n");
        std::fs::write(&csv, &rows)?;
        'rates: for rate in rates {
            let mut failed = false;
            for n in 1..=self.runs {
                log(
                    "sweep-e2e",
                    format!("rate {rate} events/s, run {n} of {}", self.runs),
                );
                e2e.rate = rate;
                e2e.duration = self.duration;
                e2e.result = None;
                let out = run_dir(repo, "e2e-")?;
                let result = e2e.measure(&bin_dir, &clickhouse, &out)?;
                let (row, passed) = e2e_row(rate, n, self.max_p95_ms, &result);
                rows.push_str(&row);
                rows.push('\n');
                std::fs::write(&csv, &rows)?;
                if !passed {
                    failed = true;
                    if !self.no_stop {
                        break;
                    }
                }
            }
            if failed && !self.no_stop {
                log(
                    "sweep-e2e",
                    format!(
                        "stopping: {rate} events/s failed (freshness p95 over {} ms, count, or behind)",
                        self.max_p95_ms
                    ),
                );
                break 'rates;
            }
        }
        let stem = self.name.strip_suffix("-sweep").unwrap_or(&self.name);
        let png = results.join(format!("{stem}-freshness.png"));
        let md = results.join(format!("{}.md", self.name));
        plot(
            repo,
            "plot_e2e.py",
            &[
                &csv.display().to_string(),
                &md.display().to_string(),
                &png.display().to_string(),
                &self.max_p95_ms.to_string(),
            ],
        )?;
        log(
            "sweep-e2e",
            format!(
                "wrote {}, {} and {}",
                csv.display(),
                md.display(),
                png.display()
            ),
        );
        Ok(())
    }
}

/// A JSON value as a CSV cell (as jq's @csv: strings quoted, null empty).
fn csv_cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => quoted(text),
        Some(Value::Number(number)) => number
            .as_f64()
            .map_or_else(|| number.to_string(), |n| n.to_string()),
        Some(other) => other.to_string(),
    }
}

/// One run's row of the e2e sweep, and whether it passed the rate.
fn e2e_row(rate: f64, run: u32, max_p95_ms: f64, result: &Value) -> (String, bool) {
    let seconds = result.get("seconds").and_then(Value::as_f64).unwrap_or(1.0);
    let accepted = number(result, "/events_acked") / seconds;
    let exact = result.get("exact") == Some(&Value::Bool(true));
    let p95 = result.pointer("/freshness_ms/p95").and_then(Value::as_f64);
    let passed = exact && p95.is_some_and(|p95| p95 <= max_p95_ms) && accepted >= 0.95 * rate;
    let cpu = result.get("cpu_share_of_one_core");
    let share = |name: &str| csv_cell(cpu.and_then(|cpu| cpu.get(name)));
    let processors: f64 = cpu.and_then(Value::as_object).map_or(0.0, |cpu| {
        cpu.iter()
            .filter(|(name, _)| name.starts_with("processor"))
            .filter_map(|(_, share)| share.as_f64())
            .sum()
    });
    let load = |i: usize| csv_cell(result.pointer(&format!("/load_average_at_start/{i}")));
    let error = result
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .replace('\n', " ");
    let cells = [
        rate.to_string(),
        run.to_string(),
        accepted.round().to_string(),
        csv_cell(result.pointer("/freshness_ms/p50")),
        csv_cell(result.pointer("/freshness_ms/p95")),
        csv_cell(result.pointer("/freshness_ms/p99")),
        exact.to_string(),
        passed.to_string(),
        share("gateway"),
        processors.to_string(),
        share("query_api"),
        share("tansu"),
        share("clickhouse_server_shared"),
        share("loadgen"),
        load(0),
        load(1),
        load(2),
        quoted(&error),
    ];
    (cells.join(","), passed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_gateway_sweep_covers_three_dimensions() {
        let settings = gateway_settings();
        assert_eq!(settings.len(), 11);
        assert!(settings[0].2.single_event && settings[0].2.load.batch == 1);
        assert!(
            settings
                .iter()
                .skip(1)
                .all(|(_, _, bench)| !bench.single_event)
        );
        let row = sweep_row(
            "batch",
            10,
            &json!({"events_per_s": 200.0}),
            &json!({"events_per_s": 100.0,
            "latency_ms": {"p99": 5.5}, "events_acked": 1000}),
            &json!({"latency_ms": {"p99": 2.0}}),
            &json!({"gateway_cpu_s_peak_phase": 0.5}),
        );
        assert_eq!(row, "\"batch\",\"10\",200,100,0.5,5.5,2,500");
    }

    #[test]
    fn an_e2e_run_passes_only_exact_fresh_and_keeping_up() {
        let good = json!({"seconds": 10.0, "events_acked": 50_000, "exact": true, "freshness_ms": {"p50": 100, "p95": 400, "p99": 900},
            "cpu_share_of_one_core": {"gateway": 0.5, "processor0": 0.25, "processor1": 0.5, "loadgen": null},
            "load_average_at_start": [1.5, 1.0, 0.5]});
        let (row, passed) = e2e_row(5000.0, 1, 1000.0, &good);
        assert!(passed);
        assert_eq!(
            row,
            "5000,1,5000,100,400,900,true,true,0.5,0.75,,,,,1.5,1,0.5,\"\""
        );
        assert!(
            !e2e_row(6000.0, 1, 1000.0, &good).1,
            "behind the offered rate"
        );
        assert!(!e2e_row(5000.0, 1, 300.0, &good).1, "p95 over the limit");
        let failed = json!({"exact": false, "error": "Error: lost\nline"});
        let (row, passed) = e2e_row(5000.0, 2, 1000.0, &failed);
        assert!(!passed);
        assert!(row.ends_with(",\"Error: lost line\""), "{row}");
    }
}
