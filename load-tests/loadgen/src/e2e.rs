//! End to end: events through the gateway at a constant rate; how long after
//! the gateway's ack each becomes visible in ClickHouse (freshness); and, at
//! the end, whether exactly the acknowledged events are there.
//!
//! Every request carries one probe event (its first). The poller asks
//! ClickHouse every `poll` which of the acknowledged probes are visible, so
//! freshness is measured per request with `poll` resolution, and the query
//! stays small whatever the rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice_schemas::time_format::{format_rfc3339_ms, now_ms};

use crate::events::{EventSpec, make_event};
use crate::schedule::Schedule;
use crate::stats::Latencies;

pub struct E2eLoad {
    pub url: String,
    pub api_key: String,
    pub clickhouse_url: String,
    pub database: String,
    pub rate: f64,
    pub batch: usize,
    pub duration: Duration,
    pub poll: Duration,
    pub spec: EventSpec,
}

/// Probes acknowledged and not yet seen, by event id: when the ack came.
type Pending = Arc<Mutex<HashMap<String, Instant>>>;

pub async fn run(load: E2eLoad) -> anyhow::Result<Value> {
    let run_id = format!("e2e-{:x}", now_ms());
    let client = reqwest::Client::new();
    let clickhouse = clickhouse::Client::default()
        .with_url(&load.clickhouse_url)
        .with_database(&load.database)
        .with_validation(false);
    let pending: Pending = Arc::default();
    let freshness = Arc::new(Mutex::new(Latencies::default()));

    let poller = tokio::spawn(poll_probes(
        clickhouse.clone(),
        pending.clone(),
        freshness.clone(),
        load.poll,
    ));

    let schedule = Schedule::new(load.rate, load.batch);
    let requests = schedule.count_within(load.duration);
    let started = Instant::now();
    let mut sends = Vec::with_capacity(requests as usize);
    for k in 0..requests {
        tokio::time::sleep_until((started + schedule.due(k)).into()).await;
        let body = batch_body(&load, &run_id, k);
        let request = client
            .post(format!("{}/v1/events/batch", load.url))
            .bearer_auth(&load.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send();
        let pending = pending.clone();
        let probe = probe_id(&run_id, k);
        sends.push(tokio::spawn(async move {
            let response = request.await.ok()?;
            if response.status().as_u16() != 202 {
                return None;
            }
            let acked = Instant::now();
            pending.lock().ok()?.insert(probe, acked);
            Some(())
        }));
    }
    let mut acked_requests = 0u64;
    for send in sends {
        if send.await.ok().flatten().is_some() {
            acked_requests += 1;
        }
    }
    let send_seconds = started.elapsed().as_secs_f64();

    // Wait for the stragglers, then stop polling.
    let give_up = Instant::now() + Duration::from_secs(60);
    while pending.lock().map(|p| !p.is_empty()).unwrap_or(false) && Instant::now() < give_up {
        tokio::time::sleep(load.poll).await;
    }
    poller.abort();
    let unseen = pending.lock().map(|p| p.len()).unwrap_or(0);

    let acked_events = acked_requests * load.batch as u64;
    let visible: u64 = clickhouse
        .query("SELECT count() FROM events FINAL WHERE startsWith(event_id, ?)")
        .bind(format!("{run_id}-"))
        .fetch_one()
        .await
        .context("cannot count the run's events in ClickHouse")?;
    let freshness = freshness.lock().map(|f| f.summary()).unwrap_or(Value::Null);
    if unseen > 0 {
        bail!("{unseen} acknowledged probes never became visible within 60 s");
    }
    Ok(json!({
        "mode": "e2e",
        "run_id": run_id,
        "target_events_per_s": load.rate,
        "batch": load.batch,
        "seconds": send_seconds,
        "requests": requests,
        "requests_acked": acked_requests,
        "events_acked": acked_events,
        "events_visible": visible,
        "exact": visible == acked_events,
        "freshness_ms": freshness,
    }))
}

fn probe_id(run_id: &str, request: u64) -> String {
    format!("{run_id}-{request:08x}-0000")
}

/// One request's events: realistic ones from the seed's stream, with ids of
/// this run and event times of now (so they fall in open windows).
fn batch_body(load: &E2eLoad, run_id: &str, request: u64) -> Vec<u8> {
    let now = format_rfc3339_ms(now_ms());
    let events: Vec<Value> = (0..load.batch as u64)
        .map(|i| {
            let mut event = make_event(&load.spec, request * load.batch as u64 + i);
            event["event_id"] = json!(format!("{run_id}-{request:08x}-{i:04x}"));
            event["timestamp"] = json!(now);
            event
        })
        .collect();
    serde_json::to_vec(&json!({ "events": events })).unwrap_or_default()
}

async fn poll_probes(
    clickhouse: clickhouse::Client,
    pending: Pending,
    freshness: Arc<Mutex<Latencies>>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<String> = match pending.lock() {
            Ok(pending) => pending.keys().cloned().collect(),
            Err(_) => return,
        };
        if ids.is_empty() {
            continue;
        }
        let seen = clickhouse
            .query("SELECT event_id FROM events WHERE has(?, event_id)")
            .bind(ids)
            .fetch_all::<String>()
            .await;
        let Ok(seen) = seen else {
            continue;
        };
        let now = Instant::now();
        let (Ok(mut pending), Ok(mut freshness)) = (pending.lock(), freshness.lock()) else {
            return;
        };
        for id in seen {
            if let Some(acked) = pending.remove(&id) {
                freshness.record(now.saturating_duration_since(acked));
            }
        }
    }
}
