//! The service's metrics, per destination (labelled by webhook id, a label
//! bounded by the number of webhooks).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const MATCHES: &str = "sluice_destination_matches";
pub const DELIVERIES: &str = "sluice_destination_deliveries";
pub const ATTEMPTS: &str = "sluice_destination_attempts";
pub const LATENCY: &str = "sluice_destination_request_duration_seconds";
pub const END_TO_END: &str = "sluice_destination_end_to_end_seconds";
pub const QUEUE_DEPTH: &str = "sluice_destination_queue_depth";
pub const CIRCUIT_STATE: &str = "sluice_destination_circuit_state";
pub const PARKED: &str = "sluice_destination_parked";
pub const SCHEDULED_RETRIES: &str = "sluice_destination_scheduled_retries";
pub const UNSETTLED: &str = "sluice_destination_unsettled_deliveries";
pub const BATCH_SIZE: &str = "sluice_destination_batch_events";
pub const LOG_ROWS_DROPPED: &str = "sluice_destination_log_rows_dropped";
pub const ASSIGNED: &str = "sluice_destination_assigned_partitions";
pub const DESTINATIONS: &str = "sluice_destination_active_destinations";

/// Every outcome and park reason, to drop a webhook's series.
const OUTCOMES: [&str; 4] = ["delivered", "retrying", "dead", "refused"];
const PARK_REASONS: [&str; 3] = ["retry", "queue_full", "circuit_open"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabel {
    pub webhook_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub webhook_id: String,
    /// `delivered`, `retrying`, `dead` (last attempt failed) or `refused` (4xx).
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ParkLabels {
    pub webhook_id: String,
    /// `retry` (after a failed attempt), `queue_full`, `circuit_open`.
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabel {
    /// `events` or `retries`.
    pub consumer: &'static str,
}

#[derive(Clone)]
pub struct DestinationMetrics {
    pub matches: Family<WebhookLabel, Counter>,
    pub deliveries: Family<OutcomeLabels, Counter>,
    pub attempts: Family<WebhookLabel, Counter>,
    pub latency: Family<WebhookLabel, Histogram>,
    pub end_to_end: Family<WebhookLabel, Histogram>,
    pub batch_size: Family<WebhookLabel, Histogram>,
    pub queue_depth: Family<WebhookLabel, Gauge>,
    pub circuit_state: Family<WebhookLabel, Gauge>,
    pub parked: Family<ParkLabels, Counter>,
    pub scheduled_retries: Gauge,
    pub unsettled: Gauge,
    pub log_rows_dropped: Counter,
    pub assigned: Family<ConsumerLabel, Gauge>,
    pub destinations: Gauge,
}

impl DestinationMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let seconds = || {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ])
        };
        let metrics = Self {
            matches: Family::default(),
            deliveries: Family::default(),
            attempts: Family::default(),
            latency: Family::new_with_constructor(seconds),
            end_to_end: Family::new_with_constructor(seconds),
            batch_size: Family::new_with_constructor(|| {
                Histogram::new([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0])
            }),
            queue_depth: Family::default(),
            circuit_state: Family::default(),
            parked: Family::default(),
            scheduled_retries: Gauge::default(),
            unsettled: Gauge::default(),
            log_rows_dropped: Counter::default(),
            assigned: Family::default(),
            destinations: Gauge::default(),
        };
        registry.register(
            MATCHES,
            "Events matched by a webhook's rules",
            metrics.matches.clone(),
        );
        registry.register(
            DELIVERIES,
            "Events attempted, by outcome: delivered, retrying, dead (after the last attempt), refused (4xx); a batch counts its events",
            metrics.deliveries.clone(),
        );
        registry.register(ATTEMPTS, "HTTP attempts made", metrics.attempts.clone());
        registry.register(
            LATENCY,
            "Time to the receiver's answer",
            metrics.latency.clone(),
        );
        registry.register(
            END_TO_END,
            "From the event's acceptance by the gateway to its delivery",
            metrics.end_to_end.clone(),
        );
        registry.register(
            BATCH_SIZE,
            "Events per batch formed (webhooks in batch mode)",
            metrics.batch_size.clone(),
        );
        registry.register(
            QUEUE_DEPTH,
            "Deliveries queued in memory (a batch counts its events)",
            metrics.queue_depth.clone(),
        );
        registry.register(
            CIRCUIT_STATE,
            "Circuit breaker: 0 closed, 1 open, 2 half-open",
            metrics.circuit_state.clone(),
        );
        registry.register(
            PARKED,
            "Deliveries written to the retry topic, by reason",
            metrics.parked.clone(),
        );
        registry.register(
            SCHEDULED_RETRIES,
            "Deliveries read from the retry topic, waiting until due (a batch counts its events)",
            metrics.scheduled_retries.clone(),
        );
        registry.register(
            UNSETTLED,
            "Deliveries whose source offset cannot be committed yet",
            metrics.unsettled.clone(),
        );
        registry.register(
            LOG_ROWS_DROPPED,
            "Deliveries-log rows dropped because ClickHouse fell behind",
            metrics.log_rows_dropped.clone(),
        );
        registry.register(
            ASSIGNED,
            "Partitions this instance holds, per consumer: events, retries",
            metrics.assigned.clone(),
        );
        registry.register(
            DESTINATIONS,
            "Webhooks with a queue and workers in memory (deleted and disabled ones are dropped once idle)",
            metrics.destinations.clone(),
        );
        metrics
    }

    /// Drops every series of a webhook that was deleted or disabled.
    pub fn forget(&self, webhook_id: &str) {
        let label = Self::webhook(webhook_id);
        for family in [&self.matches, &self.attempts] {
            family.remove(&label);
        }
        for family in [&self.latency, &self.end_to_end, &self.batch_size] {
            family.remove(&label);
        }
        for family in [&self.queue_depth, &self.circuit_state] {
            family.remove(&label);
        }
        for outcome in OUTCOMES {
            self.deliveries.remove(&OutcomeLabels {
                webhook_id: webhook_id.to_owned(),
                outcome,
            });
        }
        for reason in PARK_REASONS {
            self.parked.remove(&ParkLabels {
                webhook_id: webhook_id.to_owned(),
                reason,
            });
        }
    }

    /// The gauge of the partitions `consumer` holds.
    pub fn assigned(&self, consumer: &'static str) -> Gauge {
        self.assigned
            .get_or_create(&ConsumerLabel { consumer })
            .clone()
    }

    pub fn webhook(webhook_id: &str) -> WebhookLabel {
        WebhookLabel {
            webhook_id: webhook_id.to_owned(),
        }
    }
}
