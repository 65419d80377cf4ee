//! Poison messages written straight to Kafka go to the dead-letter topic with
//! the reason and their origin, and the events around them still land.

use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
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

    let mut reasons = Vec::new();
    for letter in env.dead_letters(3).await {
        assert_eq!(letter.header("sluice.source.topic"), topic);
        assert!(letter.header("sluice.source.offset").parse::<i64>().is_ok());
        reasons.push(letter.header("sluice.error").to_owned());
    }
    reasons.sort();
    assert!(reasons[0].starts_with("Avro:"), "{reasons:?}");
    assert!(reasons[1].contains("duration_ms"), "{reasons:?}");
    assert!(reasons[2].contains("neither"), "{reasons:?}");
    processor.stop().await.unwrap();
}
