//! Live window updates on the live topic (format: `sluice_schemas::rollup::live`).
//!
//! Best effort by design: the numbers that count are in ClickHouse. A full
//! producer queue or an unreachable broker skips an update rather than slow
//! the pipeline; the next change of the window sends a newer one.

use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_schemas::rollup::LiveUpdate;

use crate::metrics::ProcessorMetrics;
use crate::windows::Partial;

pub struct LivePublisher {
    producer: FutureProducer,
    /// Empty when live updates are off.
    topic: String,
    /// Updates waiting for the next tick; a window is queued at most once per
    /// tick (changed while open, or final when closed), which is what limits
    /// it to one update per interval.
    queued: Vec<LiveUpdate>,
    metrics: ProcessorMetrics,
}

impl LivePublisher {
    pub fn new(producer: FutureProducer, topic: &str, metrics: ProcessorMetrics) -> Self {
        Self {
            producer,
            topic: topic.to_owned(),
            queued: Vec::new(),
            metrics,
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.topic.is_empty()
    }

    /// Queues the final update of a window that just closed.
    pub fn closed(&mut self, partial: &Partial, partition: i32) {
        if self.is_enabled() {
            self.queued.push(update(partial, partition, true));
        }
    }

    /// Queues the update of an open window that changed.
    pub fn changed(&mut self, partial: &Partial, partition: i32) {
        self.queued.push(update(partial, partition, false));
    }

    /// Publishes what is queued.
    pub fn send_queued(&mut self) {
        for message in std::mem::take(&mut self.queued) {
            let Ok(payload) = serde_json::to_vec(&message) else {
                continue;
            };
            let record = FutureRecord::to(&self.topic)
                .key(&message.project_id)
                .payload(&payload);
            // The delivery report is not awaited: see the module docs.
            if self.producer.send_result(record).is_ok() {
                self.metrics.live_updates.inc();
            }
        }
    }
}

fn update(partial: &Partial, partition: i32, is_final: bool) -> LiveUpdate {
    LiveUpdate::new(
        &partial.key,
        &partial.aggregate,
        u32::try_from(partition).unwrap_or(0),
        partial.seq,
        is_final,
    )
}
