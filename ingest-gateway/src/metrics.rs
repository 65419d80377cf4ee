//! The gateway's own metrics, beside the shared HTTP ones.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const EVENTS_ACCEPTED: &str = "sluice_gateway_events_accepted";
pub const EVENTS_REJECTED: &str = "sluice_gateway_events_rejected";
pub const PRODUCE_LATENCY: &str = "sluice_gateway_produce_duration_seconds";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub reason: &'static str,
}

#[derive(Clone)]
pub struct GatewayMetrics {
    pub accepted: Counter,
    pub rejected: Family<RejectLabels, Counter>,
    pub produce_latency: Histogram,
}

impl GatewayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            accepted: Counter::default(),
            rejected: Family::default(),
            produce_latency: Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
        };
        registry.register(
            EVENTS_ACCEPTED,
            "Events acknowledged by the broker",
            metrics.accepted.clone(),
        );
        registry.register(
            EVENTS_REJECTED,
            "Events refused, by reason",
            metrics.rejected.clone(),
        );
        registry.register(
            PRODUCE_LATENCY,
            "Time from handing an event to the producer to the broker's ack",
            metrics.produce_latency.clone(),
        );
        metrics
    }

    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&RejectLabels { reason }).inc();
    }
}
