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
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sluice_runtime::kafka::{KAFKA_CHECK, ensure_keys_topic, ensure_topics};
use sluice_runtime::ops::{Patience, Readiness};
use sluice_runtime::settings::KafkaSettings;
use sluice_schemas::time_format::now_ms;
use tokio_util::sync::CancellationToken;

use crate::publish::EventPublisher;

/// How often readiness looks.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Acks this recent prove the broker works.
const RECENT_MS: i64 = 5_000;
/// Failures (of deliveries, or of metadata requests while quiet) for this
/// long fail readiness.
const FAILING_FOR_MS: i64 = 5_000;

/// When the producer last heard from the broker, kept by its delivery
/// reports (two atomic stores per event).
#[derive(Debug, Default)]
pub struct BrokerContact {
    last_ack_ms: AtomicI64,
    /// Since when deliveries fail with no ack between; 0 when they do not.
    failing_since_ms: AtomicI64,
}

impl BrokerContact {
    pub fn acknowledged(&self) {
        self.last_ack_ms.store(now_ms(), Ordering::Relaxed);
        self.failing_since_ms.store(0, Ordering::Relaxed);
    }

    pub fn refused(&self) {
        let _ = self.failing_since_ms.compare_exchange(
            0,
            now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    fn snapshot(&self) -> (i64, i64) {
        (
            self.last_ack_ms.load(Ordering::Relaxed),
            self.failing_since_ms.load(Ordering::Relaxed),
        )
    }
}

/// What the deliveries alone say at `now`.
#[derive(Debug, PartialEq, Eq)]
enum Deliveries {
    /// Acked recently: ready.
    Flowing,
    /// Failing for long enough: not ready, for this many milliseconds.
    Failing(i64),
    /// Nothing recent either way: ask the broker.
    Quiet,
}

fn judge_deliveries(last_ack_ms: i64, failing_since_ms: i64, now: i64) -> Deliveries {
    if failing_since_ms > 0 && now - failing_since_ms >= FAILING_FOR_MS {
        Deliveries::Failing(now - failing_since_ms)
    } else if last_ack_ms > 0 && now - last_ack_ms < RECENT_MS {
        Deliveries::Flowing
    } else {
        Deliveries::Quiet
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
    let mut probe_failing_since: Option<i64> = None;
    loop {
        let (last_ack_ms, failing_since_ms) = publisher.contact().snapshot();
        let now = now_ms();
        match judge_deliveries(last_ack_ms, failing_since_ms, now) {
            Deliveries::Flowing => {
                probe_failing_since = None;
                readiness.pass(KAFKA_CHECK);
            }
            Deliveries::Failing(for_ms) => readiness.fail(
                KAFKA_CHECK,
                format!(
                    "the broker at {} (--kafka-brokers) has not acknowledged events for {} s",
                    kafka.brokers,
                    for_ms / 1000
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
                        if now - since >= FAILING_FOR_MS {
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

    #[test]
    fn deliveries_decide_before_any_probe() {
        let now = 1_000_000;
        assert_eq!(judge_deliveries(0, 0, now), Deliveries::Quiet);
        assert_eq!(judge_deliveries(now - 100, 0, now), Deliveries::Flowing);
        assert_eq!(judge_deliveries(now - RECENT_MS, 0, now), Deliveries::Quiet);
        // Failing, but not for long: an ack before still counts.
        assert_eq!(
            judge_deliveries(now - 1_000, now - 500, now),
            Deliveries::Flowing
        );
        assert_eq!(
            judge_deliveries(now - 9_000, now - 6_000, now),
            Deliveries::Failing(6_000)
        );
    }

    #[test]
    fn an_ack_ends_a_failing_spell() {
        let contact = BrokerContact::default();
        contact.refused();
        let (_, first) = contact.snapshot();
        assert!(first > 0);
        contact.refused();
        assert_eq!(contact.snapshot().1, first, "the spell keeps its start");
        contact.acknowledged();
        let (acked, failing) = contact.snapshot();
        assert!(acked >= first);
        assert_eq!(failing, 0);
    }
}
