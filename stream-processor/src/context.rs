//! The consumer's librdkafka callbacks: lag per partition from the client's
//! statistics, and partitions given or taken away by a rebalance.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Statistics};

use crate::metrics::{PartitionLabel, ProcessorMetrics};

pub struct ProcessorContext {
    topic: String,
    metrics: ProcessorMetrics,
    /// Partitions revoked since the processing loop last looked.
    revoked: Arc<Mutex<Vec<i32>>>,
    /// Partitions assigned since the processing loop last looked.
    assigned: Arc<Mutex<Vec<i32>>>,
}

impl ProcessorContext {
    pub fn new(topic: &str, metrics: ProcessorMetrics) -> Self {
        Self {
            topic: topic.to_owned(),
            metrics,
            revoked: Arc::default(),
            assigned: Arc::default(),
        }
    }

    pub fn take_revoked(&self) -> Vec<i32> {
        take(&self.revoked)
    }

    pub fn take_assigned(&self) -> Vec<i32> {
        take(&self.assigned)
    }
}

fn take(partitions: &Mutex<Vec<i32>>) -> Vec<i32> {
    partitions
        .lock()
        .map(|mut partitions| std::mem::take(&mut *partitions))
        .unwrap_or_default()
}

fn note(partitions: &Mutex<Vec<i32>>, list: &rdkafka::TopicPartitionList) {
    if let Ok(mut partitions) = partitions.lock() {
        partitions.extend(list.elements().iter().map(|p| p.partition()));
    }
}

impl ClientContext for ProcessorContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (partition, stats) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition.
            if *partition >= 0 && stats.consumer_lag >= 0 {
                self.metrics
                    .consumer_lag
                    .get_or_create(&PartitionLabel {
                        partition: *partition,
                    })
                    .set(stats.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for ProcessorContext {
    /// Runs inside the consumer's poll, so it only notes the partitions: the
    /// loop drops their state. Nothing has to be flushed first, because the
    /// next owner resumes from the last checkpoint and rebuilds the same rows.
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            note(&self.revoked, partitions);
        }
    }

    /// Notes the new partitions, whose state the loop loads at once: a
    /// partition with no message left still has windows to close.
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            note(&self.assigned, partitions);
        }
    }
}
