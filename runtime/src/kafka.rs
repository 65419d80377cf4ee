//! librdkafka client settings and idempotent topic creation.

use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use crate::ops::Patience;
use crate::settings::KafkaSettings;

/// The readiness check that the broker answers.
pub const KAFKA_CHECK: &str = "kafka";

/// The client settings every Sluice Kafka client starts from: the brokers and
/// the operator's extra properties.
pub fn client_config(settings: &KafkaSettings) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        // Back within a second of a broker's return, where librdkafka's
        // default waits up to 10 s between reconnection attempts.
        .set("reconnect.backoff.max.ms", "1000");
    apply_properties(&mut config, settings)?;
    Ok(config)
}

/// The settings every Sluice producer starts from: [`client_config`], with
/// `acks=all` and idempotence as `--kafka-idempotence` says. Operator
/// properties still win.
pub fn producer_config(settings: &KafkaSettings) -> anyhow::Result<ClientConfig> {
    let mut config = client_config(settings)?;
    config
        .set("acks", "all")
        .set("enable.idempotence", settings.idempotence.to_string());
    apply_properties(&mut config, settings)?;
    Ok(config)
}

/// Sets the operator's extra properties (again) on `config`, so they win over
/// the defaults a client sets after [`client_config`].
pub fn apply_properties(config: &mut ClientConfig, settings: &KafkaSettings) -> anyhow::Result<()> {
    for property in settings.properties.iter().filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = property.split_once('=') else {
            bail!("Kafka property {property:?} is not key=value");
        };
        config.set(key.trim(), value.trim());
    }
    Ok(())
}

/// Creates the topics that do not exist yet, retrying while the broker is
/// unreachable, as `patience` says, or until `shutdown`.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[&str],
    patience: Patience,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            NewTopic::new(
                topic,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    create_topics(settings, &new_topics, patience, shutdown).await
}

/// Creates the keys topic when missing: one partition, so records of a key
/// stay in order, and compacted, so it keeps the latest record of each key.
pub async fn ensure_keys_topic(
    settings: &KafkaSettings,
    patience: Patience,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let topic = NewTopic::new(
        &settings.keys_topic,
        1,
        TopicReplication::Fixed(settings.replication_factor),
    )
    .set("cleanup.policy", "compact");
    create_topics(settings, &[topic], patience, shutdown).await
}

async fn create_topics(
    settings: &KafkaSettings,
    new_topics: &[NewTopic<'_>],
    patience: Patience,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings)?
        .create()
        .context("cannot create the Kafka admin client")?;
    let topics: Vec<&str> = new_topics.iter().map(|topic| topic.name).collect();
    // A broker that does not answer fails an attempt within seconds (the
    // default is librdkafka's 60 s socket timeout), so readiness says why.
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(5)));
    let started = std::time::Instant::now();
    loop {
        let outcome = admin.create_topics(new_topics, &options).await;
        let failure = match outcome {
            Ok(results) => results.into_iter().find_map(|result| match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                Err((topic, code)) => Some(format!("topic {topic}: {code}")),
            }),
            Err(error) => Some(error.to_string()),
        };
        let Some(failure) = failure else {
            patience.succeeded();
            return Ok(());
        };
        let cause = format!(
            "cannot create Kafka topics {topics:?} on {} (--kafka-brokers): {failure}",
            settings.brokers
        );
        if let Some(error) = patience.after_failure(started, cause) {
            return Err(error);
        }
        tracing::warn!(cause = %failure, brokers = %settings.brokers, "Kafka topics not ready; retrying");
        tokio::select! {
            _ = shutdown.cancelled() => bail!("shut down while waiting for the broker"),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
