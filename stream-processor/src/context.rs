//! The consumer's librdkafka callbacks: partitions given or taken away by a
//! rebalance.

use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

use crate::coverage::HeldPartitions;

pub struct ProcessorContext {
    /// Partitions revoked since the processing loop last looked.
    revoked: Arc<Mutex<Vec<i32>>>,
    /// What this processor holds now, for the coverage watch.
    held: HeldPartitions,
}

impl ProcessorContext {
    pub fn new(held: HeldPartitions) -> Self {
        Self {
            revoked: Arc::default(),
            held,
        }
    }

    pub fn take_revoked(&self) -> Vec<i32> {
        self.revoked
            .lock()
            .map(|mut partitions| std::mem::take(&mut *partitions))
            .unwrap_or_default()
    }
}

fn partitions(list: &rdkafka::TopicPartitionList) -> impl Iterator<Item = i32> + '_ {
    list.elements().into_iter().map(|p| p.partition())
}

impl ClientContext for ProcessorContext {}

impl ConsumerContext for ProcessorContext {
    /// Runs inside the consumer's poll, so it only notes the partitions: the
    /// loop drops their state. Nothing has to be flushed first, because the
    /// next owner resumes from the last checkpoint and rebuilds the same rows.
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.held.remove(partitions(list));
            if let Ok(mut revoked) = self.revoked.lock() {
                revoked.extend(partitions(list));
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.held.add(partitions(list));
        }
    }
}
