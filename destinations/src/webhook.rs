//! A webhook as the webhooks topic keeps it: where it points, its rules, its
//! delivery settings and its signing secrets. The topic is compacted and
//! tailed by every instance ([`sluice_runtime::record_topic`]), as the keys
//! topic is, so configuration needs no database and a change reaches every
//! instance within about a second.
//!
//! Unlike an API key, a signing secret must be kept as itself (a receiver
//! checks an HMAC made with it), so the topic holds it: restrict the topic
//! with broker ACLs as you would the keys topic. No view, log line or error
//! shows it; the API shows it once, when it is made.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_runtime::record_topic::StoredRecord;

use crate::batch::BatchConfig;
use crate::rules::{Matcher, Rule};
use crate::signing::secret_key;

/// The readiness check that passes once the webhooks topic was read.
pub const WEBHOOKS_CHECK: &str = "webhooks";

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRecord {
    /// `wh_` and 24 hex digits.
    pub webhook_id: String,
    pub project_id: String,
    pub url: String,
    #[serde(default)]
    pub description: String,
    pub rules: Vec<Rule>,
    /// Extra request headers (a receiver's own token, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: u64,
    /// Attempts before a delivery goes to the dead-letter topic.
    pub max_attempts: u32,
    pub enabled: bool,
    /// Batch mode: up to this many events per request; absent (as in
    /// records written before batch mode) means one event per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchConfig>,
    /// The current `whsec_` secret.
    pub secret: String,
    /// The secret it replaced, still signed with until `previous_secret_until_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_until_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at_ms: Option<i64>,
}

impl std::fmt::Debug for WebhookRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRecord")
            .field("webhook_id", &self.webhook_id)
            .field("project_id", &self.project_id)
            .field("url", &self.url)
            .field("rules", &self.rules.len())
            .field("enabled", &self.enabled)
            .field("batch", &self.batch)
            .field("secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl StoredRecord for WebhookRecord {
    const KIND: &'static str = "webhook";
    const READINESS_CHECK: &'static str = WEBHOOKS_CHECK;
    const THREAD_NAME: &'static str = "webhook store";

    fn id(&self) -> &str {
        &self.webhook_id
    }
}

impl WebhookRecord {
    pub fn is_live(&self) -> bool {
        self.deleted_at_ms.is_none()
    }

    /// Whether deliveries are made: live and enabled.
    pub fn is_active(&self) -> bool {
        self.is_live() && self.enabled
    }

    /// The HMAC keys to sign with at `now_ms`: the current secret's, and the
    /// previous one's while it is still valid.
    pub fn signing_keys(&self, now_ms: i64) -> Vec<Vec<u8>> {
        let previous = self.previous_secret.as_deref().filter(|_| {
            self.previous_secret_until_ms
                .is_some_and(|until| now_ms < until)
        });
        std::iter::once(self.secret.as_str())
            .chain(previous)
            .filter_map(|secret| secret_key(secret).ok())
            .collect()
    }

    pub fn matcher(&self) -> Matcher {
        Matcher::new(&self.rules)
    }
}

/// A fresh webhook id.
pub fn new_webhook_id() -> String {
    format!("wh_{}", &uuid::Uuid::now_v7().simple().to_string()[..24])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::generate_secret;

    pub(crate) fn record() -> WebhookRecord {
        WebhookRecord {
            webhook_id: new_webhook_id(),
            project_id: "shop".into(),
            url: "https://example.com/hook".into(),
            description: String::new(),
            rules: vec![Rule::default()],
            headers: BTreeMap::new(),
            timeout_ms: 5_000,
            max_attempts: 5,
            enabled: true,
            batch: None,
            secret: generate_secret(),
            previous_secret: None,
            previous_secret_until_ms: None,
            created_at_ms: 1,
            updated_at_ms: 1,
            deleted_at_ms: None,
        }
    }

    #[test]
    fn the_previous_secret_signs_until_it_expires() {
        let mut webhook = record();
        assert_eq!(webhook.signing_keys(10).len(), 1);
        webhook.previous_secret = Some(generate_secret());
        webhook.previous_secret_until_ms = Some(100);
        assert_eq!(webhook.signing_keys(99).len(), 2);
        assert_eq!(webhook.signing_keys(100).len(), 1);
    }

    #[test]
    fn a_record_from_before_batch_mode_loads_without_batching() {
        let mut old = serde_json::to_value(record()).unwrap();
        assert!(old.get("batch").is_none());
        old.as_object_mut().unwrap().remove("batch");
        let loaded: WebhookRecord = serde_json::from_value(old).unwrap();
        assert_eq!(loaded.batch, None);
        let mut batching = record();
        batching.batch = Some(BatchConfig {
            max_events: 10,
            max_wait_ms: 500,
        });
        let text = serde_json::to_string(&batching).unwrap();
        assert_eq!(
            serde_json::from_str::<WebhookRecord>(&text).unwrap(),
            batching
        );
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let webhook = record();
        let shown = format!("{webhook:?}");
        assert!(!shown.contains(&webhook.secret[6..]), "{shown}");
        let text = serde_json::to_string(&webhook).unwrap();
        assert_eq!(
            serde_json::from_str::<WebhookRecord>(&text).unwrap(),
            webhook
        );
    }
}
