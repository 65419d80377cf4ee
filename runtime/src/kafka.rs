//! librdkafka client settings and idempotent topic creation.

use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use crate::settings::KafkaSettings;

/// The client settings every Sluice Kafka client starts from: the brokers and
/// the operator's extra properties.
pub fn client_config(settings: &KafkaSettings) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
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
/// unreachable, until `shutdown` or `deadline`.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[&str],
    deadline: Duration,
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
    create_topics(settings, &new_topics, deadline, shutdown).await
}

/// Creates the keys topic when missing: one partition, so records of a key
/// stay in order, and compacted, so it keeps the latest record of each key.
pub async fn ensure_keys_topic(
    settings: &KafkaSettings,
    deadline: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let topic = NewTopic::new(
        &settings.keys_topic,
        1,
        TopicReplication::Fixed(settings.replication_factor),
    )
    .set("cleanup.policy", "compact");
    create_topics(settings, &[topic], deadline, shutdown).await
}

async fn create_topics(
    settings: &KafkaSettings,
    new_topics: &[NewTopic<'_>],
    deadline: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings)?
        .create()
        .context("cannot create the Kafka admin client")?;
    let topics: Vec<&str> = new_topics.iter().map(|topic| topic.name).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let give_up = tokio::time::Instant::now() + deadline;
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
            return Ok(());
        };
        if tokio::time::Instant::now() >= give_up {
            bail!(
                "cannot create Kafka topics {topics:?} on {}: {failure}",
                settings.brokers
            );
        }
        tracing::warn!(cause = %failure, brokers = %settings.brokers, "Kafka topics not ready; retrying");
        tokio::select! {
            _ = shutdown.cancelled() => bail!("shut down while waiting for the broker"),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
