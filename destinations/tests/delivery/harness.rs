//! A private broker and ClickHouse, the service on port 0, and events
//! written straight to the events topic as the gateway writes them.

use std::path::PathBuf;
use std::time::Duration;

use std::collections::HashMap;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use sluice_destinations::DestinationsConfig;
use sluice_devstack::{Component, Stack, StackSettings};
use sluice_runtime::kafka::client_config;
use sluice_runtime::settings::{self, ClickhouseSettings, KafkaSettings, ProcessSettings};
use sluice_schemas::Event;
use sluice_schemas::avro::encode_event;
use sluice_testkit::processes::Printing;
use sluice_testkit::{Running, spawn_service};

use crate::receiver::{Received, Receiver};

pub const ADMIN_TOKEN: &str = "destinations-test-admin-token";

/// The broker and ClickHouse of one test, wiped when dropped.
pub struct PrivateStack {
    stack: Stack,
    dir: PathBuf,
    pub kafka: KafkaSettings,
    pub clickhouse: ClickhouseSettings,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl PrivateStack {
    pub fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sluice-destinations-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let mut stack_settings = StackSettings::private(&dir, free_port());
        stack_settings.clickhouse_http_port = free_port();
        stack_settings.clickhouse_tcp_port = free_port();
        stack_settings.ready_timeout = Duration::from_secs(120);
        let stack = Stack::new(stack_settings.clone());
        if let Err(error) = stack.up(&[Component::Kafka, Component::Clickhouse]) {
            let _ = stack.down(&[Component::Kafka, Component::Clickhouse], true);
            panic!("cannot start a private broker and ClickHouse: {error:#}");
        }
        let mut kafka: KafkaSettings = settings::defaults();
        kafka.brokers = stack_settings.kafka_brokers();
        kafka.keys_topic = format!("test.{name}.keys");
        kafka.access_topic = format!("test.{name}.access");
        kafka.events_topic = format!("test.{name}.events");
        kafka.dlq_topic = format!("test.{name}.dlq");
        kafka.live_topic = String::new();
        kafka.partitions = 2;
        // tansu 0.6.0 with sqlite mishandles idempotent producers after a restart.
        kafka.idempotence = false;
        let mut clickhouse: ClickhouseSettings = settings::defaults();
        clickhouse.url = stack_settings.clickhouse_url();
        clickhouse.database = format!("sluice_test_{name}");
        Self {
            stack,
            dir,
            kafka,
            clickhouse,
        }
    }

    pub fn config(&self) -> DestinationsConfig {
        let mut config = DestinationsConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            destinations: settings::defaults(),
            api: settings::defaults(),
            kafka: self.kafka.clone(),
            clickhouse: self.clickhouse.clone(),
            process: ProcessSettings {
                telemetry: settings::defaults(),
                lifecycle: settings::defaults(),
                config_file: settings::defaults(),
            },
        };
        let d = &mut config.destinations;
        d.webhooks_topic = format!("{}.webhooks", self.kafka.events_topic);
        d.retry_topic = format!("{}.retry", self.kafka.events_topic);
        d.dead_letter_topic = format!("{}.deliveries-dlq", self.kafka.events_topic);
        d.allow_private_targets = vec!["127.0.0.0/8".into()];
        d.backoff_base_ms = 200;
        d.backoff_max_ms = 2_000;
        d.breaker_pause_max_ms = 2_000;
        d.commit_interval_ms = 200;
        config.api.admin_token = ADMIN_TOKEN.into();
        config.process.lifecycle.shutdown_timeout_ms = 10_000;
        config
    }

    pub async fn start_service(&self, config: DestinationsConfig) -> Running {
        let service = spawn_service(|listener, shutdown| {
            sluice_destinations::serve(config, listener, shutdown)
        })
        .await;
        let url = service.url("/health/ready");
        let client = reqwest::Client::new();
        let give_up = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let answer = client.get(&url).send().await;
            let (ready, body) = match answer {
                Ok(response) => (
                    response.status().is_success(),
                    response.text().await.unwrap_or_default(),
                ),
                Err(error) => (false, error.to_string()),
            };
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "the service is not ready: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        service
    }

    pub fn producer(&self) -> FutureProducer {
        client_config(&self.kafka)
            .expect("client config")
            .set("acks", "all")
            .create()
            .expect("producer")
    }

    /// Writes `events` to the events topic as the gateway does (Avro);
    /// returns the partition and offset of each.
    pub async fn send(&self, producer: &FutureProducer, events: &[Event]) -> Vec<(i32, i64)> {
        let mut written = Vec::with_capacity(events.len());
        for event in events {
            let (key, value) = (event.partition_key(), encode_event(event));
            let delivery = producer
                .send(
                    FutureRecord::to(&self.kafka.events_topic)
                        .key(&key)
                        .payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(error, _)| error)
                .expect("event written");
            written.push((delivery.partition, delivery.offset));
        }
        written
    }

    /// The service's binary on `port`, configured as `config` (from
    /// [`Self::config`]) but through its command line, so that a test can
    /// SIGKILL it.
    pub fn spawn_binary(&self, config: &DestinationsConfig, port: u16) -> Printing {
        let d = &config.destinations;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice-destinations"));
        let flags = [
            ("--listen", format!("127.0.0.1:{port}")),
            ("--kafka-brokers", self.kafka.brokers.clone()),
            ("--kafka-events-topic", self.kafka.events_topic.clone()),
            ("--kafka-dlq-topic", self.kafka.dlq_topic.clone()),
            ("--kafka-keys-topic", self.kafka.keys_topic.clone()),
            ("--kafka-access-topic", self.kafka.access_topic.clone()),
            ("--kafka-live-topic", String::new()),
            ("--kafka-partitions", self.kafka.partitions.to_string()),
            ("--kafka-idempotence", "false".into()),
            ("--clickhouse-url", self.clickhouse.url.clone()),
            ("--clickhouse-database", self.clickhouse.database.clone()),
            ("--kafka-webhooks-topic", d.webhooks_topic.clone()),
            ("--kafka-retry-topic", d.retry_topic.clone()),
            ("--kafka-dead-letter-topic", d.dead_letter_topic.clone()),
            ("--allow-private-targets", d.allow_private_targets.join(",")),
            ("--backoff-base-ms", d.backoff_base_ms.to_string()),
            ("--backoff-max-ms", d.backoff_max_ms.to_string()),
            ("--commit-interval-ms", d.commit_interval_ms.to_string()),
            ("--destination-concurrency", d.concurrency.to_string()),
            ("--breaker-threshold", d.breaker_threshold.to_string()),
            ("--breaker-pause-ms", d.breaker_pause_ms.to_string()),
            ("--breaker-pause-max-ms", d.breaker_pause_max_ms.to_string()),
            ("--stall-timeout-ms", d.stall_timeout_ms.to_string()),
        ];
        for (flag, value) in flags {
            command.arg(format!("{flag}={value}"));
        }
        // The token by the environment, as an operator would pass it.
        command.env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN);
        Printing::spawn(command, "sluice-destinations")
    }
}

impl Drop for PrivateStack {
    fn drop(&mut self) {
        let _ = self
            .stack
            .down(&[Component::Kafka, Component::Clickhouse], true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An event of `project` with `event_type` and `properties`, received now.
pub fn event(project: &str, id: &str, event_type: &str, properties: &str) -> Event {
    let now = sluice_schemas::time_format::now_ms();
    let mut event = Event::minimal(id, project, event_type, now - 1_000, now);
    event.source = Some("web".into());
    event.properties = properties.into();
    event
}

/// `count` events of project `shop` of type `kind`, with ids `{kind}-0`, `{kind}-1`, …
pub fn named(kind: &str, count: usize) -> Vec<Event> {
    (0..count)
        .map(|i| event("shop", &format!("{kind}-{i}"), kind, "{}"))
        .collect()
}

/// The ids of `events`.
pub fn ids(events: &[Event]) -> std::collections::HashSet<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
}

/// Waits until the receiver has got every event of `expected` at `path`,
/// one event a request.
pub async fn all_at(receiver: &Receiver, path: &str, expected: &[Event], patience: Duration) {
    let expected = ids(expected);
    let what = format!("every event expected at {path}");
    sluice_testkit::eventually(&what, patience, || async {
        let got: std::collections::HashSet<String> =
            receiver.received(path).iter().map(event_id).collect();
        Some(()).filter(|()| got.is_superset(&expected))
    })
    .await;
}

/// Calls the management API as the admin; the status and the JSON answer.
pub async fn call(client: &reqwest::Client, method: &str, url: &str, body: Value) -> (u16, Value) {
    let request = match method {
        "POST" => client.post(url).json(&body),
        "PATCH" => client.patch(url).json(&body),
        _ => client.get(url),
    };
    let response = request
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("API answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The body of a GET of `url` (the metrics page, for one).
pub async fn text(url: &str) -> String {
    let response = reqwest::get(url).await.expect("an answer");
    response.text().await.expect("a body")
}

/// Creates a webhook and returns its id.
pub async fn create(client: &reqwest::Client, hooks: &str, body: Value) -> String {
    let (status, answer) = call(client, "POST", hooks, body).await;
    assert_eq!(status, 201, "{answer}");
    answer["webhook_id"].as_str().unwrap().to_owned()
}

/// The event id in a (single) delivery's body.
pub fn event_id(received: &Received) -> String {
    let body: Value = serde_json::from_str(&received.body).expect("a JSON body");
    body["data"]["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The offsets `group` committed on the events topic, per partition (0
/// where it committed none).
pub fn committed(stack: &PrivateStack, group: &str) -> HashMap<i32, i64> {
    committed_on(stack, group, &stack.kafka.events_topic)
}

/// The offsets `group` committed on `topic`, per partition (0 where it
/// committed none).
pub fn committed_on(stack: &PrivateStack, group: &str, topic: &str) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = client_config(&stack.kafka)
        .unwrap()
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..stack.kafka.partitions {
        list.add_partition(topic, partition);
    }
    let list = consumer
        .committed_offsets(list, Duration::from_secs(30))
        .expect("committed offsets");
    list.elements()
        .iter()
        .map(|element| {
            let offset = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            };
            (element.partition(), offset)
        })
        .collect()
}

/// The end offset (the next message's) of each partition of `topic`.
pub fn ends(stack: &PrivateStack, topic: &str) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = client_config(&stack.kafka).unwrap().create().unwrap();
    (0..stack.kafka.partitions)
        .map(|partition| {
            let (_, end) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(30))
                .expect("watermarks");
            (partition, end)
        })
        .collect()
}

/// Waits until the metrics page at `url` passes `check`, and returns it;
/// on timeout, fails with the service's own series of the last page read.
pub async fn metrics_until(
    url: &str,
    what: &str,
    patience: Duration,
    check: impl Fn(&str) -> bool,
) -> String {
    let give_up = std::time::Instant::now() + patience;
    loop {
        let page = text(url).await;
        if check(&page) {
            return page;
        }
        if std::time::Instant::now() >= give_up {
            let ours: Vec<&str> = page
                .lines()
                .filter(|line| line.starts_with("sluice_destination"))
                .collect();
            panic!(
                "timed out after {patience:?} waiting for {what}; the last metrics:\n{}",
                ours.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the metric line that starts with `series` (name and
/// labels, as the exposition writes them) on the metrics page `text`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}
