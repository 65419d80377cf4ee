//! The gateway's own metrics, beside the shared HTTP ones (librdkafka's
//! statistics are turned into its gauges by [`crate::producer_callbacks`]).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const EVENTS_ACCEPTED: &str = "sluice_gateway_events_accepted";
pub const EVENTS_REJECTED: &str = "sluice_gateway_events_rejected";
pub const REQUESTS_REJECTED: &str = "sluice_gateway_requests_rejected";
pub const BATCH_EVENTS: &str = "sluice_gateway_batch_events";
pub const PRODUCE_LATENCY: &str = "sluice_gateway_produce_duration_seconds";
pub const RATE_LIMITED: &str = "sluice_gateway_rate_limited_requests";
pub const PRODUCER_QUEUE_MESSAGES: &str = "sluice_gateway_producer_queue_messages";
pub const PRODUCER_QUEUE_BYTES: &str = "sluice_gateway_producer_queue_bytes";
pub const KAFKA_BROKERS_UP: &str = "sluice_gateway_kafka_brokers_up";
pub const KAFKA_RTT: &str = "sluice_gateway_kafka_broker_rtt_microseconds";
pub const KAFKA_TX_ERRORS: &str = "sluice_gateway_kafka_tx_errors";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: &'static str,
}

#[derive(Clone)]
pub struct GatewayMetrics {
    pub accepted: Counter,
    pub rejected: Family<ReasonLabels, Counter>,
    pub requests_rejected: Family<ReasonLabels, Counter>,
    pub batch_events: Histogram,
    pub produce_latency: Histogram,
    pub rate_limited: Family<LimitLabels, Counter>,
    pub queue_messages: Gauge,
    pub queue_bytes: Gauge,
    pub brokers_up: Gauge,
    pub broker_rtt: Gauge,
    pub tx_errors: Gauge,
}

impl GatewayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            accepted: Counter::default(),
            rejected: Family::default(),
            requests_rejected: Family::default(),
            batch_events: Histogram::new([
                1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0,
            ]),
            produce_latency: Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            rate_limited: Family::default(),
            queue_messages: Gauge::default(),
            queue_bytes: Gauge::default(),
            brokers_up: Gauge::default(),
            broker_rtt: Gauge::default(),
            tx_errors: Gauge::default(),
        };
        // Every limit's series exists from the start, at 0, so rates and
        // alerts over it work before the first refusal.
        for limit in crate::rate_limit::LIMITS {
            let _ = metrics.rate_limited.get_or_create(&LimitLabels { limit });
        }
        let r = registry;
        r.register(
            EVENTS_ACCEPTED,
            "Events acknowledged by the broker",
            metrics.accepted.clone(),
        );
        r.register(
            EVENTS_REJECTED,
            "Events refused, by reason",
            metrics.rejected.clone(),
        );
        r.register(
            REQUESTS_REJECTED,
            "Requests refused as a whole (auth, size, JSON, rate limit, unavailable), by reason",
            metrics.requests_rejected.clone(),
        );
        r.register(
            BATCH_EVENTS,
            "Events per ingest request",
            metrics.batch_events.clone(),
        );
        r.register(
            PRODUCE_LATENCY,
            "Time from handing a request's events to the producer to the broker's last ack",
            metrics.produce_latency.clone(),
        );
        r.register(
            RATE_LIMITED,
            "Requests refused by a rate limit, by limit",
            metrics.rate_limited.clone(),
        );
        r.register(
            PRODUCER_QUEUE_MESSAGES,
            "Messages in the producer waiting for the broker's ack (librdkafka msg_cnt)",
            metrics.queue_messages.clone(),
        );
        r.register(
            PRODUCER_QUEUE_BYTES,
            "Bytes of messages in the producer (librdkafka msg_size)",
            metrics.queue_bytes.clone(),
        );
        r.register(
            KAFKA_BROKERS_UP,
            "Broker connections of the producer that are up (bootstrap ones included)",
            metrics.brokers_up.clone(),
        );
        r.register(
            KAFKA_RTT,
            "Mean broker round trip, over brokers (librdkafka rtt.avg)",
            metrics.broker_rtt.clone(),
        );
        r.register(
            KAFKA_TX_ERRORS,
            "Transmission errors since start, over brokers",
            metrics.tx_errors.clone(),
        );
        metrics
    }

    pub fn reject(&self, reason: &'static str, events: u64) {
        self.rejected
            .get_or_create(&ReasonLabels { reason })
            .inc_by(events);
    }

    pub fn request_rejected(&self, reason: &'static str) {
        self.requests_rejected
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }
}
