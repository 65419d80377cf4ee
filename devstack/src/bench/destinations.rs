//! `sluice-dev bench destinations`: what the destinations service delivers
//! to a local receiver (issue 21, item 6). Each run starts a private tansu
//! (memory engine), `sluice-loadgen webhook-sink` as the receiver and the
//! release `sluice-destinations`, creates one webhook whose rule `{}`
//! matches every event of the project, then produces the gateway's records
//! straight to the events topic with `sluice-loadgen kafka`:
//!
//! 1. fill and drain: `--events` records at full speed; deliveries per
//!    second from the first receipt to the last, the service's CPU seconds
//!    per 1,000 deliveries and its peak RSS;
//! 2. latency: `--rate` records per second for `--duration` seconds, each
//!    stamped with its send time (`--stamp-send-time`); the sink measures
//!    from that time to the webhook's receipt (p50/p95/p99).
//!
//! Every run checks that each event arrived (distinct event ids); a run
//! that loses one fails. ClickHouse (the deliveries log) is a private
//! server unless `--clickhouse-url`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::figures::Figures;
use super::processes::{Processes, ServiceLaunch, cpu_seconds, ensure_free, peak_rss_kib, rss_kib};
use super::report::{loadgen, number, scraped_sum};
use super::{Binaries, HttpEndpoint, commit, load_average, log, run_dir, unix_seconds};
use crate::clickhouse_config::{ServerConfig, User};
use crate::probe::port_open;
use crate::process::Launch;
use crate::settings::HOST;

const TAG: &str = "destinations";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const PROJECT: &str = "bench";
const PACKAGES: [&str; 2] = ["sluice-destinations", "sluice-loadgen"];
/// Records per open-loop group: 10 records every 5 ms at 2,000/s.
const GROUP: &str = "10";
/// Unmeasured records before the latency phase.
const WARMUP: &str = "1000";
/// How long the dead-endpoint phase waits for the service to match its events.
const DEAD_ENDPOINT_PATIENCE: Duration = Duration::from_secs(300);
const MATCHES_TOTAL: &str = "sluice_destination_matches_total";
const PARKED_TOTAL: &str = "sluice_destination_parked_total";

#[derive(Debug, Clone, clap::Args)]
pub struct DestinationsBench {
    /// Runs; the table gives the median, minimum and maximum.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Events of the fill-and-drain phase.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Events per second of the latency phase.
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Partitions of the events topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// ClickHouse for the deliveries log (default: a private server on
    /// --clickhouse-ports).
    #[arg(long)]
    pub clickhouse_url: Option<String>,
    #[command(flatten)]
    pub binaries: Binaries,
    /// Private broker.
    #[arg(long, env = "SLUICE_BENCH_DEST_KAFKA_PORT", default_value_t = 19492)]
    pub kafka_port: u16,
    /// The destinations service.
    #[arg(long, env = "SLUICE_BENCH_DEST_PORT", default_value_t = 19483)]
    pub service_port: u16,
    /// The webhook receiver.
    #[arg(long, env = "SLUICE_BENCH_DEST_SINK_PORT", default_value_t = 19489)]
    pub sink_port: u16,
    /// The private ClickHouse's HTTP and native ports.
    #[arg(long, num_args = 2, value_delimiter = ',', default_values_t = [19423, 19424])]
    pub clickhouse_ports: Vec<u16>,
}

/// What one run started, for its phases.
struct Rig<'a> {
    bin_dir: &'a Path,
    out: &'a Path,
    run: u32,
    processes: Processes,
    service_pid: u32,
    sink: HttpEndpoint,
}

impl DestinationsBench {
    /// `bench destinations`: builds, runs, prints the table and its context.
    pub fn run(&self, repo: &Path, command: &str) -> anyhow::Result<()> {
        let bin_dir = self.binaries.prepare(repo, &PACKAGES, &[], &PACKAGES)?;
        let out = run_dir(repo, "destinations-")?;
        let [load_1, load_5, load_15] = load_average();
        let mut servers = Processes::default();
        let clickhouse = match &self.clickhouse_url {
            Some(url) => HttpEndpoint::parse(url, "--clickhouse-url")?,
            None => self.private_clickhouse(&mut servers, &out)?,
        };
        let mut figures = Figures::default();
        for run in 1..=self.runs {
            log(TAG, format!("run {run} of {}", self.runs));
            self.one_run(&bin_dir, &clickhouse, &out, run, &mut figures)?;
        }
        servers.stop_all();
        figures.write_jsonl(&out.join("figures.jsonl"))?;
        let [end_1, ..] = load_average();
        let context = format!(
            "Command: `{command}`; commit {}; {} runs; fill and drain {} events, latency \
             at {} events/s for {} s; load average at the start {load_1:.2} {load_5:.2} \
             {load_15:.2}, at the end {end_1:.2}; logs in {}.\n",
            commit(repo),
            self.runs,
            self.events,
            self.rate,
            self.duration,
            out.display()
        );
        let table = format!("{}\n{context}", figures.markdown());
        std::fs::write(out.join("table.md"), &table)?;
        println!("{table}");
        Ok(())
    }

    fn private_clickhouse(
        &self,
        processes: &mut Processes,
        out: &Path,
    ) -> anyhow::Result<HttpEndpoint> {
        let [http, tcp] = [self.clickhouse_ports[0], self.clickhouse_ports[1]];
        for port in [http, tcp] {
            ensure_free(port, "--clickhouse-ports")?;
        }
        let config = ServerConfig {
            dir: out.join("clickhouse"),
            http_port: Some(http),
            https: None,
            tcp_port: tcp,
            cache_bytes: 64 << 20,
            users: vec![User::open_default()],
            replication: None,
        };
        log(TAG, format!("private ClickHouse on HTTP port {http}"));
        let (_, endpoint) = processes.clickhouse(&config, &out.join("clickhouse.stderr.log"))?;
        Ok(endpoint)
    }

    fn one_run(
        &self,
        bin_dir: &Path,
        clickhouse: &HttpEndpoint,
        out: &Path,
        run: u32,
        figures: &mut Figures,
    ) -> anyhow::Result<()> {
        let database = format!("bench_dest_{run}_{}", unix_seconds());
        let mut processes = Processes::default();
        processes.tansu(self.kafka_port, &out.join(format!("run{run}-tansu.log")))?;
        let service_pid = processes.service(&ServiceLaunch {
            binary: bin_dir.join("sluice-destinations"),
            log: out.join(format!("run{run}-destinations.log")),
            port: self.service_port,
            port_option: "--service-port",
            env: vec![
                ("SLUICE_LISTEN", format!("{HOST}:{}", self.service_port)),
                ("SLUICE_KAFKA_BROKERS", self.brokers()),
                ("SLUICE_KAFKA_PARTITIONS", self.partitions.to_string()),
                ("SLUICE_CLICKHOUSE_URL", clickhouse.url()),
                ("SLUICE_CLICKHOUSE_DATABASE", database.clone()),
                ("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN.into()),
                ("SLUICE_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8".into()),
            ],
        })?;
        let mut rig = Rig {
            bin_dir,
            out,
            run,
            processes,
            service_pid,
            sink: HttpEndpoint {
                host: HOST.into(),
                port: self.sink_port,
            },
        };
        let result = self.phases(&mut rig, figures);
        rig.processes.stop_all();
        let _ = clickhouse.query(&format!("DROP DATABASE IF EXISTS {database}"));
        result
    }

    fn phases(&self, rig: &mut Rig<'_>, figures: &mut Figures) -> anyhow::Result<()> {
        let run = rig.run;
        let service = HttpEndpoint {
            host: HOST.into(),
            port: self.service_port,
        };
        let sink_pid = self.start_sink(rig, "drain")?;
        create_webhook(&service, self.sink_port)?;
        // The webhook reaches the service through its topic, and the
        // consumer joins its group: both before the first event.
        std::thread::sleep(Duration::from_secs(5));

        let cpu_before = cpu_seconds(rig.service_pid).unwrap_or(f64::NAN);
        let count = self.events.to_string();
        let produced = self.produce(rig, "drain", &["--count", &count, "--warmup-count", "0"])?;
        let sink = wait_for(&rig.sink, self.events, rig.out)?;
        let cpu = cpu_seconds(rig.service_pid).unwrap_or(f64::NAN) - cpu_before;
        let deliveries = number(&sink, "/requests");
        figures.record(
            TAG,
            "fill and drain: deliveries/s (first to last receipt)",
            "deliveries/s",
            run,
            number(&sink, "/deliveries_per_s"),
        );
        figures.record(
            TAG,
            "fill and drain: producer rate (the load, for comparison)",
            "events/s",
            run,
            number(&produced, "/events_per_s"),
        );
        figures.record(
            TAG,
            "fill and drain: service CPU seconds per 1,000 deliveries",
            "CPU-s",
            run,
            cpu / deliveries * 1000.0,
        );
        rig.processes.stop(sink_pid);

        let sink_pid = self.start_sink(rig, "latency")?;
        let cpu_before = cpu_seconds(rig.service_pid).unwrap_or(f64::NAN);
        let (rate, duration) = (self.rate.to_string(), self.duration.to_string());
        // The new producer's first records wait for its broker connection
        // and producer id: warm-up records (unstamped, not measured) take that.
        let args = [
            "--warmup-count",
            WARMUP,
            "--rate",
            &rate,
            "--group",
            GROUP,
            "--duration",
            &duration,
            "--stamp-send-time",
        ];
        let produced = self.produce(rig, "latency", &args)?;
        let expected = number(&produced, "/events_acked") as u64 + WARMUP.parse::<u64>()?;
        let sink = wait_for(&rig.sink, expected, rig.out)?;
        let cpu = cpu_seconds(rig.service_pid).unwrap_or(f64::NAN) - cpu_before;
        for quantile in ["p50", "p95", "p99"] {
            figures.record(
                TAG,
                format!(
                    "at {} events/s: send to webhook received, {quantile}",
                    self.rate
                ),
                "ms",
                run,
                number(&sink, &format!("/latency_ms/{quantile}")),
            );
        }
        figures.record(
            TAG,
            format!(
                "at {} events/s: send to broker ack, p50 (part of the above)",
                self.rate
            ),
            "ms",
            run,
            number(&produced, "/ack_latency_ms/p50"),
        );
        figures.record(
            TAG,
            format!(
                "at {} events/s: service CPU seconds per 1,000 deliveries",
                self.rate
            ),
            "CPU-s",
            run,
            cpu / number(&sink, "/requests") * 1000.0,
        );
        figures.record(
            "memory",
            "destinations peak RSS (after both phases)",
            "MiB",
            run,
            peak_rss_kib(rig.service_pid).unwrap_or(f64::NAN) / 1024.0,
        );
        rig.processes.stop(sink_pid);
        self.dead_endpoint(rig, figures)
    }

    /// The memory bound with a dead endpoint: no receiver listens, every
    /// attempt fails, and `--events` more matching events arrive. The
    /// deliveries go to the retry topic, not to memory: the service's
    /// resident memory once it has matched them all is recorded beside the
    /// size of the backlog.
    fn dead_endpoint(&self, rig: &mut Rig<'_>, figures: &mut Figures) -> anyhow::Result<()> {
        let run = rig.run;
        let matched_before = scraped_sum(self.service_port, MATCHES_TOTAL)?;
        let count = self.events.to_string();
        self.produce(rig, "dead", &["--count", &count, "--warmup-count", "0"])?;
        let started = Instant::now();
        loop {
            let matched = scraped_sum(self.service_port, MATCHES_TOTAL)? - matched_before;
            if matched >= self.events as f64 {
                break;
            }
            if started.elapsed() > DEAD_ENDPOINT_PATIENCE {
                bail!(
                    "dead endpoint: {matched} of {} events matched after {} s; logs in {}",
                    self.events,
                    DEAD_ENDPOINT_PATIENCE.as_secs(),
                    rig.out.display()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let matching_s = started.elapsed().as_secs_f64();
        // Attempts keep failing and parking meanwhile; let a few rounds pass.
        std::thread::sleep(Duration::from_secs(10));
        let label = format!(
            "with a dead endpoint and a backlog of {} events",
            self.events
        );
        figures.record(
            "memory",
            format!("destinations RSS {label}"),
            "MiB",
            run,
            rss_kib(rig.service_pid).unwrap_or(f64::NAN) / 1024.0,
        );
        // Every match of a dead endpoint is parked (its circuit is open), so
        // this is how fast the consumer goes on while it parks them.
        figures.record(
            TAG,
            format!("events matched per second {label} (from the load's end)"),
            "events/s",
            run,
            self.events as f64 / matching_s,
        );
        figures.record(
            TAG,
            format!("deliveries parked in the retry topic {label}"),
            "deliveries",
            run,
            scraped_sum(self.service_port, PARKED_TOTAL)?,
        );
        Ok(())
    }

    fn brokers(&self) -> String {
        format!("{HOST}:{}", self.kafka_port)
    }

    /// `sluice-loadgen webhook-sink` on the sink port; its pid.
    fn start_sink(&self, rig: &mut Rig<'_>, phase: &str) -> anyhow::Result<u32> {
        ensure_free(self.sink_port, "--sink-port")?;
        let log_file = rig.out.join(format!("run{}-{phase}-sink.json", rig.run));
        let launch = Launch {
            program: rig.bin_dir.join("sluice-loadgen"),
            args: [
                "--json",
                "webhook-sink",
                "--listen",
                &format!("{HOST}:{}", self.sink_port),
            ]
            .map(str::to_owned)
            .to_vec(),
            env_remove: Vec::new(),
            env: Vec::new(),
            workdir: rig.out.to_path_buf(),
        };
        let pid = rig.processes.spawn(&launch, &log_file, false)?;
        let port = self.sink_port;
        rig.processes
            .wait_until("webhook-sink", pid, &log_file, || port_open(port))?;
        Ok(pid)
    }

    /// `sluice-loadgen kafka` to the events topic with `extra`; its report.
    fn produce(&self, rig: &Rig<'_>, phase: &str, extra: &[&str]) -> anyhow::Result<Value> {
        let brokers = self.brokers();
        let mut args: Vec<String> = [
            "--json",
            "kafka",
            "--brokers",
            &brokers,
            "--topic",
            "sluice.events",
            "--no-create-topic",
            "--project",
            PROJECT,
            "--event-bytes",
            "300",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let out = rig.out.join(format!("run{}-{phase}-loadgen.json", rig.run));
        loadgen(rig.bin_dir, &args, &out)
    }
}

/// One webhook of the benchmark's project to the sink, matching every event.
fn create_webhook(service: &HttpEndpoint, sink_port: u16) -> anyhow::Result<()> {
    let body = json!({
        "project_id": PROJECT,
        "url": format!("http://{HOST}:{sink_port}/hook"),
        "description": "bench destinations",
        "rules": [{}],
    })
    .to_string();
    let authorization = format!("Bearer {ADMIN_TOKEN}");
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Content-Type", "application/json"),
    ];
    match service.call("POST", "/v1/webhooks", &headers, &body) {
        Some((201, _)) => Ok(()),
        Some((status, answer)) => bail!("creating the webhook: {status} {answer}"),
        None => bail!("no answer from the destinations API at {}", service.url()),
    }
}

/// Polls the sink's report until `expected` distinct events arrived;
/// fails when nothing new came for 30 s.
fn wait_for(sink: &HttpEndpoint, expected: u64, out: &Path) -> anyhow::Result<Value> {
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let report = sink_report(sink)?;
        let arrived = number(&report, "/distinct_events") as u64;
        if arrived >= expected {
            return Ok(report);
        }
        if arrived != last {
            (last, since) = (arrived, Instant::now());
        } else if since.elapsed() > Duration::from_secs(30) {
            bail!(
                "{arrived} of {expected} events delivered, none more for 30 s; logs in {}",
                out.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sink_report(sink: &HttpEndpoint) -> anyhow::Result<Value> {
    match sink.call("GET", "/report", &[], "") {
        Some((200, body)) => parse_report(&body),
        _ => bail!("no report from the webhook sink at {}", sink.url()),
    }
}

/// The sink's report, which must count requests.
fn parse_report(body: &str) -> anyhow::Result<Value> {
    let report: Value = serde_json::from_str(body.trim())
        .with_context(|| format!("the webhook sink's report is not JSON: {body}"))?;
    if report.get("requests").and_then(Value::as_u64).is_none() {
        bail!("the webhook sink's report counts no requests: {body}");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_reports_are_read_for_their_numbers() {
        let body = r#"{"mode":"webhook-sink","requests":200000,"distinct_events":200000,
            "deliveries_per_s":5123.4,"latency_ms":{"p50":12.5,"p95":30.1,"p99":48.0}}"#;
        let report = parse_report(body).unwrap();
        assert_eq!(number(&report, "/deliveries_per_s"), 5123.4);
        assert_eq!(number(&report, "/latency_ms/p99"), 48.0);
        assert_eq!(number(&report, "/latency_ms/p999"), 0.0);
        assert!(parse_report("{}").is_err());
        assert!(parse_report("Not Found").is_err());
    }

    #[test]
    fn a_silent_sink_is_an_error() {
        let sink = HttpEndpoint {
            host: HOST.into(),
            port: 1,
        };
        assert!(sink_report(&sink).is_err());
    }
}
