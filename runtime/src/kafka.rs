//! librdkafka client settings and idempotent topic creation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
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
        .set("reconnect.backoff.max.ms", "1000")
        // rdkafka takes the level from the `log` crate, which Sluice does not
        // use (it would silence librdkafka): warnings say why a broker
        // refuses a client.
        .set_log_level(RDKafkaLogLevel::Warning);
    settings.security.apply(&mut config)?;
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

/// Remembers the client's last warning or error. librdkafka reports why it
/// cannot connect (a refused SASL login, a TLS handshake that failed, a
/// plaintext client at a TLS port) only in its log; the request itself just
/// times out. The lines still go to the service's log.
#[derive(Debug, Default)]
pub struct ErrorMemory(Mutex<Option<String>>);

impl ErrorMemory {
    pub fn last(&self) -> Option<String> {
        self.0.lock().ok().and_then(|last| last.clone())
    }
}

impl ProducerContext for ErrorMemory {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl ClientContext for ErrorMemory {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(cause = %error, reason, "Kafka client error");
        if let Ok(mut last) = self.0.lock() {
            *last = Some(reason.to_owned());
        }
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Debug | RDKafkaLogLevel::Info | RDKafkaLogLevel::Notice => {
                tracing::debug!(facility, message, "librdkafka");
                return;
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility, message, "librdkafka"),
            _ => tracing::error!(facility, message, "librdkafka"),
        }
        if let Ok(mut last) = self.0.lock() {
            *last = Some(message.to_owned());
        }
    }
}

/// The settings to check when a client's last error says the broker refused
/// it for its configuration rather than being down.
pub fn misconfigured(last_error: &str) -> Option<&'static str> {
    if last_error.contains("SASL authentication error")
        || last_error.contains("Authentication failed")
    {
        Some(
            "--kafka-sasl-mechanism, --kafka-sasl-username and the password (--kafka-sasl-password, SLUICE_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file)",
        )
    } else if last_error.contains("SSL handshake failed") {
        Some(
            "--kafka-security-protocol and --kafka-ssl-ca-file (the CA that signed the broker's certificate), or the client certificate",
        )
    } else {
        None
    }
}

/// Creates the keys and access topics when missing ([`crate::access`]):
/// one partition, so the records of a key or user stay in order, and
/// compacted, so each keeps the latest record of each id.
pub async fn ensure_keys_topic(
    settings: &KafkaSettings,
    patience: Patience,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    ensure_record_topic(settings, &settings.keys_topic, patience.clone(), shutdown).await?;
    ensure_record_topic(settings, &settings.access_topic, patience, shutdown).await
}

/// Creates a topic of configuration records ([`crate::record_topic`]) when
/// missing: one partition, so the records of an id stay in order, and
/// compacted, so it keeps the latest record of each id.
pub async fn ensure_record_topic(
    settings: &KafkaSettings,
    name: &str,
    patience: Patience,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let topic = NewTopic::new(
        name,
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
    // The admin client never polls its log; an idle producer beside it does,
    // so that a failure can say why.
    let witness: Arc<ThreadedProducer<ErrorMemory>> = Arc::new(
        client_config(settings)?
            .create_with_context(ErrorMemory::default())
            .context("cannot create the Kafka client")?,
    );
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
        let Some(mut failure) = failure else {
            patience.succeeded();
            return Ok(());
        };
        // A timed-out request does not say why; the witness's last error,
        // after it tried to connect, does.
        let asked = witness.clone();
        let _ = tokio::task::spawn_blocking(move || {
            asked.client().fetch_metadata(None, Duration::from_secs(2))
        })
        .await;
        if let Some(reason) = witness.context().last() {
            if let Some(setting) = misconfigured(&reason) {
                bail!(
                    "the broker at {} (--kafka-brokers) refused the connection: {reason}; check {setting}",
                    settings.brokers
                );
            }
            failure = format!("{failure}; last client error: {reason}");
        }
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
