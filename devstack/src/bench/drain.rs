//! The processor stage of `bench all`: N processors in one consumer group
//! drain records produced at full speed into ClickHouse, once the group has
//! settled (tansu 0.6.0's memory engine skips and repeats messages when a
//! consumer resumes from a committed offset, which a rebalance in the
//! middle of draining a pre-filled topic causes: a first attempt skipped
//! 2,677 offsets).
//!
//! With `--clickhouse-clusters`, each drain goes into one ClickHouse cluster
//! in cluster mode (docs/scaling.md: one shard against two), and the time
//! the processor spent in ClickHouse inserts is recorded beside the rate.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::all::{PROJECT, Stages, TAG};
use super::processes::{Processes, ServiceLaunch, cpu_seconds, peak_rss_kib};
use super::report::{loadgen, scraped_sum};
use super::{log, unix_seconds};
use crate::settings::HOST;

/// Seconds spent in ClickHouse inserts, every table (a histogram's sum).
const INSERT_SECONDS: &str = "sluice_processor_insert_duration_seconds_sum";

impl Stages<'_> {
    pub(super) fn processor_drain(
        &mut self,
        run: u32,
        instances: u16,
        cluster: Option<&str>,
    ) -> anyhow::Result<()> {
        let b = self.bench;
        let db = format!(
            "bench_proc_{run}_{instances}_{}{}",
            unix_seconds(),
            cluster.map_or(String::new(), |c| format!("_{c}"))
        );
        let (topic, log_stem) = ("proc.events", format!("processor-run{run}-x{instances}"));
        let brokers = format!("{HOST}:{}", b.kafka_port);
        let mut processes = Processes::default();
        processes.tansu(
            b.kafka_port,
            &self.out.join(format!("{log_stem}-tansu.log")),
        )?;
        let mut pids = Vec::new();
        for i in 0..instances {
            let port = b.processor_port + i;
            pids.push(processes.service(&ServiceLaunch {
                binary: self.bin_dir.join("sluice-stream-processor"),
                log: self.out.join(format!("{log_stem}-processor{i}.log")),
                port,
                port_option: "--processor-port",
                env: vec![
                    ("SLUICE_LISTEN", format!("{HOST}:{port}")),
                    ("SLUICE_KAFKA_BROKERS", brokers.clone()),
                    ("SLUICE_KAFKA_EVENTS_TOPIC", topic.into()),
                    ("SLUICE_KAFKA_PARTITIONS", b.partitions.to_string()),
                    ("SLUICE_KAFKA_DLQ_TOPIC", "proc.dlq".into()),
                    ("SLUICE_KAFKA_LIVE_TOPIC", "proc.live".into()),
                    ("SLUICE_KAFKA_KEYS_TOPIC", "proc.keys".into()),
                    ("SLUICE_CLICKHOUSE_URL", self.clickhouse.url()),
                    ("SLUICE_CLICKHOUSE_DATABASE", db.clone()),
                    ("SLUICE_CONSUMER_GROUP", db.clone()),
                    ("SLUICE_ROLLUP_PROPERTIES", b.rollup_properties.clone()),
                    (
                        "SLUICE_CLICKHOUSE_CLUSTER",
                        cluster.unwrap_or_default().into(),
                    ),
                ],
            })?);
        }
        std::thread::sleep(Duration::from_secs(5)); // every instance assigned its partitions
        let cpu = |pids: &[u32]| pids.iter().filter_map(|pid| cpu_seconds(*pid)).sum::<f64>();
        let cpu_before = cpu(&pids);
        let started = Instant::now();
        let args: Vec<String> = [
            "--json",
            "kafka",
            "--brokers",
            &brokers,
            "--topic",
            topic,
            "--no-create-topic",
            "--project",
            PROJECT,
            "--event-bytes",
            "300",
            "--count",
            &b.proc_events.to_string(),
            "--warmup-count",
            "0",
        ]
        .map(str::to_owned)
        .to_vec();
        loadgen(
            self.bin_dir,
            &args,
            &self.out.join(format!("{log_stem}-fill.json")),
        )?;
        // Until every event is stored: count() without FINAL is cheap (part metadata).
        let (mut stored, mut last, mut still) = (0, 0, 0);
        while stored < b.proc_events {
            std::thread::sleep(Duration::from_millis(500));
            stored = self
                .clickhouse
                .count(&format!("SELECT count() FROM {db}.events"))
                .unwrap_or(0);
            if stored == last {
                still += 1
            } else {
                (still, last) = (0, stored)
            }
            if still >= 60 {
                bail!(
                    "processor stage: stuck at {stored} of {} events for 30 s; logs in {}",
                    b.proc_events,
                    self.out.display()
                );
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let each: Vec<String> = pids
            .iter()
            .map(|pid| cpu_seconds(*pid).map_or("?".into(), |s| s.to_string()))
            .collect();
        log(
            TAG,
            format!(
                "processor: CPU seconds of each instance since start: {}",
                each.join(" ")
            ),
        );
        let cpu_used = cpu(&pids) - cpu_before;
        let insert_seconds: f64 = (0..instances)
            .map(|i| scraped_sum(b.processor_port + i, INSERT_SECONDS).unwrap_or(f64::NAN))
            .sum();
        let rss = pids
            .iter()
            .filter_map(|pid| peak_rss_kib(*pid))
            .fold(0.0, f64::max);
        let distinct = self
            .clickhouse
            .count(&format!("SELECT count() FROM {db}.events FINAL"))?;
        if distinct != b.proc_events {
            bail!(
                "processor stage: {distinct} distinct events stored, not {}; logs in {}",
                b.proc_events,
                self.out.display()
            );
        }
        processes.stop_all();
        let on_cluster = cluster.map_or(String::new(), |c| format!(" ON CLUSTER {c}"));
        self.clickhouse
            .query(&format!("DROP DATABASE IF EXISTS {db}{on_cluster}"))?;
        let events = b.proc_events as f64;
        let into = cluster.map_or(String::new(), |c| format!(" into {c}"));
        let f = &mut self.figures;
        f.record(
            "processor",
            format!("{instances} processor(s){into}: fill and drain, wall"),
            "events/s",
            run,
            events / wall,
        );
        f.record(
            "processor",
            format!("{instances} processor(s){into}: events per processor CPU-second"),
            "events/CPU-s",
            run,
            events / cpu_used,
        );
        f.record(
            "processor",
            format!(
                "{instances} processor(s){into}: share of the drain spent in ClickHouse inserts"
            ),
            "ratio",
            run,
            insert_seconds / wall / f64::from(instances),
        );
        f.record(
            "memory",
            format!("processor peak RSS ({instances} instance(s), largest)"),
            "MiB",
            run,
            rss / 1024.0,
        );
        Ok(())
    }
}
