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
    for property in settings.properties.iter().filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = property.split_once('=') else {
            bail!("Kafka property {property:?} is not key=value");
        };
        config.set(key.trim(), value.trim());
    }
    Ok(config)
}

/// Creates the topics that do not exist yet, retrying while the broker is
/// unreachable, until `shutdown` or `deadline`.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[&str],
    deadline: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings)?
        .create()
        .context("cannot create the Kafka admin client")?;
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
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        let outcome = admin.create_topics(&new_topics, &options).await;
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
