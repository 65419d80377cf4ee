//! Publishing events to the events topic, and waiting for the broker's ack.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sluice_runtime::kafka::client_config;
use sluice_runtime::settings::KafkaSettings;
use sluice_schemas::Event;
use sluice_schemas::avro::encode_event;

use crate::config::IngestSettings;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The local producer queue is full: back-pressure, not failure.
    #[error("producer queue is full")]
    QueueFull,
    #[error("broker did not acknowledge: {0}")]
    NotAcknowledged(KafkaError),
}

/// An idempotent, `acks=all` producer for the events topic.
pub struct EventPublisher {
    producer: FutureProducer,
    topic: String,
}

impl EventPublisher {
    pub fn new(kafka: &KafkaSettings, ingest: &IngestSettings) -> anyhow::Result<Self> {
        let producer = client_config(kafka)?
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", &ingest.compression)
            .set("linger.ms", "2")
            .set("message.timeout.ms", ingest.produce_timeout_ms.to_string())
            .create()?;
        Ok(Self {
            producer,
            topic: kafka.events_topic.clone(),
        })
    }

    /// Resolves once the broker has acknowledged the event (acks=all).
    pub async fn publish(&self, event: &Event) -> Result<(), PublishError> {
        let key = event.partition_key();
        let value = encode_event(event);
        let record = FutureRecord::to(&self.topic).key(&key).payload(&value);
        let delivery = match self.producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                return Err(PublishError::QueueFull);
            }
            Err((error, _)) => return Err(PublishError::NotAcknowledged(error)),
        };
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((error, _))) => Err(PublishError::NotAcknowledged(error)),
            Err(_canceled) => Err(PublishError::NotAcknowledged(KafkaError::Canceled)),
        }
    }

    /// Waits for every queued event to be acknowledged, up to `timeout`.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::error!(cause = %error, "events still unacknowledged at shutdown");
        }
    }
}
