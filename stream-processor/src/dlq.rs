//! The dead-letter topic: where unreadable messages go, with the reason and
//! their origin in headers, so nothing is dropped silently and nothing stalls.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::decode::MessageAt;

pub const HEADER_ERROR: &str = "sluice.error";
pub const HEADER_TOPIC: &str = "sluice.source.topic";
pub const HEADER_PARTITION: &str = "sluice.source.partition";
pub const HEADER_OFFSET: &str = "sluice.source.offset";

pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetters {
    /// `producer` must wait for every replica (`acks=all`).
    pub fn new(producer: FutureProducer, topic: &str) -> Self {
        Self {
            producer,
            topic: topic.to_owned(),
        }
    }

    /// Copies the message to the dead-letter topic and waits for the ack, so
    /// the source offset may be committed afterwards.
    pub async fn send(
        &self,
        at: MessageAt<'_>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        reason: &str,
    ) -> anyhow::Result<()> {
        let partition = at.partition.to_string();
        let offset = at.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: HEADER_ERROR,
                value: Some(reason),
            })
            .insert(Header {
                key: HEADER_TOPIC,
                value: Some(at.topic),
            })
            .insert(Header {
                key: HEADER_PARTITION,
                value: Some(&partition),
            })
            .insert(Header {
                key: HEADER_OFFSET,
                value: Some(&offset),
            });
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.producer
            .send(record, Timeout::Never)
            .await
            .map_err(|(error, _)| {
                anyhow::anyhow!("dead-letter topic refused the message: {error}")
            })?;
        Ok(())
    }
}
