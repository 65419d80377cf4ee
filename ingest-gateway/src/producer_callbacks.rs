//! The producer's callbacks: librdkafka's statistics into the gateway's
//! gauges every second, and each delivery report into its request's acks
//! ([`crate::acks`]) and the broker's contact counts ([`BrokerContact`],
//! which readiness reads in [`crate::broker`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, Statistics};

use crate::acks::EventAck;
use crate::metrics::GatewayMetrics;

/// What the broker answered the producer, counted by its delivery reports:
/// one atomic add per event, no clock on the hot path; readiness turns the
/// counts into times when it looks.
#[derive(Debug, Default)]
pub struct BrokerContact {
    acknowledged: AtomicU64,
    refused: AtomicU64,
}

impl BrokerContact {
    pub fn acknowledged(&self) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.acknowledged.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// The producer's context: librdkafka statistics into metrics, every second,
/// and delivery reports into each request's acks ([`crate::acks`]).
pub struct ProducerCallbacks {
    metrics: GatewayMetrics,
    /// What the broker answered, counted for readiness ([`crate::broker`]).
    pub(crate) contact: Arc<BrokerContact>,
}

impl ProducerCallbacks {
    pub fn new(metrics: GatewayMetrics, contact: Arc<BrokerContact>) -> Self {
        Self { metrics, contact }
    }
}

impl ClientContext for ProducerCallbacks {
    fn stats(&self, statistics: Statistics) {
        let m = &self.metrics;
        m.queue_messages
            .set(i64::try_from(statistics.msg_cnt).unwrap_or(i64::MAX));
        m.queue_bytes
            .set(i64::try_from(statistics.msg_size).unwrap_or(i64::MAX));
        let brokers: Vec<_> = statistics.brokers.values().collect();
        let up = brokers.iter().filter(|b| b.state == "UP").count();
        m.brokers_up.set(i64::try_from(up).unwrap_or(i64::MAX));
        let rtts: Vec<i64> = brokers
            .iter()
            .filter_map(|b| b.rtt.as_ref())
            .map(|w| w.avg)
            .collect();
        if !rtts.is_empty() {
            m.broker_rtt
                .set(rtts.iter().sum::<i64>() / i64::try_from(rtts.len()).unwrap_or(1));
        }
        let errors: u64 = brokers.iter().map(|b| b.txerrs).sum();
        m.tx_errors.set(i64::try_from(errors).unwrap_or(i64::MAX));
    }
}

impl ProducerContext for ProducerCallbacks {
    type DeliveryOpaque = Box<EventAck>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.contact.acknowledged(),
            Err(_) => self.contact.refused(),
        }
        ack.request
            .record(ack.index, result.as_ref().map(|_| ()).map_err(|(e, _)| e));
    }
}
