//! The broker as the gateway sees it: the topics made once it answers (the
//! gateway serves meanwhile, answering 503), and a `kafka` readiness check
//! that follows the broker without flapping under load.
//!
//! Readiness judges by the producer's own deliveries first: acks in the last
//! few seconds prove the broker works, however long a metadata request waits
//! behind a backlog; deliveries failing for a few seconds with no ack between
//! prove it does not, even while it answers metadata. Only a quiet producer
//! asks the broker for metadata.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_runtime::kafka::{KAFKA_CHECK, ensure_keys_topic, ensure_topics};
use sluice_runtime::ops::{Patience, Readiness};
use sluice_runtime::settings::KafkaSettings;
use tokio_util::sync::CancellationToken;

use crate::publish::EventPublisher;

/// How often readiness looks.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Acks this recent prove the broker works.
const RECENT: Duration = Duration::from_secs(5);
/// Failures (of deliveries, or of metadata requests while quiet) for this
/// long fail readiness.
const FAILING_FOR: Duration = Duration::from_secs(5);

/// What the deliveries alone say.
#[derive(Debug, PartialEq, Eq)]
enum Deliveries {
    /// Acked recently: ready.
    Flowing,
    /// Refused, with no ack between, for this long: not ready.
    Failing(Duration),
    /// Nothing recent either way: ask the broker.
    Quiet,
}

/// Successive looks at the counts: when an ack was last seen, and since
/// when deliveries have been refused with no ack between.
#[derive(Debug, Default)]
struct DeliveryJudge {
    seen: (u64, u64),
    last_ack: Option<Instant>,
    refused_since: Option<Instant>,
}

impl DeliveryJudge {
    fn look(&mut self, (acknowledged, refused): (u64, u64), now: Instant) -> Deliveries {
        if acknowledged > self.seen.0 {
            self.last_ack = Some(now);
            self.refused_since = None;
        } else if refused > self.seen.1 {
            self.refused_since.get_or_insert(now);
        }
        self.seen = (acknowledged, refused);
        match (self.refused_since, self.last_ack) {
            (Some(since), _) if now - since >= FAILING_FOR => Deliveries::Failing(now - since),
            (_, Some(acked)) if now - acked < RECENT => Deliveries::Flowing,
            _ => Deliveries::Quiet,
        }
    }
}

/// Makes the topics (retrying, with readiness saying why, until the broker
/// answers), then keeps the `kafka` check true while the broker takes events.
/// Returns an error when the broker refuses the gateway's credentials or TLS
/// (a misconfiguration: the gateway stops, naming the setting), or at
/// shutdown before the topics were made.
pub async fn watch(
    publisher: Arc<EventPublisher>,
    kafka: KafkaSettings,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let patience = Patience::Reporting(readiness.clone(), KAFKA_CHECK);
    let topics = [kafka.events_topic.as_str(), kafka.dlq_topic.as_str()];
    ensure_topics(&kafka, &topics, patience.clone(), &shutdown).await?;
    ensure_keys_topic(&kafka, patience, &shutdown).await?;
    tracing::info!(brokers = %kafka.brokers, "broker answered; topics ready");
    let mut deliveries = DeliveryJudge::default();
    let mut probe_failing_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        match deliveries.look(publisher.contact().counts(), now) {
            Deliveries::Flowing => {
                probe_failing_since = None;
                readiness.pass(KAFKA_CHECK);
            }
            Deliveries::Failing(for_how_long) => readiness.fail(
                KAFKA_CHECK,
                format!(
                    "the broker at {} (--kafka-brokers) has not acknowledged events for {} s",
                    kafka.brokers,
                    for_how_long.as_secs()
                ),
            ),
            Deliveries::Quiet => {
                let probe = publisher.clone();
                let answer =
                    tokio::task::spawn_blocking(move || probe.broker_answers(CHECK_INTERVAL))
                        .await
                        .unwrap_or_else(|error| Err(error.to_string()));
                match answer {
                    Ok(()) => {
                        probe_failing_since = None;
                        readiness.pass(KAFKA_CHECK);
                    }
                    Err(cause) => {
                        let since = *probe_failing_since.get_or_insert(now);
                        if now - since >= FAILING_FOR {
                            readiness.fail(
                                KAFKA_CHECK,
                                format!(
                                    "the broker at {} (--kafka-brokers) does not answer: {cause}",
                                    kafka.brokers
                                ),
                            );
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer_callbacks::BrokerContact;

    #[test]
    fn deliveries_decide_before_any_probe() {
        let mut judge = DeliveryJudge::default();
        let t0 = Instant::now();
        let at = |seconds: u64| t0 + Duration::from_secs(seconds);
        assert_eq!(judge.look((0, 0), t0), Deliveries::Quiet);
        assert_eq!(judge.look((10, 0), at(2)), Deliveries::Flowing);
        // No news for a while: quiet again, time to ask the broker.
        assert_eq!(judge.look((10, 0), at(6)), Deliveries::Flowing);
        assert_eq!(judge.look((10, 0), at(7)), Deliveries::Quiet);
        // Refusals: not ready only once they have lasted.
        assert_eq!(judge.look((10, 3), at(8)), Deliveries::Quiet);
        assert_eq!(judge.look((10, 9), at(12)), Deliveries::Quiet);
        assert_eq!(
            judge.look((10, 9), at(13)),
            Deliveries::Failing(Duration::from_secs(5))
        );
        // One ack ends the spell.
        assert_eq!(judge.look((11, 12), at(14)), Deliveries::Flowing);
        assert_eq!(judge.look((11, 13), at(16)), Deliveries::Flowing);
    }

    #[test]
    fn the_contact_counts_each_report() {
        let contact = BrokerContact::default();
        contact.acknowledged();
        contact.refused();
        contact.acknowledged();
        assert_eq!(contact.counts(), (2, 1));
    }
}
