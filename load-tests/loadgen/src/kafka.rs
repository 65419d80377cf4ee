//! The baseline: a bare rdkafka producer sending the records the gateway
//! would send (same key, same Avro value, same producer settings), with no
//! HTTP in between. The gateway's throughput is judged against this ceiling.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde_json::{Value, json};

use crate::events::Template;
use crate::stats::{Latencies, round};

/// One pre-built record; key and value both carry the event id.
#[derive(Debug, Clone)]
pub struct RecordTemplate {
    pub key: Template,
    pub value: Template,
}

#[derive(Debug, Clone)]
pub struct KafkaLoad {
    pub brokers: String,
    pub topic: String,
    /// Partitions of the topic, when this tool creates it.
    pub partitions: i32,
    pub create_topic: bool,
    /// Stop after this many measured records...
    pub count: Option<u64>,
    /// ...or after this long.
    pub duration: Option<Duration>,
    /// Unmeasured records sent (and acknowledged) first.
    pub warmup_count: u64,
    pub linger_ms: u64,
    pub compression: String,
    pub message_timeout_ms: u64,
    /// Extra librdkafka `key=value` properties.
    pub properties: Vec<String>,
}

/// Marks warm-up records, whose acknowledgements are not measured.
const WARMUP: usize = usize::MAX;

/// Counts acknowledgements as librdkafka reports them (on its polling thread).
struct AckCounter {
    start: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    /// Latest acknowledgement, µs after `start`.
    last_ack_us: AtomicU64,
    latency: Mutex<Latencies>,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for AckCounter {}

impl ProducerContext for AckCounter {
    /// When the record was handed to librdkafka, µs after `start`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        if sent_us == WARMUP {
            return;
        }
        let now_us = micros_since(self.start);
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.last_ack_us.fetch_max(now_us, Ordering::Relaxed);
                let latency = Duration::from_micros(now_us.saturating_sub(sent_us as u64));
                if let Ok(mut histogram) = self.latency.lock() {
                    histogram.record(latency);
                }
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn client_config(load: &KafkaLoad) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &load.brokers);
    for property in load.properties.iter().filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = property.split_once('=') else {
            bail!("Kafka property {property:?} is not key=value");
        };
        config.set(key.trim(), value.trim());
    }
    Ok(config)
}

/// Creates the topic unless it exists.
pub async fn create_topic(load: &KafkaLoad) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(load)?
        .create()
        .context("cannot create the Kafka admin client")?;
    let topic = NewTopic::new(&load.topic, load.partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .with_context(|| format!("cannot create topic {} on {}", load.topic, load.brokers))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// What the producer measured.
#[derive(Debug)]
pub struct KafkaOutcome {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    /// From the first measured send to the last acknowledgement.
    pub window: Duration,
    pub latency: Latencies,
}

/// Produces the records with the gateway's settings (acks=all, idempotence,
/// linger, compression) and waits for every acknowledgement. Blocking: run
/// it off any async reactor.
pub fn produce(load: &KafkaLoad, records: &[RecordTemplate]) -> anyhow::Result<KafkaOutcome> {
    if load.count.is_none() && load.duration.is_none() {
        bail!("give --count or --duration");
    }
    let counter = AckCounter {
        start: Instant::now(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_ack_us: AtomicU64::new(0),
        latency: Mutex::new(Latencies::default()),
        first_error: Mutex::new(None),
    };
    let producer: ThreadedProducer<AckCounter> = client_config(load)?
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", &load.compression)
        .set("linger.ms", load.linger_ms.to_string())
        .set("message.timeout.ms", load.message_timeout_ms.to_string())
        .create_with_context(counter)
        .context("cannot create the Kafka producer")?;
    let flush_timeout = Duration::from_millis(load.message_timeout_ms) + Duration::from_secs(5);

    let mut seq = 0u64;
    for _ in 0..load.warmup_count {
        send(
            &producer,
            load,
            &records[seq as usize % records.len()],
            seq,
            WARMUP,
        )?;
        seq += 1;
    }
    producer
        .flush(flush_timeout)
        .context("warm-up records were not acknowledged")?;

    let counter = producer.context();
    let measure_from = Instant::now();
    let from_us = micros_since(counter.start);
    let deadline = load.duration.map(|duration| measure_from + duration);
    let mut sent = 0u64;
    loop {
        if load.count.is_some_and(|count| sent >= count) {
            break;
        }
        // Reading the clock on every record would cost more than the check is worth.
        if sent.is_multiple_of(256) && deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        let sent_us = micros_since(counter.start) as usize;
        send(
            &producer,
            load,
            &records[seq as usize % records.len()],
            seq,
            sent_us,
        )?;
        seq += 1;
        sent += 1;
    }
    producer
        .flush(flush_timeout)
        .context("records still unacknowledged after the message timeout")?;

    let acked = counter.acked.load(Ordering::Relaxed);
    let last_ack_us = counter.last_ack_us.load(Ordering::Relaxed);
    let latency = counter
        .latency
        .lock()
        .map(|histogram| histogram.clone())
        .unwrap_or_default();
    let first_error = counter.first_error.lock().ok().and_then(|e| e.clone());
    Ok(KafkaOutcome {
        sent,
        acked,
        failed: counter.failed.load(Ordering::Relaxed),
        first_error,
        window: Duration::from_micros(last_ack_us.saturating_sub(from_us)),
        latency,
    })
}

/// Hands one record to librdkafka, waiting while its queue is full.
fn send(
    producer: &ThreadedProducer<AckCounter>,
    load: &KafkaLoad,
    template: &RecordTemplate,
    seq: u64,
    opaque: usize,
) -> anyhow::Result<()> {
    let key = template.key.stamp(seq);
    let value = template.value.stamp(seq);
    let mut record = BaseRecord::with_opaque_to(&load.topic, opaque)
        .key(&key)
        .payload(&value);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((error, _)) => return Err(error).context("cannot produce"),
        }
    }
}

/// The run's result as one JSON object.
pub fn report(load: &KafkaLoad, outcome: &KafkaOutcome, key_bytes: f64, value_bytes: f64) -> Value {
    let seconds = outcome.window.as_secs_f64().max(1e-9);
    json!({
        "mode": "kafka",
        "brokers": load.brokers,
        "topic": load.topic,
        "linger_ms": load.linger_ms,
        "compression": load.compression,
        "key_bytes": round(key_bytes, 1),
        "value_bytes": round(value_bytes, 1),
        "seconds": round(seconds, 3),
        "sent": outcome.sent,
        "events_acked": outcome.acked,
        "failed": outcome.failed,
        "first_error": outcome.first_error,
        "events_per_s": round(outcome.acked as f64 / seconds, 1),
        "ack_latency_ms": outcome.latency.summary(),
    })
}
