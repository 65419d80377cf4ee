//! What the cross-service tests share: each service on port 0 against a
//! test's topics and database, a key of its project, and one POST.

#![allow(dead_code)] // each test binary uses a part of this module

use serde_json::Value;
use sluice_ingest_gateway::GatewayConfig;
use sluice_ingest_gateway::config::{IngestSettings, RateLimitSettings};
use sluice_query_api::QueryConfig;
use sluice_query_api::config::QuerySettings;
use sluice_runtime::keys::Scope;
use sluice_runtime::settings::{
    ApiSettings, ConfigFile, LogFormat, ProcessSettings, TelemetrySettings,
};
use sluice_stream_processor::ProcessorConfig;
use sluice_stream_processor::config::ProcessorSettings;
use sluice_testkit::{Running, TestEnv, spawn_service};

pub fn telemetry() -> TelemetrySettings {
    TelemetrySettings {
        log_format: LogFormat::Text,
        log_filter: "warn".into(),
        otlp_endpoint: String::new(),
    }
}

pub fn project(env: &TestEnv) -> String {
    format!("project_{}", env.id)
}

pub fn api_settings() -> ApiSettings {
    ApiSettings {
        admin_token: String::new(),
        session_secret: None,
        session_secret_file: None,
        session_secret_previous: None,
        request_timeout_ms: 30_000,
    }
}

/// A key of the test's project that may send and read.
pub async fn key_of(env: &TestEnv) -> String {
    env.create_key(&project(env), &[Scope::Ingest, Scope::Read])
        .await
}

pub async fn start_gateway(env: &TestEnv) -> Running {
    let config = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        api: api_settings(),
        ingest: IngestSettings::default(),
        rate_limits: RateLimitSettings::default(),
        kafka: env.kafka.clone(),
        process: ProcessSettings {
            telemetry: telemetry(),
            lifecycle: Default::default(),
            config_file: ConfigFile { config: None },
        },
    };
    spawn_service(|listener, shutdown| sluice_ingest_gateway::serve(config, listener, shutdown))
        .await
}

pub async fn start_processor(env: &TestEnv) -> Running {
    let config = ProcessorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        processor: ProcessorSettings {
            consumer_group: format!("group_{}", env.id),
            batch_max_rows: 1_000,
            batch_max_ms: 200,
            session_timeout_ms: 6_000,
            ..ProcessorSettings::default()
        },
        kafka: env.kafka.clone(),
        clickhouse: env.clickhouse.clone(),
        process: ProcessSettings {
            telemetry: telemetry(),
            lifecycle: Default::default(),
            config_file: ConfigFile { config: None },
        },
    };
    spawn_service(|listener, shutdown| sluice_stream_processor::serve(config, listener, shutdown))
        .await
}

pub async fn start_query_api(env: &TestEnv) -> Running {
    let config = QueryConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        api: api_settings(),
        query: QuerySettings::default(),
        clickhouse: env.clickhouse.clone(),
        kafka: env.kafka.clone(),
        process: ProcessSettings {
            telemetry: telemetry(),
            lifecycle: Default::default(),
            config_file: ConfigFile { config: None },
        },
    };
    spawn_service(|listener, shutdown| sluice_query_api::serve(config, listener, shutdown)).await
}

pub async fn post_event(gateway: &Running, key: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/events"))
        .bearer_auth(key)
        .header("user-agent", "sluice-e2e/1.0")
        .json(body)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}
