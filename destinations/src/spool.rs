//! Deliveries parked in Kafka: the retry topic (waiting for a later
//! attempt) and the dead-letter topic (no attempt left). A write resolves
//! only once the broker has it (`acks=all`), and is retried until it does
//! or the service stops, since the delivery's source offset is committed
//! only after it.

use std::time::Duration;

use anyhow::Context;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_runtime::kafka::producer_config;
use sluice_runtime::settings::KafkaSettings;
use tokio_util::sync::CancellationToken;

use crate::delivery::Delivery;

/// The header of a dead letter that says why it is one.
pub const HEADER_REASON: &str = "sluice.delivery.reason";

#[derive(Clone)]
pub struct Spool {
    producer: FutureProducer,
    retry_topic: String,
    dead_letter_topic: String,
    shutdown: CancellationToken,
}

impl Spool {
    pub fn new(
        settings: &KafkaSettings,
        retry_topic: &str,
        dead_letter_topic: &str,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let producer = producer_config(settings)?
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5")
            .create()
            .context("cannot create the destinations' Kafka producer")?;
        Ok(Self {
            producer,
            retry_topic: retry_topic.to_owned(),
            dead_letter_topic: dead_letter_topic.to_owned(),
            shutdown,
        })
    }

    /// Writes `delivery` to the retry topic; `false` when the service stopped first.
    pub async fn park(&self, delivery: &Delivery) -> bool {
        self.write(&self.retry_topic, delivery, None).await
    }

    /// Writes `delivery` to the dead-letter topic with `reason`.
    pub async fn bury(&self, delivery: &Delivery, reason: &str) -> bool {
        self.write(&self.dead_letter_topic, delivery, Some(reason))
            .await
    }

    async fn write(&self, topic: &str, delivery: &Delivery, reason: Option<&str>) -> bool {
        let value = serde_json::to_vec(delivery).expect("a delivery serializes");
        loop {
            let mut record = FutureRecord::to(topic)
                .key(&delivery.delivery_id)
                .payload(&value);
            if let Some(reason) = reason {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: HEADER_REASON,
                    value: Some(reason),
                }));
            }
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => return true,
                Err((error, _)) => {
                    tracing::warn!(cause = %error, topic, delivery_id = %delivery.delivery_id, "cannot park a delivery; retrying");
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return false,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}
