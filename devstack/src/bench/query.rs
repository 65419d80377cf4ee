//! The query stage of `bench all`: `bench_seed` seeds events straight into
//! ClickHouse, then real HTTP requests to a release query API with a read
//! key (nearest-rank p50/p95/p99 per question), an export of every row as
//! CSV (rows/s, counted as it streams), and the query API's peak RSS.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::all::{PROJECT, Stages, TAG};
use super::processes::{Processes, ServiceLaunch, create_api_key, peak_rss_kib};
use super::stats::nearest_rank;
use super::{log, unix_seconds};
use crate::probe::HttpRequest;
use crate::settings::HOST;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const READ_KEY: &str = "bench-read-key-0123456789";

/// The questions of the query stage: file slug, figure name, path.
const QUESTIONS: [(&str, &str, &str); 8] = [
    (
        "series",
        "24 h one-minute series (count, avg duration)",
        "/v1/metrics?interval=1m&metrics=count,avg_duration",
    ),
    (
        "series-sketches",
        "24 h one-minute series with unique users and p95",
        "/v1/metrics?interval=1m&metrics=count,unique_users,p95_duration",
    ),
    (
        "group-type",
        "group-by type (rollups, today's newest minutes raw)",
        "/v1/metrics?interval=1d&metrics=count,avg_duration&group_by=type",
    ),
    (
        "group-type-raw",
        "group-by type, exact path over raw events",
        "/v1/metrics?interval=1d&metrics=count,avg_duration&group_by=type&exact=true",
    ),
    (
        "group-property",
        "group-by a rolled-up property with unique users",
        "/v1/metrics?interval=1d&metrics=count,unique_users&group_by=property.plan",
    ),
    (
        "group-type-property",
        "group-by type and a rolled-up property, hourly, with p95",
        "/v1/metrics?interval=1h&metrics=count,p95_duration&group_by=type,property.country",
    ),
    (
        "group-property-raw",
        "group-by property with unique users, exact path over raw events",
        "/v1/metrics?interval=1d&metrics=count,unique_users&group_by=property.plan&exact=true",
    ),
    (
        "events-page",
        "/v1/events, one page of 100",
        "/v1/events?limit=100",
    ),
];

impl Stages<'_> {
    pub(super) fn query(&mut self) -> anyhow::Result<()> {
        let b = self.bench;
        let db = format!("bench_query_{}", unix_seconds());
        let seeded_from = (unix_seconds() * 1000).saturating_sub(24 * 3600 * 1000 + 60_000);
        log(
            TAG,
            format!(
                "query: seeding {} events into {db} (bench_seed)",
                b.seed_events
            ),
        );
        let started = Instant::now();
        let seeded = std::process::Command::new(self.bin_dir.join("examples/bench_seed"))
            .args([
                &self.clickhouse.url(),
                &db,
                PROJECT,
                &b.seed_events.to_string(),
            ])
            .stdout(std::fs::File::create(self.out.join("seed.txt"))?)
            .status()?;
        if !seeded.success() {
            bail!(
                "bench_seed failed; see {}",
                self.out.join("seed.txt").display()
            );
        }
        log(
            TAG,
            format!("query: seeded in {} s", started.elapsed().as_secs()),
        );
        let mut processes = Processes::default();
        processes.tansu(b.kafka_port, &self.out.join("query-tansu.log"))?;
        let common = vec![
            ("SLUICE_KAFKA_BROKERS", format!("{HOST}:{}", b.kafka_port)),
            ("SLUICE_KAFKA_EVENTS_TOPIC", "q.events".into()),
            ("SLUICE_KAFKA_DLQ_TOPIC", "q.dlq".into()),
            ("SLUICE_KAFKA_KEYS_TOPIC", "q.keys".into()),
            ("SLUICE_KAFKA_LIVE_TOPIC", String::new()),
            ("SLUICE_CLICKHOUSE_URL", self.clickhouse.url()),
            ("SLUICE_CLICKHOUSE_DATABASE", db.clone()),
        ];
        let mut gateway_env = common.clone();
        gateway_env.extend([
            ("SLUICE_LISTEN", format!("{HOST}:{}", b.gateway_port)),
            ("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ]);
        processes.service(&ServiceLaunch {
            binary: self.bin_dir.join("sluice-ingest-gateway"),
            log: self.out.join("query-gateway.log"),
            port: b.gateway_port,
            port_option: "--gateway-port",
            env: gateway_env,
        })?;
        create_api_key(b.gateway_port, ADMIN_TOKEN, PROJECT, READ_KEY, &["read"])?;
        let mut query_env = common;
        query_env.push(("SLUICE_LISTEN", format!("{HOST}:{}", b.query_port)));
        let query_pid = processes.service(&ServiceLaunch {
            binary: self.bin_dir.join("sluice-query-api"),
            log: self.out.join("query-api.log"),
            port: b.query_port,
            port_option: "--query-port",
            env: query_env,
        })?;
        super::e2e::wait_for_key(b.query_port, READ_KEY)?;
        let authorization = format!("Bearer {READ_KEY}");
        let headers = [("Authorization", authorization.as_str())];
        for run in 1..=b.runs {
            log(
                TAG,
                format!(
                    "query: run {run}/{}, {} requests per question",
                    b.runs, b.query_reps
                ),
            );
            for (slug, name, path) in QUESTIONS {
                let mut seconds = Vec::new();
                for _ in 0..b.query_reps {
                    let request = HttpRequest {
                        host: HOST,
                        port: b.query_port,
                        method: "GET",
                        path,
                        headers: &headers,
                        body: "",
                    };
                    let started = Instant::now();
                    let answer = request.answer(Duration::from_secs(300));
                    seconds.push(started.elapsed().as_secs_f64());
                    match answer {
                        Some((200, _)) => {}
                        Some((status, _)) => bail!("query: {path} answered {status}"),
                        None => bail!(
                            "query: no answer to {path} (is the query API alive? see {})",
                            self.out.join("query-api.log").display()
                        ),
                    }
                }
                let text: String = seconds.iter().map(|s| format!("{s}\n")).collect();
                std::fs::write(self.out.join(format!("query-run{run}-{slug}.txt")), text)?;
                for (label, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                    let ms = nearest_rank(&seconds, q).unwrap_or(0.0) * 1000.0;
                    self.figures
                        .record("query", format!("{name} {label}"), "ms", run, ms);
                }
            }
            log(
                TAG,
                format!("query: run {run}/{}, export of every event as CSV", b.runs),
            );
            let path = format!("/v1/export/events?format=csv&from={seeded_from}");
            let request = HttpRequest {
                host: HOST,
                port: b.query_port,
                method: "GET",
                path: &path,
                headers: &headers,
                body: "",
            };
            let started = Instant::now();
            let (status, lines) = request
                .count_lines(Duration::from_secs(600))
                .ok_or_else(|| anyhow::anyhow!("query: no answer to the export"))?;
            let seconds = started.elapsed().as_secs_f64();
            if status != 200 || lines.saturating_sub(1) != b.seed_events {
                bail!(
                    "query: the export answered {status} with {} rows, not {}",
                    lines.saturating_sub(1),
                    b.seed_events
                );
            }
            self.figures.record(
                "export",
                format!("CSV export of all {} events", b.seed_events),
                "rows/s",
                run,
                b.seed_events as f64 / seconds,
            );
        }
        self.figures.record(
            "memory",
            "query API peak RSS (after the questions and exports)",
            "MiB",
            1,
            peak_rss_kib(query_pid).unwrap_or(0.0) / 1024.0,
        );
        processes.stop_all();
        self.clickhouse
            .query(&format!("DROP DATABASE IF EXISTS {db}"))?;
        Ok(())
    }
}
