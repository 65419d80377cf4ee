//! The phases of a `bench tls` round: the gateway under closed-loop HTTP
//! load, and a processor draining a freshly filled topic, each with the
//! CPU of the gateway or processor, stunnel, tansu and ClickHouse per
//! million events, and the TLS connections stunnel saw.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::processes::{ServiceLaunch, cpu_seconds, create_api_key};
use super::report::{loadgen, number};
use super::tls_rig::Rig;
use super::tls_settings::{SASL_SAFE_S, TAG, TlsBench};
use super::tls_table::{Figures, Variant};
use super::{load_average, log, unix_seconds};
use crate::probe::http_get;
use crate::settings::HOST;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const API_KEY: &str = "bench-key-0123456789abcdef";
const PROJECT: &str = "bench";

/// One variant's turn in one round: where the binaries and logs are, and
/// the figures it adds to.
pub(super) struct Turn<'a> {
    pub(super) round: u32,
    pub(super) variant: Variant,
    pub(super) bin_dir: &'a Path,
    pub(super) out: &'a Path,
    pub(super) figures: &'a mut Figures,
}

impl TlsBench {
    pub(super) fn gateway_phase(&self, rig: &mut Rig, turn: Turn<'_>) -> anyhow::Result<()> {
        let (round, variant, bin_dir, out) = (turn.round, turn.variant, turn.bin_dir, turn.out);
        let figures = turn.figures;
        let name = variant.name();
        let stem = out.join(format!("round{round}-{name}-gateway"));
        figures.context(
            "load average (1 min) at the phase's start",
            variant,
            round,
            Some(load_average()[0]),
        );
        let launched = Instant::now();
        let mut env = self.kafka_env(variant, &rig.secrets);
        env.extend([
            ("SLUICE_LISTEN", format!("{HOST}:{}", self.gateway_port)),
            ("SLUICE_KAFKA_EVENTS_TOPIC", "gw.events".into()),
            ("SLUICE_KAFKA_DLQ_TOPIC", "gw.dlq".into()),
            ("SLUICE_KAFKA_KEYS_TOPIC", "gw.keys".into()),
            ("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ]);
        let gateway = rig.processes.service(&ServiceLaunch {
            binary: bin_dir.join("sluice-ingest-gateway"),
            log: stem.with_extension("log"),
            port: self.gateway_port,
            port_option: "--gateway-port",
            env,
        })?;
        create_api_key(
            self.gateway_port,
            ADMIN_TOKEN,
            PROJECT,
            API_KEY,
            &["ingest"],
        )?;
        let tansu = if variant.secured() {
            rig.secure_tansu
        } else {
            rig.plain_tansu
        };
        let stunnel_log = out.join("stunnel.log");
        let sample = |rig: &Rig| Sample {
            gateway: cpu_seconds(gateway).unwrap_or(0.0),
            stunnel: cpu_seconds(rig.stunnel).unwrap_or(0.0),
            tansu: cpu_seconds(tansu).unwrap_or(0.0),
            accepted: gateway_accepted(self.gateway_port),
            connections: tls_connections(&stunnel_log),
        };
        let before = sample(rig);
        let args: Vec<String> = [
            "--json",
            "http",
            "--url",
            &format!("http://{HOST}:{}", self.gateway_port),
            "--api-key",
            API_KEY,
            "--batch",
            &self.load.batch.to_string(),
            "--event-bytes",
            &self.load.event_bytes.to_string(),
            "--duration",
            &self.duration.to_string(),
            "--warmup",
            &self.load.warmup.to_string(),
            "--connections",
            &self.load.connections.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        let peak = loadgen(
            bin_dir,
            &args,
            &PathBuf::from(format!("{}-peak.json", stem.display())),
        )?;
        let after = sample(rig);
        let since_start = launched.elapsed().as_secs_f64();
        let events = after.accepted.saturating_sub(before.accepted) as f64;
        if events <= 0.0 {
            bail!(
                "the gateway accepted nothing; see {}-peak.json and {}.log",
                stem.display(),
                stem.display()
            );
        }
        rig.processes.stop(gateway);
        let per_million = |seconds: f64| seconds * 1e6 / events;
        let secured = variant.secured();
        let stunnel = after.stunnel - before.stunnel;
        let gw = after.gateway - before.gateway;
        let eps = number(&peak, "/events_per_s");
        figures.gateway(
            &format!(
                "peak events/s (closed loop, {} connections, batches of {})",
                self.load.connections, self.load.batch
            ),
            variant,
            round,
            Some(eps),
        );
        figures.gateway(
            "peak p99 latency, ms",
            variant,
            round,
            Some(number(&peak, "/latency_ms/p99")),
        );
        figures.gateway(
            "gateway CPU s per million events",
            variant,
            round,
            Some(per_million(gw)),
        );
        figures.gateway(
            "stunnel CPU s per million events",
            variant,
            round,
            secured.then(|| per_million(stunnel)),
        );
        figures.gateway(
            "gateway + stunnel CPU s per million events",
            variant,
            round,
            Some(per_million(gw + if secured { stunnel } else { 0.0 })),
        );
        let opened = after.connections.0.saturating_sub(before.connections.0) as f64;
        let closed = after.connections.1.saturating_sub(before.connections.1) as f64;
        figures.context(
            "gateway: TLS connections opened during the load",
            variant,
            round,
            secured.then_some(opened),
        );
        figures.context(
            "gateway: TLS connections closed during the load (cut by the broker)",
            variant,
            round,
            secured.then_some(closed),
        );
        figures.gateway(
            "tansu CPU s per million events",
            variant,
            round,
            Some(per_million(after.tansu - before.tansu)),
        );
        figures.gateway(
            "load generator CPU share of the phase, %",
            variant,
            round,
            Some(
                number(&peak, "/loadgen_cpu_s") * 100.0
                    / (number(&peak, "/seconds") + self.load.warmup),
            ),
        );
        figures.context(
            "gateway: seconds from its start to the phase's end",
            variant,
            round,
            Some(since_start),
        );
        if secured && since_start > SASL_SAFE_S {
            log(
                TAG,
                format!(
                    "WARNING: round {round} {name} gateway phase ended {since_start:.1} s after the gateway's start (tansu re-authenticates at ~54 s)"
                ),
            );
        }
        log(
            TAG,
            format!(
                "round {round} {name} gateway: {eps} events/s, gateway {:.2} CPU s per million, stunnel {stunnel:.2} s",
                per_million(gw)
            ),
        );
        Ok(())
    }

    pub(super) fn processor_phase(&self, rig: &mut Rig, turn: Turn<'_>) -> anyhow::Result<()> {
        let (round, variant, bin_dir, out) = (turn.round, turn.variant, turn.bin_dir, turn.out);
        let figures = turn.figures;
        let name = variant.name();
        let stem = format!("{}/round{round}-{name}-processor", out.display());
        let clickhouse = rig
            .clickhouse
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no ClickHouse for the processor stage"))?;
        let kafka = variant.kafka();
        let topic = format!("proc.{name}.r{round}");
        let db = format!("bench_tls_{name}_r{round}_{}", unix_seconds());
        log(
            TAG,
            format!(
                "round {round} {name} processor: filling {topic} with {} events",
                self.proc_events
            ),
        );
        let mut args: Vec<String> = [
            "--json",
            "kafka",
            "--brokers",
            &self.brokers(kafka),
            "--topic",
            &topic,
            "--partitions",
            &self.partitions.to_string(),
            "--project",
            PROJECT,
            "--event-bytes",
            &self.load.event_bytes.to_string(),
            "--count",
            &self.proc_events.to_string(),
            "--warmup-count",
            "0",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(self.loadgen_flags(kafka, &rig.secrets));
        let fill = loadgen(bin_dir, &args, Path::new(&format!("{stem}-fill.json")))?;
        if number(&fill, "/events_acked") as u64 != self.proc_events {
            bail!("filling {topic}: not every event acknowledged; see {stem}-fill.json");
        }
        std::thread::sleep(Duration::from_secs(2));
        figures.context(
            "load average (1 min) at the phase's start",
            variant,
            round,
            Some(load_average()[0]),
        );
        let tansu = if kafka.secured() {
            rig.secure_tansu
        } else {
            rig.plain_tansu
        };
        let stunnel_log = out.join("stunnel.log");
        let opened_before = tls_connections(&stunnel_log);
        let launched = Instant::now();
        let mut env = self.kafka_env(kafka, &rig.secrets);
        let clickhouse_url = if variant == Variant::SaslSslHttps {
            env.push((
                "SLUICE_CLICKHOUSE_CA_FILE",
                rig.secrets.ca.display().to_string(),
            ));
            format!("https://localhost:{}", self.clickhouse_ports[1])
        } else {
            clickhouse.url()
        };
        env.extend([
            ("SLUICE_LISTEN", format!("{HOST}:{}", self.processor_port)),
            ("SLUICE_KAFKA_EVENTS_TOPIC", topic),
            ("SLUICE_KAFKA_DLQ_TOPIC", format!("proc.{name}.dlq")),
            ("SLUICE_KAFKA_LIVE_TOPIC", format!("proc.{name}.live")),
            ("SLUICE_KAFKA_KEYS_TOPIC", format!("proc.{name}.keys")),
            ("SLUICE_CLICKHOUSE_URL", clickhouse_url),
            ("SLUICE_CLICKHOUSE_DATABASE", db.clone()),
            ("SLUICE_CONSUMER_GROUP", db.clone()),
        ]);
        let processor = rig.processes.service(&ServiceLaunch {
            binary: bin_dir.join("sluice-stream-processor"),
            log: PathBuf::from(format!("{stem}.log")),
            port: self.processor_port,
            port_option: "--processor-port",
            env,
        })?;
        // The span measured runs from readiness to the last row stored; the
        // startup's CPU (TLS handshakes and SASL included) is recorded apart.
        let ch_pid = rig.clickhouse_pid.unwrap_or(0);
        let ready_cpu = cpu_seconds(processor).unwrap_or(0.0);
        let (s0, t0, c0) = (
            cpu_seconds(rig.stunnel).unwrap_or(0.0),
            cpu_seconds(tansu).unwrap_or(0.0),
            cpu_seconds(ch_pid).unwrap_or(0.0),
        );
        let closed_before = tls_connections(&stunnel_log).1;
        let count = format!("SELECT count() FROM {db}.events");
        let ready_stored = clickhouse.count(&count).unwrap_or(0);
        let (mut stored, mut last, mut still) = (0, u64::MAX, 0);
        while stored < self.proc_events {
            std::thread::sleep(Duration::from_millis(250));
            stored = clickhouse.count(&count).unwrap_or(0);
            if stored == last {
                still += 1
            } else {
                (still, last) = (0, stored)
            }
            if still >= 120 {
                bail!(
                    "round {round} {name}: processor stuck at {stored} of {} events for 30 s; see {stem}.log",
                    self.proc_events
                );
            }
        }
        let cpu = cpu_seconds(processor).unwrap_or(0.0);
        let (s1, t1, c1) = (
            cpu_seconds(rig.stunnel).unwrap_or(0.0),
            cpu_seconds(tansu).unwrap_or(0.0),
            cpu_seconds(ch_pid).unwrap_or(0.0),
        );
        let wall = launched.elapsed().as_secs_f64();
        let (opened_after, closed_after) = tls_connections(&stunnel_log);
        let distinct = clickhouse.count(&format!("SELECT count() FROM {db}.events FINAL"))?;
        if distinct != self.proc_events {
            bail!(
                "round {round} {name}: {distinct} distinct events stored, not {}; see {stem}.log",
                self.proc_events
            );
        }
        rig.processes.stop(processor);
        clickhouse.query(&format!("DROP DATABASE IF EXISTS {db}"))?;
        let events = self.proc_events as f64;
        let span = cpu - ready_cpu;
        let secured = kafka.secured();
        let stunnel = s1 - s0;
        let per_million = |seconds: f64| seconds * 1e6 / events;
        figures.processor(
            "events per processor CPU-second (ready to last row stored)",
            variant,
            round,
            Some(events / span),
        );
        figures.processor(
            "events per processor CPU-second, startup included",
            variant,
            round,
            Some(events / cpu),
        );
        figures.processor(
            "drain events/s (wall, processor start to last row stored)",
            variant,
            round,
            Some(events / wall),
        );
        figures.processor(
            "processor CPU s at ready (startup)",
            variant,
            round,
            Some(ready_cpu),
        );
        figures.processor(
            "stunnel CPU s per million events",
            variant,
            round,
            secured.then(|| per_million(stunnel)),
        );
        figures.processor(
            "events per (processor + stunnel) CPU-second",
            variant,
            round,
            Some(events / (span + if secured { stunnel } else { 0.0 })),
        );
        figures.context(
            "processor: TLS connections opened, startup included",
            variant,
            round,
            secured.then_some(opened_after.saturating_sub(opened_before.0) as f64),
        );
        figures.context(
            "processor: TLS connections closed while draining (cut by the broker)",
            variant,
            round,
            secured.then_some(closed_after.saturating_sub(closed_before) as f64),
        );
        figures.processor(
            "tansu CPU s per million events",
            variant,
            round,
            Some(per_million(t1 - t0)),
        );
        figures.processor(
            "ClickHouse CPU s per million events",
            variant,
            round,
            Some(per_million(c1 - c0)),
        );
        figures.context(
            "processor: events already stored at readiness",
            variant,
            round,
            Some(ready_stored as f64),
        );
        figures.context(
            "processor: seconds from its start to the last row stored",
            variant,
            round,
            Some(wall),
        );
        if secured && wall > SASL_SAFE_S {
            log(
                TAG,
                format!(
                    "WARNING: round {round} {name} processor drain took {wall:.1} s (tansu re-authenticates at ~54 s; use a smaller --proc-events)"
                ),
            );
        }
        log(
            TAG,
            format!(
                "round {round} {name} processor: {:.0} events per CPU-s, {:.0} events/s wall, startup CPU {ready_cpu} s, stunnel {stunnel:.2} s",
                events / span,
                events / wall
            ),
        );
        Ok(())
    }
}

/// CPU seconds and counters at one instant of a gateway phase.
struct Sample {
    gateway: f64,
    stunnel: f64,
    tansu: f64,
    accepted: u64,
    connections: (u64, u64),
}

/// Events the gateway has accepted so far (its /metrics counter).
fn gateway_accepted(port: u16) -> u64 {
    let Some((_, metrics)) = http_get(port, "/metrics", Duration::from_secs(10)) else {
        return 0;
    };
    accepted_in(&metrics)
}

/// The sum of `sluice_gateway_events_accepted*` samples in a /metrics text.
pub fn accepted_in(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("sluice_gateway_events_accepted"))
        .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// TLS connections stunnel has accepted, and closed, so far: a connection
/// tansu cuts (re-authentication) shows as one more of each.
fn tls_connections(log: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let opened = text
        .lines()
        .filter(|l| l.contains("accepted connection"))
        .count() as u64;
    let closed = text
        .lines()
        .filter(|l| l.contains("Connection closed") || l.contains("Connection reset"))
        .count() as u64;
    (opened, closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accepted_events_over_every_label() {
        let metrics = "# HELP x\nsluice_gateway_events_accepted_total{project=\"a\"} 10\nsluice_gateway_events_accepted_total{project=\"b\"} 5\nother 7\n";
        assert_eq!(accepted_in(metrics), 15);
    }
}
