//! The baseline: a bare rdkafka producer sending the records the gateway
//! would send (same key, same Avro value, same producer settings), with no
//! HTTP in between. The gateway's throughput is judged against this ceiling.
//!
//! With a [`GroupPace`] it runs an open loop instead: groups of records (one
//! HTTP request's worth) due on a fixed schedule, each group's latency from
//! its due time to the ack of its last record. That is the latency floor a
//! gateway cannot beat at the same rate on the same broker.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde_json::{Value, json};
use sluice_runtime::kafka_security::KafkaSecurity;

use crate::events::Template;
use crate::schedule::Schedule;
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
    /// TLS and SASL towards the broker, as the services take them.
    pub security: KafkaSecurity,
    /// `enable.idempotence`, as the gateway's --kafka-idempotence.
    pub idempotence: bool,
    /// Extra librdkafka `key=value` properties; they win over the rest.
    pub properties: Vec<String>,
    /// Open loop in groups; flat out when `None`.
    pub pace: Option<GroupPace>,
}

/// Open loop: `group` records at a time, `rate` records per second in all.
#[derive(Debug, Clone, Copy)]
pub struct GroupPace {
    pub rate: f64,
    pub group: usize,
}

/// Groups that may await acks at once; past it the run fails rather than
/// mixing up two groups' counts.
const GROUP_RING: usize = 1 << 16;

/// The acks still awaited per open-loop group (group number modulo the
/// ring), and when each group was due.
struct GroupAcks {
    schedule: Schedule,
    /// When the open loop started, µs after the counter's `start`.
    from_us: AtomicU64,
    remaining: Vec<AtomicU32>,
    /// From each group's due time to its last record's ack.
    latency: Mutex<Latencies>,
}

impl GroupAcks {
    fn new(pace: GroupPace) -> Self {
        Self {
            schedule: Schedule::new(pace.rate, pace.group),
            from_us: AtomicU64::new(0),
            remaining: (0..GROUP_RING).map(|_| AtomicU32::new(0)).collect(),
            latency: Mutex::new(Latencies::default()),
        }
    }

    /// When group `k` was due, µs after the counter's `start`.
    fn due_us(&self, k: usize) -> u64 {
        let offset = u64::try_from(self.schedule.due(k as u64).as_micros()).unwrap_or(u64::MAX);
        self.from_us.load(Ordering::Relaxed) + offset
    }
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
    /// Open loop: per-group acks. The open loop starts at `start`.
    groups: Option<GroupAcks>,
}

impl ClientContext for AckCounter {}

impl ProducerContext for AckCounter {
    /// Flat out: when the record was handed to librdkafka, µs after `start`.
    /// Open loop: the record's group number.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        if opaque == WARMUP {
            return;
        }
        let now_us = micros_since(self.start);
        let sent_us = match &self.groups {
            Some(groups) => groups.due_us(opaque),
            None => opaque as u64,
        };
        if let Some(groups) = &self.groups
            && groups.remaining[opaque % GROUP_RING].fetch_sub(1, Ordering::AcqRel) == 1
            && let Ok(mut histogram) = groups.latency.lock()
        {
            histogram.record(Duration::from_micros(now_us.saturating_sub(sent_us)));
        }
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.last_ack_us.fetch_max(now_us, Ordering::Relaxed);
                let latency = Duration::from_micros(now_us.saturating_sub(sent_us));
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

/// A client's settings: the brokers, security, then `settings` (the
/// producer's), then the extra properties, which win.
fn client_config(load: &KafkaLoad, settings: &[(&str, String)]) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &load.brokers);
    load.security.apply(&mut config)?;
    for (key, value) in settings {
        config.set(*key, value);
    }
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
    let admin: AdminClient<DefaultClientContext> = client_config(load, &[])?
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
    /// Open loop: from each group's due time to its last ack.
    pub group_latency: Option<Latencies>,
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
        groups: load.pace.map(GroupAcks::new),
    };
    let settings = [
        ("acks", "all".to_owned()),
        ("enable.idempotence", load.idempotence.to_string()),
        ("compression.type", load.compression.clone()),
        ("linger.ms", load.linger_ms.to_string()),
        ("partitioner", "murmur2_random".to_owned()),
        ("message.timeout.ms", load.message_timeout_ms.to_string()),
    ];
    let producer: ThreadedProducer<AckCounter> = client_config(load, &settings)?
        .create_with_context(counter)
        .context("cannot create the Kafka producer")?;
    let flush_timeout = Duration::from_millis(load.message_timeout_ms) + Duration::from_secs(5);

    let mut seq = 0u64;
    for _ in 0..load.warmup_count {
        send(&producer, load, records, seq, WARMUP)?;
        seq += 1;
    }
    producer
        .flush(flush_timeout)
        .context("warm-up records were not acknowledged")?;

    let counter = producer.context();
    let from_us = micros_since(counter.start);
    let sent = match (&counter.groups, load.pace) {
        (Some(groups), Some(pace)) => {
            groups.from_us.store(from_us, Ordering::Relaxed);
            send_groups(&producer, load, records, groups, pace, seq)?
        }
        _ => send_flat_out(&producer, load, records, seq)?,
    };
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
    let group_latency = counter.groups.as_ref().map(|groups| {
        groups
            .latency
            .lock()
            .map(|histogram| histogram.clone())
            .unwrap_or_default()
    });
    Ok(KafkaOutcome {
        sent,
        acked,
        failed: counter.failed.load(Ordering::Relaxed),
        first_error,
        window: Duration::from_micros(last_ack_us.saturating_sub(from_us)),
        latency,
        group_latency,
    })
}

/// Sends records as fast as librdkafka takes them, until the count or the
/// duration is reached; returns how many.
fn send_flat_out(
    producer: &ThreadedProducer<AckCounter>,
    load: &KafkaLoad,
    records: &[RecordTemplate],
    mut seq: u64,
) -> anyhow::Result<u64> {
    let start = producer.context().start;
    let deadline = load.duration.map(|duration| Instant::now() + duration);
    let mut sent = 0u64;
    loop {
        if load.count.is_some_and(|count| sent >= count) {
            return Ok(sent);
        }
        // Reading the clock on every record would cost more than the check is worth.
        if sent.is_multiple_of(256) && deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(sent);
        }
        let sent_us = micros_since(start) as usize;
        send(producer, load, records, seq, sent_us)?;
        seq += 1;
        sent += 1;
    }
}

/// Sends group after group on the schedule (late groups at once, their
/// latency still counted from their due time), until the duration or the
/// count of records is reached; returns how many records.
fn send_groups(
    producer: &ThreadedProducer<AckCounter>,
    load: &KafkaLoad,
    records: &[RecordTemplate],
    groups: &GroupAcks,
    pace: GroupPace,
    mut seq: u64,
) -> anyhow::Result<u64> {
    let from = Instant::now();
    let group_size = u32::try_from(pace.group).context("the group is too large")?;
    let mut sent = 0u64;
    for k in 0usize.. {
        let due = groups.schedule.due(k as u64);
        if load.duration.is_some_and(|duration| due >= duration)
            || load.count.is_some_and(|count| sent >= count)
        {
            break;
        }
        if let Some(wait) = (from + due).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let slot = &groups.remaining[k % GROUP_RING];
        if slot
            .compare_exchange(0, group_size, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            bail!("more than {GROUP_RING} groups await acks: lower --rate");
        }
        for _ in 0..pace.group {
            send(producer, load, records, seq, k)?;
            seq += 1;
            sent += 1;
        }
    }
    Ok(sent)
}

/// Hands record number `seq` (cycling through the templates) to librdkafka,
/// waiting while its queue is full.
fn send(
    producer: &ThreadedProducer<AckCounter>,
    load: &KafkaLoad,
    records: &[RecordTemplate],
    seq: u64,
    opaque: usize,
) -> anyhow::Result<()> {
    let template = &records[seq as usize % records.len()];
    let key = template.key.stamp(seq);
    // Warm-up records keep the zero placeholder: receivers measure none of them.
    let value = if template.value.has_send_time() && opaque != WARMUP {
        template.value.stamp_sent(seq, unix_micros())
    } else {
        template.value.stamp(seq)
    };
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

/// Now in Unix microseconds: the send time stamped into the records.
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
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
        "target_events_per_s": load.pace.map(|pace| pace.rate),
        "group": load.pace.map(|pace| pace.group),
        "group_latency_ms": outcome.group_latency.as_ref().map(Latencies::summary),
    })
}
