//! The processor's metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const EVENTS_PROCESSED: &str = "sluice_processor_events_processed";
pub const EVENTS_WRITTEN: &str = "sluice_processor_events_written";
pub const DEAD_LETTERS: &str = "sluice_processor_dead_letters";
pub const LATE_EVENTS: &str = "sluice_processor_late_events";
pub const DUPLICATE_EVENTS: &str = "sluice_processor_duplicate_events";
pub const ROLLUP_ROWS: &str = "sluice_processor_rollup_rows";
pub const LIVE_UPDATES: &str = "sluice_processor_live_updates";
pub const INSERT_ROWS: &str = "sluice_processor_insert_rows";
pub const INSERT_LATENCY: &str = "sluice_processor_insert_duration_seconds";
pub const INSERT_FAILURES: &str = "sluice_processor_insert_failures";
pub const CONSUMER_LAG: &str = "sluice_processor_consumer_lag";
pub const WATERMARK_DELAY: &str = "sluice_processor_watermark_delay_seconds";
pub const OPEN_WINDOWS: &str = "sluice_processor_open_windows";
pub const ASSIGNED_PARTITIONS: &str = "sluice_processor_assigned_partitions";
pub const REJOINS: &str = "sluice_processor_group_rejoins";
pub const HALTED_PARTITIONS: &str = "sluice_processor_halted_partitions";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub partition: i32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    pub table: &'static str,
}

#[derive(Clone)]
pub struct ProcessorMetrics {
    pub events_processed: Counter,
    pub events_written: Counter,
    pub dead_letters: Counter,
    pub late_events: Counter,
    pub duplicate_events: Counter,
    pub rollup_rows: Counter,
    pub live_updates: Counter,
    pub insert_rows: Family<TableLabel, Histogram>,
    pub insert_latency: Family<TableLabel, Histogram>,
    pub insert_failures: Counter,
    pub consumer_lag: Family<PartitionLabel, Gauge>,
    pub watermark_delay: Family<PartitionLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub open_windows: Gauge,
    pub assigned_partitions: Gauge,
    pub rejoins: Counter,
    pub halted_partitions: Gauge,
}

impl ProcessorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            events_processed: Counter::default(),
            events_written: Counter::default(),
            dead_letters: Counter::default(),
            late_events: Counter::default(),
            duplicate_events: Counter::default(),
            rollup_rows: Counter::default(),
            live_updates: Counter::default(),
            insert_rows: Family::new_with_constructor(|| {
                Histogram::new([1.0, 10.0, 100.0, 1_000.0, 10_000.0, 50_000.0, 100_000.0])
            }),
            insert_latency: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
            insert_failures: Counter::default(),
            consumer_lag: Family::default(),
            watermark_delay: Family::default(),
            open_windows: Gauge::default(),
            assigned_partitions: Gauge::default(),
            rejoins: Counter::default(),
            halted_partitions: Gauge::default(),
        };
        let counters = [
            (
                EVENTS_PROCESSED,
                "Events decoded and windowed (replays included); its rate is events/s",
                &metrics.events_processed,
            ),
            (
                EVENTS_WRITTEN,
                "Events inserted into ClickHouse (replays included)",
                &metrics.events_written,
            ),
            (
                DEAD_LETTERS,
                "Messages sent to the dead-letter topic",
                &metrics.dead_letters,
            ),
            (
                LATE_EVENTS,
                "Events that arrived after their window closed, counted as corrections",
                &metrics.late_events,
            ),
            (
                DUPLICATE_EVENTS,
                "Repeated event_ids within the dedup horizon, counted once",
                &metrics.duplicate_events,
            ),
            (
                ROLLUP_ROWS,
                "Rollup rows (closed windows and corrections) inserted",
                &metrics.rollup_rows,
            ),
            (
                LIVE_UPDATES,
                "Window updates published to the live topic",
                &metrics.live_updates,
            ),
            (
                REJOINS,
                "Times this processor left the consumer group and joined again because it held less than its share",
                &metrics.rejoins,
            ),
            (
                INSERT_FAILURES,
                "ClickHouse inserts that failed and were retried",
                &metrics.insert_failures,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            INSERT_ROWS,
            "Rows per ClickHouse insert, by table",
            metrics.insert_rows.clone(),
        );
        registry.register(
            INSERT_LATENCY,
            "Duration of one ClickHouse insert, by table",
            metrics.insert_latency.clone(),
        );
        registry.register(
            CONSUMER_LAG,
            "Messages of the partition the group has not committed yet (end minus committed offset), for every partition of the topic, whoever holds it",
            metrics.consumer_lag.clone(),
        );
        registry.register(
            WATERMARK_DELAY,
            "Wall clock minus the partition's watermark",
            metrics.watermark_delay.clone(),
        );
        registry.register(
            OPEN_WINDOWS,
            "Open windows held in memory",
            metrics.open_windows.clone(),
        );
        registry.register(
            ASSIGNED_PARTITIONS,
            "Partitions of the events topic this processor holds",
            metrics.assigned_partitions.clone(),
        );
        registry.register(
            HALTED_PARTITIONS,
            "Partitions halted because the broker's offsets fell below the checkpoint (data loss on the broker)",
            metrics.halted_partitions.clone(),
        );
        metrics
    }

    /// One successful insert of `rows` rows into `table` that took `took`.
    pub fn record_insert(&self, table: &'static str, rows: usize, took: std::time::Duration) {
        let label = TableLabel { table };
        self.insert_latency
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        self.insert_rows.get_or_create(&label).observe(rows as f64);
        match table {
            "events" => self.events_written.inc_by(rows as u64),
            "rollups" => self.rollup_rows.inc_by(rows as u64),
            _ => 0,
        };
    }
}
