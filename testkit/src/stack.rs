//! The real broker and ClickHouse, and a private corner of each per test.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_devstack::{Component, Stack, StackSettings};
use sluice_runtime::clickhouse::ServerFeatures;
use sluice_runtime::kafka::{client_config, ensure_keys_topic};
use sluice_runtime::keys::{KeyLimits, KeyRecord, KeyWriter, Scope, generate_key};
use sluice_runtime::ops::Patience;
use sluice_runtime::settings::{ClickhouseSettings, KafkaSecurity, KafkaSettings};
use sluice_schemas::Event;
use sluice_schemas::avro::decode_event;
use sluice_schemas::time_format::now_ms;
use tokio_util::sync::CancellationToken;

/// One message of a topic, as [`TestEnv::topic_records`] read it.
#[derive(Debug)]
pub struct TopicRecord {
    pub partition: i32,
    /// How many partitions the topic had when it was read.
    pub partitions: i32,
    pub key: Option<Vec<u8>>,
    /// The record's timestamp, epoch milliseconds.
    pub timestamp_ms: Option<i64>,
    pub event: Event,
}

/// A message of the dead-letter topic, as [`TestEnv::dead_letters`] read it.
#[derive(Debug)]
pub struct DeadLetter {
    pub key: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

impl DeadLetter {
    /// A header's value, or `""`.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Where the stack answers, and which ClickHouse engine it is.
#[derive(Debug)]
pub struct StackInfo {
    pub brokers: String,
    pub clickhouse_url: String,
    /// `SLUICE_TEST_CLICKHOUSE_ENGINE` (set by `deploy/test.sh`: `clickhouse-18`
    /// or `chdb`), so that every failure says which engine it was on.
    pub engine: String,
    /// What the engine answers to `SELECT version()`.
    pub clickhouse_version: String,
    /// What the services will use on this engine.
    pub features: ServerFeatures,
    /// `SLUICE_TEST_CLICKHOUSE_CLUSTER`: the cluster the URL's server
    /// belongs to, when the tests run on a cluster (`sluice-dev cluster`);
    /// every test's tables are then created on it.
    pub clickhouse_cluster: String,
}

static STACK: OnceLock<StackInfo> = OnceLock::new();

/// The running stack; starts the local one (`deploy/stack.sh up`) when needed.
///
/// # Panics
/// When the broker or ClickHouse cannot be reached or started: a test that
/// needs them must fail, loudly, rather than pass without them.
pub fn stack() -> &'static StackInfo {
    STACK.get_or_init(|| {
        let brokers = std::env::var("SLUICE_TEST_KAFKA_BROKERS").ok();
        let clickhouse_url = std::env::var("SLUICE_TEST_CLICKHOUSE_URL").ok();
        let external = brokers.is_some() || clickhouse_url.is_some();
        // Otherwise the local stack, where `deploy/stack.sh up` puts it (its
        // ports follow SLUICE_KAFKA_PORT and SLUICE_CLICKHOUSE_HTTP_PORT, so
        // the stack that is started here is the one that is asked).
        let local = StackSettings::from_env(&repo_root()).ok();
        let mut info = StackInfo {
            brokers: brokers.unwrap_or_else(|| {
                local
                    .as_ref()
                    .map_or_else(|| "127.0.0.1:9092".into(), StackSettings::kafka_brokers)
            }),
            clickhouse_url: clickhouse_url.unwrap_or_else(|| {
                local.as_ref().map_or_else(
                    || "http://127.0.0.1:8123".into(),
                    StackSettings::clickhouse_url,
                )
            }),
            engine: std::env::var("SLUICE_TEST_CLICKHOUSE_ENGINE")
                .unwrap_or_else(|_| "clickhouse".into()),
            clickhouse_version: String::new(),
            features: ServerFeatures::COMMON_SUBSET,
            clickhouse_cluster: std::env::var("SLUICE_TEST_CLICKHOUSE_CLUSTER").unwrap_or_default(),
        };
        if !stack_answers(&info) {
            start_local_stack(&info, external);
        }
        let query = "/?query=SELECT%20version()";
        info.clickhouse_version = http_request(&info.clickhouse_url, "GET", query, "")
            .map(|version| version.trim().to_owned())
            .unwrap_or_else(|| {
                panic!(
                    "ClickHouse engine {} at {} answers /ping but not SELECT version()",
                    info.engine, info.clickhouse_url
                )
            });
        let (features, invalid) = ServerFeatures::detect(&info.clickhouse_version);
        assert!(invalid.is_none(), "engine {}: {invalid:?}", info.engine);
        info.features = features;
        eprintln!(
            "testkit: ClickHouse engine {} at {}, version {}, {:?}",
            info.engine, info.clickhouse_url, info.clickhouse_version, info.features
        );
        info
    })
}

/// Starts the local stack, unless the caller named another one.
fn start_local_stack(info: &StackInfo, external: bool) {
    assert!(
        !external,
        "the test stack named by SLUICE_TEST_KAFKA_BROKERS / SLUICE_TEST_CLICKHOUSE_URL \
         ({info:?}) does not answer (start it with deploy/test.sh, or deploy/stack.sh up; \
         the chdb engine with deploy/install.sh chdb && deploy/stack.sh up chdb)"
    );
    let started = StackSettings::from_env(&repo_root())
        .and_then(|settings| Stack::new(settings).up(&[Component::Clickhouse, Component::Kafka]));
    if let Err(error) = started {
        panic!(
            "the broker (Kafka protocol at {}) and ClickHouse ({}) are needed and could not be \
             started as `deploy/stack.sh up` starts them; install them with `deploy/install.sh`.\n{error:#}",
            info.brokers, info.clickhouse_url
        );
    }
    assert!(
        stack_answers(info),
        "the local stack started but {info:?} does not answer"
    );
}

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace")
        .to_path_buf()
}

fn stack_answers(info: &StackInfo) -> bool {
    let broker = info.brokers.split(',').next().unwrap_or_default();
    let broker_up = broker
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    broker_up
        && http_request(&info.clickhouse_url, "GET", "/ping", "")
            .is_some_and(|body| body.starts_with("Ok."))
}

/// A minimal blocking HTTP/1.0 exchange, for the harness's few ClickHouse calls
/// made outside any async runtime (e.g. in `Drop`).
fn http_request(base: &str, method: &str, path: &str, body: &str) -> Option<String> {
    let authority = base.strip_prefix("http://")?.trim_end_matches('/');
    let addr = authority.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}

/// How many partitions `topic` has.
fn partition_count(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> i32 {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("topic metadata");
    metadata.topics()[0].partitions().len() as i32
}

/// One partition's watermarks, and a group's committed offset on it.
#[derive(Debug, Clone, Copy)]
pub struct PartitionOffsets {
    pub low: i64,
    pub high: i64,
    /// The group's committed offset (the next to read), if it has one.
    pub committed: Option<i64>,
}

/// One test's own topics and ClickHouse database. The database is dropped
/// when the test passes and kept for inspection when it fails.
pub struct TestEnv {
    pub id: String,
    pub kafka: KafkaSettings,
    pub clickhouse: ClickhouseSettings,
}

impl TestEnv {
    pub fn new(name: &str) -> Self {
        let stack = stack();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let id = format!("{name}_{}", &suffix[..12]);
        Self {
            kafka: KafkaSettings {
                brokers: stack.brokers.clone(),
                events_topic: format!("test.{id}.events"),
                dlq_topic: format!("test.{id}.dlq"),
                live_topic: format!("test.{id}.live"),
                keys_topic: format!("test.{id}.keys"),
                access_topic: format!("test.{id}.access"),
                partitions: 4,
                replication_factor: 1,
                // The tests' broker is tansu 0.6.0, whose sqlite engine breaks
                // on an idempotent producer after a broker restart (README,
                // docs/failure-modes.md); the local stack runs without it too.
                idempotence: false,
                security: KafkaSecurity::default(),
                properties: Vec::new(),
            },
            clickhouse: ClickhouseSettings {
                url: stack.clickhouse_url.clone(),
                database: format!("sluice_test_{id}"),
                user: "default".into(),
                password: None,
                password_file: None,
                ca_file: None,
                cluster: stack.clickhouse_cluster.clone(),
            },
            id,
        }
    }

    /// A client bound to this test's database, configured as the services
    /// configure theirs on this engine.
    pub fn clickhouse(&self) -> clickhouse::Client {
        sluice_runtime::clickhouse::client(&self.clickhouse, stack().features)
            .expect("valid test database name")
            .0
    }

    /// Creates this test's database and tables, as the services do at startup.
    pub async fn ensure_schema(&self) -> ServerFeatures {
        let connection = sluice_runtime::clickhouse::Connection::open(&self.clickhouse)
            .unwrap_or_else(|error| panic!("test ClickHouse settings: {error:#}"));
        sluice_runtime::clickhouse::ensure_schema(
            &connection,
            Patience::AtMost(Duration::from_secs(30)),
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|error| panic!("schema on engine {}: {error:#}", stack().engine))
    }

    /// Merges every part of `table` (`OPTIMIZE … FINAL`), as ClickHouse's
    /// background merges eventually would. On a cluster, the shard-local
    /// table on one replica of each shard that holds parts of it
    /// (`SLUICE_TEST_CLICKHOUSE_SHARD_URLS`): the other replicas follow
    /// through replication. 18.16's `OPTIMIZE … ON CLUSTER`, and its
    /// `OPTIMIZE` of an empty replicated table, fail ("Unknown log entry
    /// type: 0").
    pub async fn optimize_final(&self, table: &str) {
        let info = stack();
        if info.clickhouse_cluster.is_empty() {
            let sql = format!("OPTIMIZE TABLE {table} FINAL");
            self.clickhouse()
                .query(&sql)
                .execute()
                .await
                .unwrap_or_else(|error| panic!("{sql} on engine {}: {error}", info.engine));
            return;
        }
        let shard_urls = std::env::var("SLUICE_TEST_CLICKHOUSE_SHARD_URLS").unwrap_or_default();
        let shard_urls: Vec<&str> = shard_urls.split(',').filter(|u| !u.is_empty()).collect();
        assert!(
            !shard_urls.is_empty(),
            "tests on a cluster need SLUICE_TEST_CLICKHOUSE_SHARD_URLS: one server URL per shard"
        );
        let sql = format!(
            "OPTIMIZE TABLE {}.{table}_local FINAL",
            self.clickhouse.database
        );
        for url in shard_urls {
            let mut settings = self.clickhouse.clone();
            settings.url = url.to_owned();
            let shard = sluice_runtime::clickhouse::client(&settings, info.features)
                .expect("valid test settings")
                .0;
            let parts = shard
                .query(
                    "SELECT count() FROM system.parts WHERE database = ? AND table = ? AND active",
                )
                .bind(&self.clickhouse.database)
                .bind(format!("{table}_local"))
                .fetch_one::<u64>()
                .await
                .unwrap_or_else(|error| panic!("parts of {table}_local on {url}: {error}"));
            if parts > 0 {
                shard
                    .query(&sql)
                    .execute()
                    .await
                    .unwrap_or_else(|error| panic!("{sql} on {url}: {error}"));
            }
        }
    }

    /// Runs a query that returns one number.
    pub async fn query_u64(&self, sql: &str) -> u64 {
        self.clickhouse()
            .query(sql)
            .fetch_one::<u64>()
            .await
            .unwrap_or_else(|error| panic!("{sql} on engine {}: {error}", stack().engine))
    }

    /// Creates an API key of `project_id` with `scopes` in this test's keys
    /// topic (services started on this env read it) and returns the key.
    pub async fn create_key(&self, project_id: &str, scopes: &[Scope]) -> String {
        self.create_key_with(project_id, scopes, KeyLimits::default())
            .await
    }

    /// Like [`Self::create_key`], with the key's own rate limits.
    pub async fn create_key_with(
        &self,
        project_id: &str,
        scopes: &[Scope],
        limits: KeyLimits,
    ) -> String {
        let key = generate_key();
        let record = KeyRecord::for_key(
            &key,
            project_id,
            scopes.to_vec(),
            "test".into(),
            limits,
            now_ms(),
        );
        self.write_key(&record).await;
        key
    }

    /// Revokes `key` (written as a new record, as the admin API does).
    pub async fn revoke_key(&self, key: &str) {
        let mut record = KeyRecord::for_key(
            key,
            "revoked",
            Vec::new(),
            String::new(),
            KeyLimits::default(),
            now_ms(),
        );
        record.revoked_at_ms = Some(now_ms());
        self.write_key(&record).await;
    }

    async fn write_key(&self, record: &KeyRecord) {
        let never = CancellationToken::new();
        ensure_keys_topic(
            &self.kafka,
            Patience::AtMost(Duration::from_secs(30)),
            &never,
        )
        .await
        .expect("keys topic");
        KeyWriter::new(&self.kafka)
            .expect("key writer")
            .put(record)
            .await
            .expect("key record written");
    }

    /// An `acks=all` producer to this test's broker.
    pub fn producer(&self) -> FutureProducer {
        client_config(&self.kafka)
            .expect("client config")
            .set("acks", "all")
            .set("linger.ms", "5")
            .create()
            .expect("Kafka producer")
    }

    /// Every event on `topic`, decoded from the gateway's Avro, read from the
    /// start of each partition to its end.
    pub async fn topic_events(&self, topic: &str) -> Vec<Event> {
        let records = self.topic_records(topic).await;
        records.into_iter().map(|record| record.event).collect()
    }

    /// Every message on `topic` with where it sits and its key, decoded from
    /// the gateway's Avro, read from the start of each partition to its end.
    pub async fn topic_records(&self, topic: &str) -> Vec<TopicRecord> {
        let kafka = self.kafka.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client_config(&kafka)
                .expect("client config")
                .set("group.id", "sluice-testkit-reader")
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "true")
                .create()
                .expect("Kafka consumer");
            let timeout = Duration::from_secs(10);
            let partitions = partition_count(&consumer, &topic, timeout);
            let mut list = TopicPartitionList::new();
            for partition in 0..partitions {
                list.add_partition_offset(&topic, partition, Offset::Beginning)
                    .expect("partition");
            }
            consumer.assign(&list).expect("assign");
            let mut at_end = std::collections::BTreeSet::new();
            let mut records = Vec::new();
            let give_up = std::time::Instant::now() + Duration::from_secs(60);
            while at_end.len() < partitions as usize {
                assert!(
                    std::time::Instant::now() < give_up,
                    "reading {topic} timed out"
                );
                match consumer.poll(Duration::from_millis(500)) {
                    Some(Ok(message)) => records.push(TopicRecord {
                        partition: message.partition(),
                        partitions,
                        key: message.key().map(<[u8]>::to_vec),
                        timestamp_ms: message.timestamp().to_millis(),
                        event: decode_event(message.payload().unwrap_or_default())
                            .expect("an event the gateway encoded"),
                    }),
                    Some(Err(KafkaError::PartitionEOF(partition))) => {
                        at_end.insert(partition);
                    }
                    Some(Err(error)) => panic!("reading {topic}: {error}"),
                    None => {}
                }
            }
            records
        })
        .await
        .expect("reader task")
    }

    /// The first `count` messages of this test's dead-letter topic, in the
    /// order they are read; panics, listing those read, if they do not all
    /// come within 60 s.
    pub async fn dead_letters(&self, count: usize) -> Vec<DeadLetter> {
        let consumer: StreamConsumer = client_config(&self.kafka)
            .expect("client config")
            .set("group.id", format!("dead_letter_reader_{}", self.id))
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("Kafka consumer");
        consumer
            .subscribe(&[&self.kafka.dlq_topic])
            .expect("subscribe");
        let mut letters = Vec::with_capacity(count);
        while letters.len() < count {
            let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("{count} dead letters expected, got {letters:#?}"))
                .expect("a dead letter");
            let headers = message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|header| {
                            let value = header.value.unwrap_or_default();
                            (
                                header.key.to_owned(),
                                String::from_utf8_lossy(value).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            letters.push(DeadLetter {
                key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                headers,
            });
        }
        letters
    }

    /// How many messages `topic` holds, over all partitions (high minus low watermarks).
    pub async fn topic_message_count(&self, topic: &str) -> i64 {
        self.offsets(topic, "sluice-testkit-watermarks")
            .await
            .iter()
            .map(|p| p.high - p.low)
            .sum()
    }

    /// Messages of `topic` that consumer group `group` has not committed yet.
    pub async fn group_lag(&self, topic: &str, group: &str) -> i64 {
        self.offsets(topic, group)
            .await
            .iter()
            .map(|p| p.high - p.committed.unwrap_or(p.low))
            .sum()
    }

    /// Each partition of `topic` (in partition order): its watermarks and
    /// the offset consumer group `group` committed on it.
    pub async fn offsets(&self, topic: &str, group: &str) -> Vec<PartitionOffsets> {
        let kafka = self.kafka.clone();
        let (topic, group) = (topic.to_owned(), group.to_owned());
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client_config(&kafka)
                .expect("client config")
                .set("group.id", &group)
                .create()
                .expect("Kafka consumer");
            let timeout = Duration::from_secs(10);
            let partitions = partition_count(&consumer, &topic, timeout);
            let mut list = TopicPartitionList::new();
            for partition in 0..partitions {
                list.add_partition(&topic, partition);
            }
            let committed = consumer
                .committed_offsets(list, timeout)
                .expect("committed offsets");
            (0..partitions)
                .map(|partition| {
                    let (low, high) = consumer
                        .fetch_watermarks(&topic, partition, timeout)
                        .expect("watermarks");
                    let committed = committed
                        .find_partition(&topic, partition)
                        .and_then(|p| p.offset().to_raw())
                        .filter(|offset| *offset >= 0);
                    PartitionOffsets {
                        low,
                        high,
                        committed,
                    }
                })
                .collect()
        })
        .await
        .expect("offsets task")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "kept ClickHouse database {} on engine {} ({}) and topics {} / {} for inspection",
                self.clickhouse.database,
                stack().engine,
                self.clickhouse.url,
                self.kafka.events_topic,
                self.kafka.dlq_topic
            );
            return;
        }
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.clickhouse.database);
        let _ = http_request(&self.clickhouse.url, "POST", "/", &sql);
    }
}
