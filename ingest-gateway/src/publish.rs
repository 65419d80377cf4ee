//! Publishing events to the events topic, and waiting for the broker's acks.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sluice_runtime::kafka::{apply_properties, client_config};
use sluice_runtime::settings::KafkaSettings;
use sluice_schemas::Event;
use sluice_schemas::avro::encode_event;

use crate::config::IngestSettings;
use crate::metrics::{GatewayMetrics, ProducerStats};

#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The local producer queue is full: back-pressure, not failure.
    #[error("producer queue is full")]
    QueueFull,
    #[error("broker did not acknowledge: {0}")]
    NotAcknowledged(KafkaError),
}

/// Some events of a request were not acknowledged.
#[derive(Debug)]
pub struct PublishFailure {
    /// Per event of the request: whether the broker has it.
    pub acknowledged: Vec<bool>,
    /// Why the others are not.
    pub error: PublishError,
}

/// An idempotent, `acks=all` producer for the events topic.
pub struct EventPublisher {
    producer: FutureProducer<ProducerStats>,
    topic: String,
}

impl EventPublisher {
    pub fn new(
        kafka: &KafkaSettings,
        ingest: &IngestSettings,
        metrics: &GatewayMetrics,
    ) -> anyhow::Result<Self> {
        let context = ProducerStats::new(metrics.clone());
        let mut config = client_config(kafka)?;
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", &ingest.compression)
            // Requests wait for the broker anyway, and batches form while
            // earlier ones are in flight: measured against 2 ms, lower p99
            // and more events/s (BENCHMARKS.md).
            .set("linger.ms", "0")
            .set("batch.num.messages", "10000")
            .set(
                "queue.buffering.max.messages",
                ingest.producer_queue_messages.to_string(),
            )
            .set("message.timeout.ms", ingest.produce_timeout_ms.to_string())
            .set("statistics.interval.ms", "1000");
        // The operator's properties win (e.g. linger.ms, or SASL settings).
        apply_properties(&mut config, kafka)?;
        let producer = config.create_with_context(context)?;
        Ok(Self {
            producer,
            topic: kafka.events_topic.clone(),
        })
    }

    /// Hands every event to the producer, then waits for each one's ack.
    /// Stops handing over at the first refusal (a full queue), but still
    /// waits for the events already handed over, so the answer says exactly
    /// which events the broker has.
    pub async fn publish_all(&self, events: &[Event]) -> Result<(), PublishFailure> {
        let mut deliveries = Vec::with_capacity(events.len());
        let mut refused = None;
        for event in events {
            let key = event.partition_key();
            let value = encode_event(event);
            let record = FutureRecord::to(&self.topic).key(&key).payload(&value);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    refused = Some(PublishError::QueueFull);
                    break;
                }
                Err((error, _)) => {
                    refused = Some(PublishError::NotAcknowledged(error));
                    break;
                }
            }
        }
        let mut acknowledged = vec![false; events.len()];
        let mut error = refused;
        for (slot, outcome) in acknowledged.iter_mut().zip(join_all(deliveries).await) {
            match outcome {
                Ok(Ok(_)) => *slot = true,
                Ok(Err((cause, _))) => {
                    error.get_or_insert(PublishError::NotAcknowledged(cause));
                }
                Err(_canceled) => {
                    error.get_or_insert(PublishError::NotAcknowledged(KafkaError::Canceled));
                }
            }
        }
        match error {
            None => Ok(()),
            Some(error) => Err(PublishFailure {
                acknowledged,
                error,
            }),
        }
    }

    /// Whether the broker answers a metadata request for the events topic
    /// (blocking, up to `timeout`).
    pub fn broker_answers(&self, timeout: Duration) -> bool {
        self.producer
            .client()
            .fetch_metadata(Some(&self.topic), timeout)
            .is_ok()
    }

    /// Messages waiting for the broker's ack.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits for every queued event to be acknowledged, up to `timeout`.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::error!(cause = %error, in_flight = self.in_flight(), "events still unacknowledged at shutdown");
        }
    }
}

/// Shared so handlers and shutdown hold the same producer.
pub type SharedPublisher = Arc<EventPublisher>;
