//! The settings of `sluice-dev bench tls` ([`super::tls`]) and the names
//! its phases and its rig share.

use super::{Binaries, PeakLoad};

pub(super) const TAG: &str = "bench-tls";
pub(super) const SCRAM_USER: &str = "sluice-bench";
/// The longest a secured phase may last from its service's start before
/// tansu's re-authentication cut (about 54 s) could fall inside it.
pub(super) const SASL_SAFE_S: f64 = 45.0;
/// The shared stack's ports, never used here.
pub(super) const STACK_PORTS: [u16; 5] = [9092, 8123, 8124, 9000, 9009];

#[derive(Debug, Clone, clap::Args)]
pub struct TlsBench {
    /// Rounds; each runs every variant once, in turn.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Of: gateway processor.
    #[arg(long, default_value = "gateway processor")]
    pub stages: String,
    /// Measured seconds of the gateway's peak phase.
    #[arg(long, default_value_t = 15.0)]
    pub duration: f64,
    #[command(flatten)]
    pub load: PeakLoad,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Events the processor drains per phase (keep a secured drain under 45 s).
    #[arg(long, default_value_t = 500_000)]
    pub proc_events: u64,
    /// Skip the processor variant with HTTPS to ClickHouse.
    #[arg(long)]
    pub no_clickhouse_https: bool,
    #[command(flatten)]
    pub binaries: Binaries,
    /// Plaintext broker.
    #[arg(long, default_value_t = 19292)]
    pub plain_port: u16,
    /// stunnel, the SASL_SSL broker's address.
    #[arg(long, default_value_t = 19293)]
    pub tls_port: u16,
    /// tansu behind stunnel.
    #[arg(long, default_value_t = 19294)]
    pub secure_broker_port: u16,
    /// Gateway.
    #[arg(long, default_value_t = 18280)]
    pub gateway_port: u16,
    /// Processor.
    #[arg(long, default_value_t = 18282)]
    pub processor_port: u16,
    /// ClickHouse HTTP, HTTPS and native ports.
    #[arg(long, num_args = 3, value_names = ["HTTP", "HTTPS", "TCP"], default_values_t = [18423, 18443, 19400])]
    pub clickhouse_ports: Vec<u16>,
}
