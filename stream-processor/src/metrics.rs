//! The processor's metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const EVENTS_WRITTEN: &str = "sluice_processor_events_written";
pub const DEAD_LETTERS: &str = "sluice_processor_dead_letters";
pub const INSERT_ROWS: &str = "sluice_processor_insert_rows";
pub const INSERT_LATENCY: &str = "sluice_processor_insert_duration_seconds";
pub const INSERT_FAILURES: &str = "sluice_processor_insert_failures";

#[derive(Clone)]
pub struct ProcessorMetrics {
    pub events_written: Counter,
    pub dead_letters: Counter,
    pub insert_rows: Histogram,
    pub insert_latency: Histogram,
    pub insert_failures: Counter,
}

impl ProcessorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            events_written: Counter::default(),
            dead_letters: Counter::default(),
            insert_rows: Histogram::new([1.0, 10.0, 100.0, 1_000.0, 10_000.0, 50_000.0, 100_000.0]),
            insert_latency: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            insert_failures: Counter::default(),
        };
        registry.register(
            EVENTS_WRITTEN,
            "Events inserted into ClickHouse (replays included)",
            metrics.events_written.clone(),
        );
        registry.register(
            DEAD_LETTERS,
            "Messages sent to the dead-letter topic",
            metrics.dead_letters.clone(),
        );
        registry.register(
            INSERT_ROWS,
            "Rows per ClickHouse insert",
            metrics.insert_rows.clone(),
        );
        registry.register(
            INSERT_LATENCY,
            "Duration of one ClickHouse insert",
            metrics.insert_latency.clone(),
        );
        registry.register(
            INSERT_FAILURES,
            "ClickHouse inserts that failed and were retried",
            metrics.insert_failures.clone(),
        );
        metrics
    }

    /// One successful insert of `rows` rows that took `took`.
    pub fn record_insert(&self, rows: usize, took: std::time::Duration) {
        self.insert_latency.observe(took.as_secs_f64());
        self.insert_rows.observe(rows as f64);
        self.events_written.inc_by(rows as u64);
    }
}
