//! One HTTP attempt: the signed POST, its time limit, and what came of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use sluice_schemas::time_format::now_ms;

use crate::backoff::{Outcome, parse_retry_after};
use crate::delivery::Delivery;
use crate::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_header};
use crate::targets::{GuardedResolver, TargetPolicy, host_ip};
use crate::webhook::WebhookRecord;

/// The HTTP client every attempt goes through.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<TargetPolicy>,
}

/// What an attempt returned, with how long it took.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub outcome: Outcome,
    pub latency: Duration,
}

impl Sender {
    pub fn new(policy: TargetPolicy) -> anyhow::Result<Self> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            // A redirect would reach a target nobody checked.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { client, policy })
    }

    /// POSTs `delivery` to `webhook`, signed with its current keys.
    pub async fn attempt(&self, webhook: &WebhookRecord, delivery: &Delivery) -> Attempted {
        let started = Instant::now();
        let outcome = self.post(webhook, delivery).await;
        Attempted {
            outcome,
            latency: started.elapsed(),
        }
    }

    async fn post(&self, webhook: &WebhookRecord, delivery: &Delivery) -> Outcome {
        let url = match reqwest::Url::parse(&webhook.url) {
            Ok(url) => url,
            Err(_) => return Outcome::Refused { status: 0 },
        };
        // IP literals never meet the resolver.
        if let Some(ip) = host_ip(&url)
            && !self.policy.permits(ip)
        {
            return Outcome::NoAnswer {
                cause: format!("{ip} is not an address a webhook may reach"),
            };
        }
        let now = now_ms();
        let timestamp = now / 1000;
        let keys = webhook.signing_keys(now);
        let signature = signature_header(
            keys.iter().map(Vec::as_slice),
            &delivery.delivery_id,
            timestamp,
            delivery.body.as_bytes(),
        );
        let mut headers = HeaderMap::new();
        for (name, value) in &webhook.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.insert(name, value);
            }
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static("sluice-destinations"));
        let fixed = [
            (HEADER_ID, delivery.delivery_id.clone()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_SIGNATURE, signature),
        ];
        for (name, value) in fixed {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        let request = self
            .client
            .post(url)
            .headers(headers)
            .timeout(Duration::from_millis(webhook.timeout_ms))
            .body(delivery.body.clone());
        match request.send().await {
            Ok(response) => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| parse_retry_after(value, now_ms()));
                Outcome::of_status(response.status().as_u16(), retry_after)
            }
            Err(error) => Outcome::NoAnswer {
                cause: describe(&error),
            },
        }
    }
}

/// Why a request got no answer, without the URL (which may carry a token
/// in its query).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer within the webhook's timeout".into()
    } else if error.is_connect() {
        "cannot connect".into()
    } else if error.is_request() || error.is_body() {
        "the connection failed during the request".into()
    } else {
        "the request failed".into()
    }
}
