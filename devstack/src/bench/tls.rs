//! `sluice-dev bench tls`: what TLS and SASL to the broker cost: the gateway's peak and the processor's CPU
//! per event with the broker plaintext against SASL_SSL (SCRAM-SHA-512),
//! alternating in one run (A B A B ...), as ratios.
//!
//! Two private tansu 0.6.0 brokers, both with the sqlite engine so that
//! only security differs: plaintext, and `--authentication` (a SCRAM user
//! made before authentication is turned on) behind stunnel4, which serves
//! TLS with a certificate from a throwaway CA (tansu 0.6.0 cannot serve
//! TLS itself). A private ClickHouse 18.16 with HTTP and HTTPS, its config
//! from [`crate::clickhouse_config`]. Each round, each variant in turn:
//!
//! - gateway: a fresh gateway under closed-loop HTTP batches: events/s,
//!   and the gateway's, stunnel's and tansu's CPU per million events the
//!   gateway accepted (its /metrics counter);
//! - processor: `--proc-events` records produced into a fresh topic, then
//!   a fresh processor drains it into ClickHouse: events per processor
//!   CPU-second from readiness to the last row (startup apart), the drain
//!   rate, stunnel's, tansu's and ClickHouse's CPU per million events; a
//!   third variant adds HTTPS to ClickHouse (unless `--no-clickhouse-https`).
//!
//! tansu drops SASL connections about 54 s after they authenticate, so a
//! secured phase should end within 45 s of its service's start; the run
//! warns when one did not.

use std::path::Path;

use anyhow::bail;

use super::tls_phases::Turn;
use super::tls_rig::{Secrets, certificates};
pub use super::tls_settings::TlsBench;
use super::tls_settings::{SCRAM_USER, STACK_PORTS, TAG};
use super::tls_table::{Figures, Variant};
use super::{commit, first_line_of, load_average, log, run_dir, utc_stamp};
use crate::settings::HOST;

impl TlsBench {
    fn stage_on(&self, stage: &str) -> bool {
        self.stages.split_whitespace().any(|word| word == stage)
    }

    fn ports(&self) -> Vec<u16> {
        let mut ports = vec![
            self.plain_port,
            self.tls_port,
            self.secure_broker_port,
            self.gateway_port,
            self.processor_port,
        ];
        ports.extend(&self.clickhouse_ports);
        ports
    }

    pub fn run(&self, repo: &Path, command: &str) -> anyhow::Result<()> {
        if let Some(port) = self
            .ports()
            .into_iter()
            .find(|port| STACK_PORTS.contains(port))
        {
            bail!("port {port} belongs to the test stack; choose another");
        }
        for tool in ["tansu", "stunnel4", "openssl"] {
            if crate::find_on_path(tool).is_none() {
                bail!("{tool} is needed (deploy/install.sh; apt-get install stunnel4 openssl)");
            }
        }
        let packages = [
            "sluice-ingest-gateway",
            "sluice-stream-processor",
            "sluice-loadgen",
        ];
        let bin_dir = self.binaries.prepare(repo, &packages, &[], &packages)?;
        let out = run_dir(repo, "tls-")?;
        let work = out.join("work");
        std::fs::create_dir_all(&work)?;
        let started_at = utc_stamp();
        let load_start = load_average();
        let result = self.rounds_in(&bin_dir, &out, &work);
        // Certificates, broker and ClickHouse data: kept only when the run
        // failed, for the servers' logs.
        match &result {
            Ok(_) => {
                let _ = std::fs::remove_dir_all(&work);
            }
            Err(_) => log(TAG, format!("kept {} for its logs", work.display())),
        }
        let figures = result?;
        let context = self.context(repo, &bin_dir, &out, &started_at, load_start, command);
        std::fs::write(out.join("context.txt"), &context)?;
        let table = format!("{}\n{context}", figures.markdown(!self.no_clickhouse_https));
        std::fs::write(out.join("table.md"), &table)?;
        let rounds = figures.per_round();
        std::fs::write(out.join("rounds.txt"), &rounds)?;
        println!("\nPer round (in order):\n{rounds}\n\n{table}");
        log(TAG, format!("results and logs in {}", out.display()));
        Ok(())
    }

    fn rounds_in(&self, bin_dir: &Path, out: &Path, work: &Path) -> anyhow::Result<Figures> {
        let secrets = certificates(work, out)?;
        let mut rig = self.start_brokers(secrets, work, out)?;
        if self.stage_on("processor") {
            self.start_clickhouse(&mut rig, work, out)?;
        }
        let session = std::fs::read_to_string(out.join("tls-session.txt")).unwrap_or_default();
        log(
            TAG,
            format!("TLS session with stunnel: {}", session.replace('\n', " ")),
        );
        let mut figures = Figures::default();
        let mut turns = Vec::new();
        if self.stage_on("gateway") {
            turns.extend([Variant::Plain, Variant::SaslSsl].map(|v| ("gateway", v)));
        }
        if self.stage_on("processor") {
            turns.extend([Variant::Plain, Variant::SaslSsl].map(|v| ("processor", v)));
            if !self.no_clickhouse_https {
                turns.push(("processor", Variant::SaslSslHttps));
            }
        }
        for round in 1..=self.rounds {
            for (stage, variant) in &turns {
                let rounds = self.rounds;
                log(
                    TAG,
                    format!("round {round}/{rounds}: {stage}, {}", variant.name()),
                );
                let figures = &mut figures;
                let turn = Turn {
                    round,
                    variant: *variant,
                    bin_dir,
                    out,
                    figures,
                };
                match *stage {
                    "gateway" => self.gateway_phase(&mut rig, turn)?,
                    _ => self.processor_phase(&mut rig, turn)?,
                }
            }
        }
        Ok(figures)
    }

    /// The Kafka settings of a variant, as SLUICE_* for the services.
    /// Idempotence is off: tansu 0.6.0 breaks on an idempotent producer
    /// that reconnects, and tansu cuts SASL connections after about 54 s.
    pub(super) fn kafka_env(
        &self,
        variant: Variant,
        secrets: &Secrets,
    ) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("SLUICE_KAFKA_BROKERS", self.brokers(variant)),
            ("SLUICE_KAFKA_IDEMPOTENCE", "false".into()),
            ("SLUICE_KAFKA_PARTITIONS", self.partitions.to_string()),
        ];
        if variant.secured() {
            env.extend([
                ("SLUICE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl".into()),
                ("SLUICE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".into()),
                ("SLUICE_KAFKA_SASL_USERNAME", SCRAM_USER.into()),
                (
                    "SLUICE_KAFKA_SASL_PASSWORD_FILE",
                    secrets.password_file.display().to_string(),
                ),
                ("SLUICE_KAFKA_SSL_CA_FILE", secrets.ca.display().to_string()),
            ]);
        }
        env
    }

    /// The same settings as the load generator's flags.
    pub(super) fn loadgen_flags(&self, variant: Variant, secrets: &Secrets) -> Vec<String> {
        let mut flags = vec!["--kafka-idempotence".to_owned(), "false".into()];
        if variant.secured() {
            flags.extend(
                [
                    "--kafka-security-protocol",
                    "sasl_ssl",
                    "--kafka-sasl-mechanism",
                    "SCRAM-SHA-512",
                    "--kafka-sasl-username",
                    SCRAM_USER,
                ]
                .map(str::to_owned),
            );
            flags.extend([
                "--kafka-sasl-password-file".into(),
                secrets.password_file.display().to_string(),
                "--kafka-ssl-ca-file".into(),
                secrets.ca.display().to_string(),
            ]);
        }
        flags
    }

    pub(super) fn brokers(&self, variant: Variant) -> String {
        let port = if variant.secured() {
            self.tls_port
        } else {
            self.plain_port
        };
        format!("{HOST}:{port}")
    }

    fn context(
        &self,
        repo: &Path,
        bin_dir: &Path,
        out: &Path,
        started_at: &str,
        load_start: [f64; 3],
        command: &str,
    ) -> String {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let [a, b, c] = load_start;
        let [x, y, z] = load_average();
        let tansu = first_line_of("tansu", &["--version"]);
        let stunnel = first_line_of("stunnel4", &["-version"]);
        let session = std::fs::read_to_string(out.join("tls-session.txt")).unwrap_or_default();
        let tls = session
            .lines()
            .find(|line| line.starts_with("New"))
            .unwrap_or("unknown");
        format!(
            "Run {started_at} to {}, checkout at commit {} when it started,\ncommand `{command}`; binaries from {}; {} rounds, variants alternating;\nmedians with (min to max) over the rounds. {cores} cores; load average at the start {a} {b} {c},\nat the end {x} {y} {z}. {tansu} (sqlite engine) for both\nvariants, {stunnel} in front of the SASL_SSL one;\nTLS: {tls}.\nGateway: {} s closed loop after {} s warm-up, {} connections, batches of {}\nevents of {} bytes. Processor: {} events per phase, {} partitions.\n",
            utc_stamp(),
            commit(repo),
            bin_dir.display(),
            self.rounds,
            self.duration,
            self.load.warmup,
            self.load.connections,
            self.load.batch,
            self.load.event_bytes,
            self.proc_events,
            self.partitions,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_the_stacks_ports() {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: TlsBench,
        }
        let bench = <Cli as clap::Parser>::parse_from(["tls", "--plain-port", "9092"]).bench;
        let error = bench
            .run(Path::new("/nonexistent"), "x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("9092"), "{error}");
    }
}
