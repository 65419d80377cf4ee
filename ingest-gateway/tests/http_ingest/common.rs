//! Starting a gateway on a test's own topics, and talking to it.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use sluice_ingest_gateway::GatewayConfig;
use sluice_ingest_gateway::config::{IngestSettings, RateLimitSettings};
use sluice_runtime::keys::Scope;
use sluice_runtime::settings::{
    ApiSettings, ConfigFile, LogFormat, ProcessSettings, TelemetrySettings,
};
use sluice_schemas::Event;
use sluice_testkit::{Running, TestEnv, eventually, spawn_service};

pub const ADMIN_TOKEN: &str = "test-admin-token-0001";

pub fn config(env: &TestEnv) -> GatewayConfig {
    GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        api: ApiSettings {
            admin_token: ADMIN_TOKEN.into(),
            session_secret: None,
            session_secret_file: None,
            session_secret_previous: None,
            request_timeout_ms: 30_000,
        },
        ingest: IngestSettings::default(),
        rate_limits: RateLimitSettings::default(),
        kafka: env.kafka.clone(),
        process: ProcessSettings {
            telemetry: TelemetrySettings {
                log_format: LogFormat::Text,
                log_filter: "warn".into(),
                otlp_endpoint: String::new(),
            },
            lifecycle: Default::default(),
            config_file: ConfigFile { config: None },
        },
    }
}

pub fn project(env: &TestEnv) -> String {
    format!("project_{}", env.id)
}

/// A gateway of the test, ready, with an ingest key of the test's project.
pub struct Gateway {
    pub running: Running,
    pub key: String,
    pub client: reqwest::Client,
}

/// What the gateway answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Gateway {
    pub async fn start(env: &TestEnv) -> Self {
        Self::start_with(env, config(env)).await
    }

    pub async fn start_with(env: &TestEnv, config: GatewayConfig) -> Self {
        let key = env.create_key(&project(env), &[Scope::Ingest]).await;
        let gateway = Self::spawn_with(key, config).await;
        gateway.running.wait_ready().await;
        gateway
    }

    /// A gateway with `key`, serving but perhaps not ready.
    pub async fn spawn_with(key: String, config: GatewayConfig) -> Self {
        let running = spawn_service(|listener, shutdown| {
            sluice_ingest_gateway::serve(config, listener, shutdown)
        })
        .await;
        Self {
            running,
            key,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.running.url(path)
    }

    /// POSTs JSON with the gateway's key.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(&self.key)
                .json(body),
        )
        .await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        // Every answer has a JSON body, but a 204 (a CORS preflight's).
        let body = if status == 204 && text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("a JSON body, got {status}: {text:?}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Waits until a request with `key` is answered `status` (keys take a
    /// moment to reach a gateway's store).
    pub async fn eventually_status(
        &self,
        what: &str,
        status: u16,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Answer {
        eventually(what, Duration::from_secs(15), || {
            let request = request();
            async move {
                let response = request.send().await.ok()?;
                if response.status().as_u16() != status {
                    return None;
                }
                let headers = response.headers().clone();
                let body = response.json().await.ok()?;
                Some(Answer {
                    status,
                    headers,
                    body,
                })
            }
        })
        .await
    }
}

/// Event ids of `events`, sorted.
pub fn ids(events: &[Event]) -> Vec<String> {
    let mut ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    ids.sort();
    ids
}

/// The `event_id`s a 2xx batch answer says were accepted, sorted.
pub fn accepted_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["accepted"]
        .as_array()
        .expect("an accepted list")
        .iter()
        .map(|a| a["event_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

pub fn now_rfc3339(offset_ms: i64) -> String {
    sluice_schemas::time_format::format_rfc3339_ms(
        sluice_schemas::time_format::now_ms() + offset_ms,
    )
}

/// The gateway binary on `port`, on `env`'s topics at `brokers` (with
/// idempotence off, as the tests' tansu needs).
pub fn gateway_command(env: &TestEnv, brokers: &str, port: u16) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice-ingest-gateway"));
    command
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_KAFKA_BROKERS", brokers)
        .env("SLUICE_KAFKA_EVENTS_TOPIC", &env.kafka.events_topic)
        .env("SLUICE_KAFKA_DLQ_TOPIC", &env.kafka.dlq_topic)
        .env("SLUICE_KAFKA_KEYS_TOPIC", &env.kafka.keys_topic)
        .env("SLUICE_KAFKA_ACCESS_TOPIC", &env.kafka.access_topic)
        .env("SLUICE_KAFKA_IDEMPOTENCE", "false");
    command
}
