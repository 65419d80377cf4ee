//! Publishing events to the events topic, and waiting for the broker's acks.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use sluice_runtime::kafka::{apply_properties, producer_config};
use sluice_runtime::settings::KafkaSettings;
use sluice_runtime::telemetry;
use sluice_runtime::trace_context::TraceParent;
use sluice_schemas::EventRef;
use sluice_schemas::avro::encode_event_into;
use tracing::Instrument;

use crate::acks::{EventAck, RequestAcks};
use crate::config::IngestSettings;
use crate::metrics::GatewayMetrics;
use crate::producer_callbacks::{BrokerContact, ProducerCallbacks};

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
    producer: ThreadedProducer<ProducerCallbacks>,
    topic: String,
    contact: Arc<BrokerContact>,
    /// The longest a request waits for its acks: librdkafka's message
    /// timeout, plus a margin for its once-a-second timeout scan.
    answer_within: Duration,
}

/// What librdkafka may add to `message.timeout.ms` before it reports.
const TIMEOUT_SCAN_MARGIN: Duration = Duration::from_secs(1);

impl EventPublisher {
    pub fn new(
        kafka: &KafkaSettings,
        ingest: &IngestSettings,
        metrics: &GatewayMetrics,
    ) -> anyhow::Result<Self> {
        let contact = Arc::new(BrokerContact::default());
        let context = ProducerCallbacks::new(metrics.clone(), contact.clone());
        let mut config = producer_config(kafka)?;
        config
            .set("compression.type", &ingest.compression)
            // 5 ms, librdkafka's own default (and Kafka's since 4.0). With
            // less, librdkafka's broker thread spins while the five requests
            // idempotence allows per partition are in flight: 1 ms cost a
            // third more CPU per event at peak, 10 to 20% fewer events/s
            // and no better p99 at half of peak (BENCHMARKS.md).
            .set("linger.ms", "5")
            // Kafka's own (Java) partitioner, also kafka-python's and
            // KafkaJS's: a direct producer keying an event `project/event_id`
            // lands it where the gateway does, so dedup (partition-local)
            // sees both copies. librdkafka's default hashes keys with CRC32.
            .set("partitioner", "murmur2_random")
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
            contact,
            answer_within: ingest.produce_timeout() + TIMEOUT_SCAN_MARGIN,
        })
    }

    /// Hands every event to the producer, then waits for each one's ack.
    /// Stops handing over at the first refusal (a full queue), but still
    /// waits for the events already handed over, so the answer says exactly
    /// which events the broker has.
    ///
    /// While spans are exported this runs in a `publish` span of the
    /// request's trace, and every message carries that span in a
    /// `traceparent` header, for the processor's spans to continue.
    pub async fn publish_all(&self, events: &[EventRef<'_>]) -> Result<(), PublishFailure> {
        if !telemetry::exporting() {
            return self.publish(events, None).await;
        }
        let span = tracing::info_span!("publish", topic = %self.topic, events = events.len());
        // Made once per request; each message gets a copy (librdkafka owns
        // its headers).
        let trace = TraceParent::of(&span).map(|parent| parent.kafka_headers());
        self.publish(events, trace.as_ref()).instrument(span).await
    }

    async fn publish(
        &self,
        events: &[EventRef<'_>],
        trace: Option<&OwnedHeaders>,
    ) -> Result<(), PublishFailure> {
        // Encoded first, so that the events go to librdkafka in one quick
        // run and leave in few produce requests.
        let encoded = EncodedRequest::new(events);
        let acks = Arc::new(RequestAcks::new(events.len()));
        let mut refused = None;
        for (index, ((key, value), event)) in encoded.records().zip(events).enumerate() {
            let ack = Box::new(EventAck {
                request: acks.clone(),
                index,
            });
            // The record's timestamp is when the gateway received the event
            // (librdkafka would otherwise read the clock once per message).
            let mut record = BaseRecord::with_opaque_to(&self.topic, ack)
                .key(key)
                .payload(value)
                .timestamp(event.received_at_ms);
            if let Some(trace) = trace {
                record = record.headers(trace.clone());
            }
            if let Err((error, _)) = self.producer.send(record) {
                refused = Some(match error {
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                        PublishError::QueueFull
                    }
                    error => PublishError::NotAcknowledged(error),
                });
                acks.give_up(events.len() - index);
                break;
            }
        }
        // Bounded even if a report is late: the client then hears 503 for the
        // events not acknowledged yet, and a retry of one that lands after
        // all counts once (by event_id).
        if tokio::time::timeout(self.answer_within, acks.settled())
            .await
            .is_err()
        {
            refused.get_or_insert(PublishError::NotAcknowledged(
                KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
            ));
        }
        let error = refused.or_else(|| acks.first_error().map(PublishError::NotAcknowledged));
        match error {
            None => Ok(()),
            Some(error) => Err(PublishFailure {
                acknowledged: acks.acknowledged(),
                error,
            }),
        }
    }

    /// Whether the broker answers a metadata request for the events topic
    /// (blocking, up to `timeout`), and if not, why.
    pub fn broker_answers(&self, timeout: Duration) -> Result<(), String> {
        self.producer
            .client()
            .fetch_metadata(Some(&self.topic), timeout)
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// What the broker answered the producer, counted.
    pub fn contact(&self) -> &BrokerContact {
        &self.contact
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

/// A request's keys and values, each kind in one buffer (librdkafka copies
/// them when they are handed over).
struct EncodedRequest {
    keys: String,
    values: Vec<u8>,
    /// Per event: where its key and its value end.
    ends: Vec<(usize, usize)>,
}

impl EncodedRequest {
    fn new(events: &[EventRef<'_>]) -> Self {
        let mut encoded = Self {
            keys: String::with_capacity(events.len() * 48),
            values: Vec::with_capacity(events.len() * 384),
            ends: Vec::with_capacity(events.len()),
        };
        for event in events {
            event.write_partition_key(&mut encoded.keys);
            encode_event_into(event, &mut encoded.values);
            encoded
                .ends
                .push((encoded.keys.len(), encoded.values.len()));
        }
        encoded
    }

    /// Each event's key and value, in order.
    fn records(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let starts = std::iter::once((0, 0)).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|((key_start, value_start), &(key_end, value_end))| {
                (
                    &self.keys[key_start..key_end],
                    &self.values[value_start..value_end],
                )
            })
    }
}

/// Shared so handlers and shutdown hold the same producer.
pub type SharedPublisher = Arc<EventPublisher>;
