//! `sluice-dev bench gateway`: HTTP batch ingest through the gateway
//! against a bare rdkafka producer, on the same private broker, in the
//! same run. Each run starts a fresh
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

use super::gateway_table::table;
use super::processes::{Processes, ServiceLaunch, cpu_seconds, create_api_key, peak_rss_kib};
use super::report::{loadgen, number, read_json};
use super::{Binaries, PeakLoad, log, run_dir};
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
    #[command(flatten)]
    pub load: PeakLoad,
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
            self.load.batch,
            self.load.event_bytes,
            self.partitions,
            self.duration,
            self.load.connections,
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
                b.load.batch, b.load.connections
            ),
        );
        let peak = self.http_load("peak", &["--connections", &b.load.connections.to_string()])?;
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
                b.load.batch
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
            &b.load.event_bytes.to_string(),
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
                b.load.batch.to_string(),
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
            &b.load.batch.to_string(),
            "--event-bytes",
            &b.load.event_bytes.to_string(),
            "--duration",
            &b.duration.to_string(),
            "--warmup",
            &b.load.warmup.to_string(),
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
        // The sink is stopped whatever happens; it reports as it stops.
        let traced = self.traced_load(port);
        let _ = crate::process::stop(sink.id(), std::time::Duration::from_secs(5));
        let _ = sink.wait();
        let cpu = traced?;
        let mut report: Value = read_json(&self.file("otlp-sink"))?;
        report["gateway_cpu_s"] = json!(cpu);
        std::fs::write(self.file("otlp"), format!("{report}\n"))?;
        std::fs::remove_file(self.file("otlp-sink"))?;
        Ok(())
    }

    /// The traced gateway under the peak load; its CPU seconds meanwhile.
    fn traced_load(&mut self, otlp_port: u16) -> anyhow::Result<f64> {
        let b = self.bench;
        let endpoint = format!("http://{HOST}:{otlp_port}");
        let gateway = self.start_gateway(&[("SLUICE_OTLP_ENDPOINT", endpoint)])?;
        let before = cpu_seconds(gateway).unwrap_or(0.0);
        log(
            "bench",
            format!(
                "run {}: traced gateway peak, closed loop, batch {}, {} connections",
                self.run, b.load.batch, b.load.connections
            ),
        );
        let connections = b.load.connections.to_string();
        self.http_load("traced", &["--connections", &connections, "--traceparent"])?;
        let cpu = cpu_seconds(gateway).unwrap_or(0.0) - before;
        // Its last spans reach the collector as the gateway stops.
        self.processes.stop(gateway);
        Ok(cpu)
    }
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
}
