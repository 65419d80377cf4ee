//! Poison messages written straight to Kafka go to the dead-letter topic with
//! the reason and their origin, and the events around them still land.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use sluice_runtime::kafka::client_config;
use sluice_stream_processor::config::ProcessorSettings;
use sluice_testkit::{TestEnv, eventually};

mod common;

use common::spawn_processor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dead_letter_topic_and_the_rest_flows() {
    let env = TestEnv::new("dlq");
    let settings = ProcessorSettings {
        batch_max_rows: 1_000,
        batch_max_ms: 200,
        session_timeout_ms: 6_000,
        ..ProcessorSettings::default()
    };
    let processor = spawn_processor(&env, settings).await;
    let topic = env.kafka.events_topic.clone();

    let now = sluice_schemas::time_format::now_ms();
    let good = |id: &str| {
        format!(r#"{{"type":"ok","project_id":"p1","event_id":"{id}","timestamp":{now}}}"#)
            .into_bytes()
    };
    let values: Vec<Vec<u8>> = vec![
        good("a"),
        b"hello, world".to_vec(),
        br#"{"type":"x","project_id":"p1","duration_ms":"slow"}"#.to_vec(),
        vec![0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0],
        good("b"),
    ];
    let producer = env.producer();
    for value in &values {
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(value),
                Timeout::Never,
            )
            .await
            .expect("broker acks");
    }

    eventually("both good events in ClickHouse", Duration::from_secs(60), || {
        let env = &env;
        async move { (env.query_u64("SELECT count() FROM events FINAL").await == 2).then_some(()) }
    })
    .await;

    let consumer: StreamConsumer = client_config(&env.kafka)
        .unwrap()
        .set("group.id", format!("dlq_reader_{}", env.id))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&env.kafka.dlq_topic]).unwrap();
    let mut reasons = Vec::new();
    while reasons.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("three dead letters within 30 s")
            .expect("a dead letter");
        let headers = message.headers().expect("dead letters carry headers");
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        assert_eq!(header("sluice.source.topic"), topic);
        assert!(header("sluice.source.offset").parse::<i64>().is_ok());
        reasons.push(header("sluice.error"));
    }
    reasons.sort();
    assert!(reasons[0].starts_with("Avro:"), "{reasons:?}");
    assert!(reasons[1].contains("duration_ms"), "{reasons:?}");
    assert!(reasons[2].contains("neither"), "{reasons:?}");
    processor.stop().await.unwrap();
}
