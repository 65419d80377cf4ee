//! Sluice's load generator, for the ingest benchmarks in `BENCHMARKS.md`.
//!
//! Two modes send the same seeded events: `http` drives the ingest gateway
//! (closed loop for peak throughput, open loop at a fixed rate for latency),
//! and `kafka` is a bare rdkafka producer writing the records the gateway
//! would write, to measure the ceiling the gateway is compared against.
//! `e2e` sends through the gateway and watches ClickHouse: freshness and an
//! exact count.
//!
//! - [`events`]: seeded events of a target size, and pre-built payloads.
//! - [`payloads`]: the HTTP bodies and Kafka records, built before the timed part.
//! - [`schedule`]: the open-loop arrival schedule.
//! - [`http`]: the HTTP load and its report.
//! - [`kafka`]: the bare producer, topic creation and its report.
//! - [`e2e`]: end-to-end freshness (gateway ack to visible in ClickHouse).
//! - [`stats`]: counters, latency histograms, printing.
//! - [`otlp_sink`]: a stand-in OTLP/HTTP collector for the tracing benchmark.
//! - [`webhook_sink`]: a stand-in webhook receiver for the destinations
//!   benchmark: deliveries per second and latency from the send.

pub mod e2e;
pub mod events;
pub mod http;
pub mod kafka;
pub mod otlp_sink;
pub mod payloads;
pub mod schedule;
pub mod stats;
pub mod webhook_sink;
