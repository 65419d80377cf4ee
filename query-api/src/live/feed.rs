//! The live topic, read on a thread of its own and fanned out to every
//! WebSocket through a broadcast channel: the reader never waits for a
//! client; a client that falls behind the channel skips messages.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sluice_runtime::kafka::client_config;
use sluice_runtime::ops::Readiness;
use sluice_runtime::settings::KafkaSettings;
use sluice_runtime::supervise::Supervisor;
use sluice_schemas::rollup::LiveUpdate;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const READINESS_CHECK: &str = "live";
/// Messages a client may fall behind before it skips some.
const CHANNEL_CAPACITY: usize = 16_384;

#[derive(Clone)]
pub struct LiveFeed {
    sender: broadcast::Sender<Arc<LiveUpdate>>,
}

impl LiveFeed {
    /// Starts reading `settings.live_topic` from its current end; the `live`
    /// readiness check holds once every partition's position is fixed, so a
    /// client that subscribes after readiness sees every later update. An
    /// empty topic name turns live updates off.
    pub fn tail(
        settings: &KafkaSettings,
        readiness: &Readiness,
        supervisor: &Supervisor,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        // Live updates are off: sockets work, and nothing is ever pushed.
        if settings.live_topic.is_empty() {
            return Ok(Self { sender });
        }
        readiness.register(READINESS_CHECK);
        let consumer: BaseConsumer = client_config(settings)?
            .set("group.id", format!("sluice-live-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "50")
            .create()
            .context("cannot create the live topic's Kafka consumer")?;
        let feed = Self { sender };
        let reader = Reader {
            feed: feed.clone(),
            consumer,
            topic: settings.live_topic.clone(),
            readiness: readiness.clone(),
            shutdown,
        };
        supervisor
            .spawn_thread("live feed", move || {
                reader.run();
                Ok(())
            })
            .context("cannot start the live feed thread")?;
        Ok(feed)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveUpdate>> {
        self.sender.subscribe()
    }
}

struct Reader {
    feed: LiveFeed,
    consumer: BaseConsumer,
    topic: String,
    readiness: Readiness,
    shutdown: CancellationToken,
}

impl Reader {
    fn run(self) {
        while !self.shutdown.is_cancelled() {
            match self.assign_at_end() {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(cause = %error, topic = %self.topic, "live topic not readable yet; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        self.readiness.set(READINESS_CHECK, true);
        while !self.shutdown.is_cancelled() {
            let Some(result) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = match result {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(cause = %error, "live topic read failed");
                    continue;
                }
            };
            let payload = message.payload().unwrap_or_default();
            match serde_json::from_slice::<LiveUpdate>(payload) {
                // No receivers is not an error: nobody is watching.
                Ok(update) => {
                    let _ = self.feed.sender.send(Arc::new(update));
                }
                Err(error) => tracing::warn!(cause = %error, "undecodable live update skipped"),
            }
        }
    }

    /// Assigns every partition at its current high watermark, read
    /// explicitly so that nothing published after this returns is missed.
    fn assign_at_end(&self) -> anyhow::Result<()> {
        let timeout = Duration::from_secs(5);
        let metadata = self.consumer.fetch_metadata(Some(&self.topic), timeout)?;
        let partitions = metadata
            .topics()
            .first()
            .map(|topic| topic.partitions().len())
            .filter(|count| *count > 0)
            .context("the live topic has no partitions")?;
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.topic, partition, timeout)?;
            list.add_partition_offset(&self.topic, partition, Offset::Offset(high))?;
        }
        self.consumer.assign(&list)?;
        Ok(())
    }
}
