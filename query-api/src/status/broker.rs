//! The events topic as the broker sees it: where each partition's log ends,
//! and when a given message was written. One consumer outside any group
//! reads them (it never commits), on a blocking thread, one look at a time;
//! a look is reused for [`REUSE`] so a dashboard polling many tiles costs
//! the broker one round per second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sluice_runtime::kafka::client_config;
use sluice_runtime::settings::KafkaSettings;
use tokio::sync::Mutex as AsyncMutex;

/// How long one look at the broker answers later requests.
pub const REUSE: Duration = Duration::from_secs(1);
/// How long one broker request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// One partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLog {
    pub partition: i32,
    /// The oldest offset still in the log.
    pub start: i64,
    /// The offset the next message will get.
    pub end: i64,
}

/// What one look saw: every partition's log, and the timestamps (epoch ms)
/// of the messages asked about.
#[derive(Debug, Clone, Default)]
pub struct BrokerLook {
    pub logs: Vec<PartitionLog>,
    pub written_ms: HashMap<i32, i64>,
}

#[derive(Clone)]
pub struct BrokerView {
    consumer: Arc<Mutex<BaseConsumer>>,
    topic: String,
    last: Arc<AsyncMutex<Option<(Instant, SharedLook)>>>,
}

/// A look, or why the broker could not be read, shared by the requests
/// that reuse it.
pub type SharedLook = Arc<Result<BrokerLook, String>>;

impl BrokerView {
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = client_config(settings)?
            .set(
                "group.id",
                format!("sluice-status-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "50")
            .create()
            .context("cannot create the status view's Kafka consumer")?;
        Ok(Self {
            consumer: Arc::new(Mutex::new(consumer)),
            topic: settings.events_topic.clone(),
            last: Arc::default(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partitions' logs and the write time of the message at
    /// `positions(logs)` in each partition (where it names one below the
    /// log's end): the oldest message the processor has not stored yet.
    pub async fn look(
        &self,
        positions: impl FnOnce(&[PartitionLog]) -> Vec<(i32, i64)> + Send + 'static,
    ) -> SharedLook {
        let mut last = self.last.lock().await;
        if let Some((at, look)) = last.as_ref()
            && at.elapsed() < REUSE
        {
            return look.clone();
        }
        let (consumer, topic) = (self.consumer.clone(), self.topic.clone());
        let look = tokio::task::spawn_blocking(move || {
            let consumer = consumer.lock().map_err(|_| "status consumer poisoned")?;
            let logs = partition_logs(&consumer, &topic)?;
            let wanted = positions(&logs);
            let written_ms = write_times(&consumer, &topic, &wanted)?;
            Ok::<_, String>(BrokerLook { logs, written_ms })
        })
        .await
        .unwrap_or_else(|error| Err(format!("status look failed: {error}")));
        let look = Arc::new(look);
        *last = Some((Instant::now(), look.clone()));
        look
    }
}

fn partition_logs(consumer: &BaseConsumer, topic: &str) -> Result<Vec<PartitionLog>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|error| format!("the broker did not answer: {error}"))?;
    let count = metadata
        .topics()
        .first()
        .map(|topic| topic.partitions().len())
        .filter(|count| *count > 0)
        .ok_or_else(|| format!("topic {topic} has no partitions"))?;
    (0..count as i32)
        .map(|partition| {
            let (start, end) = consumer
                .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                .map_err(|error| format!("partition {partition}'s offsets: {error}"))?;
            Ok(PartitionLog {
                partition,
                start,
                end,
            })
        })
        .collect()
}

/// Reads one message at each position and keeps its timestamp. A position
/// below the log's start reads the oldest message left.
fn write_times(
    consumer: &BaseConsumer,
    topic: &str,
    positions: &[(i32, i64)],
) -> Result<HashMap<i32, i64>, String> {
    let mut written = HashMap::new();
    if positions.is_empty() {
        return Ok(written);
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in positions {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|error| error.to_string())?;
    }
    consumer
        .assign(&list)
        .map_err(|error| format!("cannot read the events topic: {error}"))?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    while written.len() < positions.len() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if let Some(ms) = message.timestamp().to_millis() {
                    written.entry(message.partition()).or_insert(ms);
                }
            }
            Some(Err(error)) => tracing::debug!(cause = %error, "status read failed"),
            None => {}
        }
    }
    let _ = consumer.unassign();
    Ok(written)
}
