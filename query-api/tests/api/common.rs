//! The harness: a query API (and, where rollups matter, a gateway and a
//! processor) on the test's own topics and database; generated events; and
//! ground truth computed from the same events, independently of the API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_ingest_gateway::GatewayConfig;
use sluice_ingest_gateway::config::{IngestSettings, RateLimitSettings};
use sluice_loadgen::events::Rng;
use sluice_query_api::QueryConfig;
use sluice_query_api::config::QuerySettings;
use sluice_runtime::keys::Scope;
use sluice_runtime::settings::{
    ApiSettings, ConfigFile, LogFormat, ProcessSettings, TelemetrySettings,
};
use sluice_schemas::Event;
use sluice_schemas::rollup::hll;
use sluice_stream_processor::ProcessorConfig;
use sluice_stream_processor::config::{ProcessorSettings, PropertyKeys};
use sluice_stream_processor::sink::EventRow;
use sluice_testkit::{Running, TestEnv, eventually, spawn_service};

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;

fn telemetry() -> TelemetrySettings {
    TelemetrySettings {
        log_format: LogFormat::Text,
        log_filter: "warn".into(),
        otlp_endpoint: String::new(),
    }
}

fn api_settings() -> ApiSettings {
    ApiSettings {
        admin_token: String::new(),
        session_secret: None,
        session_secret_file: None,
        session_secret_previous: None,
        request_timeout_ms: 30_000,
    }
}

pub fn project(env: &TestEnv, name: &str) -> String {
    format!("{name}_{}", env.id)
}

/// A query API on `env`, ready, and a client.
pub struct Api {
    pub running: Running,
    pub client: reqwest::Client,
}

/// What an endpoint answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("JSON from {}: {:?}", self.status, self.text))
    }
}

/// The API's settings on `env`'s topics and database.
pub fn query_config(env: &TestEnv) -> QueryConfig {
    QueryConfig {
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
    }
}

impl Api {
    pub async fn start(env: &TestEnv) -> Self {
        Self::start_with(env, QuerySettings::default()).await
    }

    pub async fn start_with(env: &TestEnv, query: QuerySettings) -> Self {
        // The processor's part: the API only reads, and waits for the tables.
        env.ensure_schema().await;
        let config = QueryConfig {
            query,
            ..query_config(env)
        };
        let running =
            spawn_service(|listener, shutdown| sluice_query_api::serve(config, listener, shutdown))
                .await;
        running.wait_ready().await;
        Self {
            running,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.running.url(path)
    }

    /// GET `path` (with its query string) with `key`.
    pub async fn get(&self, path: &str, key: &str) -> Answer {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("the query API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        Answer {
            status,
            headers,
            text,
        }
    }

    /// GET `path` and expect 200 with JSON; keys take a moment to reach the
    /// API's key store, so a 401 is retried for a while.
    pub async fn get_ok(&self, path: &str, key: &str) -> Value {
        let answer = eventually(
            "an answer other than 401",
            Duration::from_secs(15),
            || async {
                let answer = self.get(path, key).await;
                (answer.status != 401).then_some(answer)
            },
        )
        .await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        answer.json()
    }
}

/// Every page of `path` (which has a `limit`), following cursors.
pub async fn all_pages(api: &Api, key: &str, path: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(cursor) => format!("{path}&cursor={cursor}"),
            None => path.to_owned(),
        };
        let page = api.get_ok(&url, key).await;
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return events,
        }
    }
}

/// A read key of `project`, known to the API once this returns.
pub async fn read_key(env: &TestEnv, api: &Api, project: &str) -> String {
    let key = env.create_key(project, &[Scope::Read]).await;
    api.get_ok("/v1/events?limit=1", &key).await;
    key
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
    let running = spawn_service(|listener, shutdown| {
        sluice_ingest_gateway::serve(config, listener, shutdown)
    })
    .await;
    running.wait_ready().await;
    running
}

pub async fn start_processor(env: &TestEnv) -> Running {
    let config = ProcessorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        processor: ProcessorSettings {
            consumer_group: format!("group_{}", env.id),
            batch_max_rows: 5_000,
            batch_max_ms: 200,
            session_timeout_ms: 6_000,
            allowed_lateness_ms: 1_000,
            idle_timeout_ms: 1_000,
            live_interval_ms: 100,
            rollup_properties: PropertyKeys(vec!["plan".into()]),
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
    let running = spawn_service(|listener, shutdown| {
        sluice_stream_processor::serve(config, listener, shutdown)
    })
    .await;
    running.wait_ready().await;
    running
}

/// The event as a producer sends it to the gateway.
pub fn wire_json(event: &Event) -> Value {
    let mut body = json!({
        "event_id": event.event_id,
        "type": event.event_type,
        "timestamp": event.timestamp_ms,
        "tags": event.tags,
        "properties": serde_json::from_str::<Value>(&event.properties).unwrap(),
    });
    for (name, value) in [
        ("user_id", &event.user_id),
        ("session_id", &event.session_id),
        ("source", &event.source),
        ("status", &event.status),
    ] {
        if let Some(value) = value {
            body[name] = json!(value);
        }
    }
    if let Some(duration) = event.duration_ms {
        body["duration_ms"] = json!(duration);
    }
    body
}

/// Sends `events` through the gateway in batches; all must be accepted.
pub async fn send_through_gateway(gateway: &Running, key: &str, events: &[Event]) {
    let client = reqwest::Client::new();
    for batch in events.chunks(500) {
        let body = json!({"events": batch.iter().map(wire_json).collect::<Vec<_>>()});
        let response = eventually(
            "the gateway accepts the batch",
            Duration::from_secs(15),
            || {
                let request = client
                    .post(gateway.url("/v1/events/batch"))
                    .bearer_auth(key)
                    .json(&body)
                    .send();
                async move {
                    let response = request.await.ok()?;
                    (response.status().as_u16() != 401).then_some(response)
                }
            },
        )
        .await;
        assert_eq!(
            response.status().as_u16(),
            202,
            "{:?}",
            response.text().await
        );
    }
}

/// Inserts `events` straight into the events table, as the processor would.
pub async fn insert_events(client: &clickhouse::Client, events: &[Event]) {
    let mut insert = client.insert::<EventRow>("events").await.expect("insert");
    for (offset, event) in events.iter().enumerate() {
        insert
            .write(&EventRow::new(event.clone(), 0, offset as i64))
            .await
            .expect("row");
    }
    insert.end().await.expect("insert ends");
}

/// `count` events of `project` in `[from_ms, from_ms + span_ms)`, varied in
/// every field the API filters or aggregates on.
pub fn generate(project: &str, count: usize, from_ms: i64, span_ms: i64, seed: u64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|index| {
            let some = |rng: &mut Rng, value: String, percent: u64| {
                (rng.below(100) < percent).then_some(value)
            };
            let user = format!("user-{}", rng.below(60));
            let session = format!("session-{}", rng.below(150));
            let source = rng.pick(&["web", "ios", "android"]).to_owned();
            let status = rng.pick(&["200", "200", "404", "500"]).to_owned();
            let plan = rng.pick(&["free", "pro", "team"]);
            let tier = rng.below(3);
            Event {
                event_id: format!("ev-{seed}-{index:06}"),
                project_id: project.to_owned(),
                event_type: rng.pick(&["page_view", "click", "signup"]).to_owned(),
                timestamp_ms: from_ms + rng.below(span_ms as u64) as i64,
                received_at_ms: 0,
                user_id: some(&mut rng, user, 90),
                session_id: some(&mut rng, session, 95),
                source: some(&mut rng, source, 85),
                duration_ms: (rng.below(100) < 80).then(|| rng.below(2_000_000) as f64 / 1000.0),
                status: some(&mut rng, status, 90),
                tags: if rng.below(3) == 0 {
                    vec!["beta".into()]
                } else {
                    Vec::new()
                },
                // A tenth of the events have no plan.
                properties: if index % 10 == 3 {
                    json!({"tier": tier}).to_string()
                } else {
                    json!({"plan": plan, "tier": tier}).to_string()
                },
                client_ip: None,
                user_agent: None,
            }
        })
        .collect()
}

/// What the events of one bucket and group add up to.
#[derive(Debug, Default)]
pub struct Truth {
    pub count: u64,
    pub users: BTreeSet<String>,
    pub sessions: BTreeSet<String>,
    pub durations: Vec<f64>,
    pub statuses: BTreeMap<String, u64>,
}

impl Truth {
    /// Exactly as documented: microseconds summed, then milliseconds.
    pub fn duration_sum(&self) -> f64 {
        self.durations
            .iter()
            .map(|d| (d * 1000.0).round() as u64)
            .sum::<u64>() as f64
            / 1000.0
    }

    /// The value at rank floor(q * (n - 1)).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut sorted = self.durations.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = (q * (sorted.len() as f64 - 1.0)).floor();
        (!sorted.is_empty()).then(|| sorted[rank as usize])
    }

    pub fn dominant_status(&self) -> Option<String> {
        let max = self.statuses.values().max()?;
        self.statuses
            .iter()
            .find(|(_, count)| *count == max)
            .map(|(status, _)| status.clone())
    }
}

/// Ground truth per (bucket start, group values) of the events `keep` passes.
pub fn truth(
    events: &[Event],
    width_ms: i64,
    offset_ms: i64,
    group: impl Fn(&Event) -> Vec<String>,
    keep: impl Fn(&Event) -> bool,
) -> BTreeMap<(i64, Vec<String>), Truth> {
    let mut truth: BTreeMap<(i64, Vec<String>), Truth> = BTreeMap::new();
    for event in events.iter().filter(|e| keep(e)) {
        let bucket = (event.timestamp_ms + offset_ms).div_euclid(width_ms) * width_ms - offset_ms;
        let cell = truth.entry((bucket, group(event))).or_default();
        cell.count += 1;
        if let Some(user) = &event.user_id {
            cell.users.insert(user.clone());
        }
        if let Some(session) = &event.session_id {
            cell.sessions.insert(session.clone());
        }
        if let Some(duration) = event.duration_ms {
            cell.durations.push(duration);
        }
        if let Some(status) = &event.status {
            *cell.statuses.entry(status.clone()).or_default() += 1;
        }
    }
    truth
}

/// A property's value as group-bys read it: a string's value, other JSON
/// as text, nothing when missing.
pub fn property(event: &Event, key: &str) -> String {
    match serde_json::from_str::<Value>(&event.properties)
        .unwrap()
        .get(key)
    {
        None => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

pub fn ms(rfc3339: &str) -> i64 {
    sluice_schemas::time_format::parse_rfc3339_ms(rfc3339).expect("an RFC 3339 time")
}

/// Every metric the API has, for `metrics=`.
pub const ALL_METRICS: &str = "count,unique_users,unique_sessions,sum_duration,avg_duration,\
    min_duration,max_duration,p50_duration,p90_duration,p95_duration,p99_duration,dominant_status";

fn close(actual: f64, expected: f64, relative: f64) -> bool {
    (actual - expected).abs() <= relative * expected.abs() + 1e-9
}

/// Checks every row of a metrics answer against the truth, for the metrics
/// the row has: counts, sums, min, max, average and dominant status exactly;
/// uniques and quantiles exactly from raw events, within the stated bounds
/// from rollups. Every truth cell must have its row.
pub fn check_rows(
    body: &Value,
    dimensions: &[&str],
    truth: &BTreeMap<(i64, Vec<String>), Truth>,
    exact: bool,
) {
    let rows = body["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), truth.len(), "one row per bucket and group");
    for row in rows {
        let bucket = ms(row["bucket"].as_str().unwrap());
        let group: Vec<String> = dimensions
            .iter()
            .map(|d| row[*d].as_str().unwrap().to_owned())
            .collect();
        let what = format!("row {row}");
        let cell = truth
            .get(&(bucket, group))
            .unwrap_or_else(|| panic!("no truth for {what}"));
        let has = |metric: &str| row.get(metric).is_some();
        assert_eq!(row["count"], json!(cell.count), "{what}");
        let sum = cell.duration_sum();
        if has("sum_duration") {
            assert!(
                close(row["sum_duration"].as_f64().unwrap(), sum, 1e-12),
                "{what}: sum {sum}"
            );
        }
        if has("min_duration") {
            let min = cell.durations.iter().copied().reduce(f64::min);
            assert_eq!(row["min_duration"].as_f64(), min, "{what}");
        }
        if has("max_duration") {
            let max = cell.durations.iter().copied().reduce(f64::max);
            assert_eq!(row["max_duration"].as_f64(), max, "{what}");
        }
        if has("avg_duration") {
            match row["avg_duration"].as_f64() {
                Some(avg) => assert!(
                    close(avg, sum / cell.durations.len() as f64, 1e-12),
                    "{what}"
                ),
                None => assert!(cell.durations.is_empty(), "{what}"),
            }
        }
        if has("dominant_status") {
            assert_eq!(
                row["dominant_status"].as_str().map(str::to_owned),
                cell.dominant_status(),
                "{what}"
            );
        }
        for (metric, truth) in [
            ("unique_users", &cell.users),
            ("unique_sessions", &cell.sessions),
        ] {
            // Exact up to EXACT_MAX distinct ids; above, HyperLogLog's
            // 0.81 % standard error: allow three of them.
            let unique_bound = if exact || truth.len() <= hll::EXACT_MAX {
                0.0
            } else {
                3.0 * 0.0081
            };
            if has(metric) {
                let actual = row[metric].as_f64().unwrap();
                assert!(
                    close(actual, truth.len() as f64, unique_bound),
                    "{what}: {metric} {}",
                    truth.len()
                );
            }
        }
        let quantile_bound = if exact { 0.0 } else { 0.01 };
        for (metric, q) in [
            ("p50_duration", 0.5),
            ("p90_duration", 0.9),
            ("p95_duration", 0.95),
            ("p99_duration", 0.99),
        ] {
            if !has(metric) {
                continue;
            }
            match (row[metric].as_f64(), cell.quantile(q)) {
                (Some(actual), Some(expected)) => {
                    assert!(
                        close(actual, expected, quantile_bound),
                        "{what}: {metric} {expected}"
                    );
                }
                (actual, expected) => assert_eq!(actual, expected, "{what}: {metric}"),
            }
        }
    }
}
