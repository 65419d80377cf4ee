//! End to end: events through the gateway at a constant rate; how long after
//! the gateway's ack each becomes visible through the query API (freshness);
//! and, at the end, a wait until the query API counts exactly the
//! acknowledged events.
//!
//! Every event of a run carries the property `e2e_run` (the run's id), and
//! the first event of every request is a probe, tagged `e2e-probe`. The
//! poller asks `GET /v1/events` every `poll` for the run's probes whose event
//! time is at or after the oldest one still pending, so freshness is measured
//! per request with `poll` resolution and the pages stay small whatever the
//! rate. The final count comes from `GET /v1/metrics` (`count`, raw path,
//! every retried copy counted once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice_schemas::time_format::{format_rfc3339_ms, now_ms};

use crate::events::{EventSpec, make_event};
use crate::schedule::Schedule;
use crate::stats::Latencies;

/// The property that marks every event of a run.
const RUN_PROPERTY: &str = "e2e_run";
/// The tag of each request's probe event.
const PROBE_TAG: &str = "e2e-probe";
/// Most pages of probes read in one poll.
const MAX_PAGES_PER_POLL: usize = 20;

pub struct E2eLoad {
    pub url: String,
    pub api_key: String,
    pub query_url: String,
    pub read_key: String,
    pub rate: f64,
    pub batch: usize,
    pub duration: Duration,
    pub poll: Duration,
    pub settle: Duration,
    pub spec: EventSpec,
}

/// A probe acknowledged and not yet seen.
struct PendingProbe {
    acked: Instant,
    event_time_ms: i64,
}

/// Probes acknowledged and not yet seen, by event id.
type Pending = Arc<Mutex<HashMap<String, PendingProbe>>>;

/// Reads the query API with a `read` key.
#[derive(Clone)]
struct QueryApi {
    client: reqwest::Client,
    url: String,
    key: String,
    run_id: String,
}

pub async fn run(load: E2eLoad) -> anyhow::Result<Value> {
    let run_id = format!("e2e-{:x}", now_ms());
    let started_ms = now_ms();
    let client = reqwest::Client::new();
    let query = QueryApi {
        client: client.clone(),
        url: load.query_url.trim_end_matches('/').to_owned(),
        key: load.read_key.clone(),
        run_id: run_id.clone(),
    };
    // Fail before sending anything if the key cannot read.
    query.count(started_ms).await?;
    let pending: Pending = Arc::default();
    let freshness = Arc::new(Mutex::new(Latencies::default()));

    let poller = tokio::spawn(poll_probes(
        query.clone(),
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
        let event_time_ms = now_ms();
        let body = batch_body(&load, &run_id, k, event_time_ms);
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
            pending.lock().ok()?.insert(
                probe,
                PendingProbe {
                    acked,
                    event_time_ms,
                },
            );
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
    let acked_events = acked_requests * load.batch as u64;

    // Wait for the stragglers, then stop polling.
    let give_up = Instant::now() + load.settle;
    while pending.lock().map(|p| !p.is_empty()).unwrap_or(false) && Instant::now() < give_up {
        tokio::time::sleep(load.poll).await;
    }
    poller.abort();
    let unseen = pending.lock().map(|p| p.len()).unwrap_or(0);
    if unseen > 0 {
        bail!(
            "{unseen} acknowledged probes never became visible through the query API within {:?}",
            load.settle
        );
    }

    // Every probe is visible; wait until the count is exactly the acked events.
    let counting = Instant::now();
    let visible = loop {
        let visible = query.count(started_ms).await?;
        if visible > acked_events {
            bail!(
                "the query API counts {visible} events of run {run_id}, more than the \
                 {acked_events} acknowledged"
            );
        }
        if visible == acked_events {
            break visible;
        }
        if counting.elapsed() >= load.settle {
            bail!(
                "the query API counts {visible} events of run {run_id} after {:?}, \
                 not the {acked_events} acknowledged",
                load.settle
            );
        }
        tokio::time::sleep(load.poll).await;
    };
    let freshness = freshness.lock().map(|f| f.summary()).unwrap_or(Value::Null);
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
        "count_wait_ms": counting.elapsed().as_secs_f64() * 1e3,
        "freshness_ms": freshness,
    }))
}

fn probe_id(run_id: &str, request: u64) -> String {
    format!("{run_id}-{request:08x}-0000")
}

/// One request's events: realistic ones from the seed's stream, with ids and
/// the marker property of this run and event times of now (so they fall in
/// open windows); the first is the probe.
fn batch_body(load: &E2eLoad, run_id: &str, request: u64, event_time_ms: i64) -> Vec<u8> {
    let now = format_rfc3339_ms(event_time_ms);
    let events: Vec<Value> = (0..load.batch as u64)
        .map(|i| {
            let mut event = make_event(&load.spec, request * load.batch as u64 + i);
            event["event_id"] = json!(format!("{run_id}-{request:08x}-{i:04x}"));
            event["timestamp"] = json!(now);
            event["properties"][RUN_PROPERTY] = json!(run_id);
            if i == 0
                && let Some(tags) = event["tags"].as_array_mut()
            {
                tags.push(json!(PROBE_TAG));
            }
            event
        })
        .collect();
    serde_json::to_vec(&json!({ "events": events })).unwrap_or_default()
}

impl QueryApi {
    async fn get(&self, path: &str, params: &[(&str, String)]) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .query(params)
            .send()
            .await
            .with_context(|| format!("cannot reach the query API at {}", self.url))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("the query API's answer to {path} is not JSON"))?;
        if !status.is_success() {
            bail!("the query API answered {status} to {path}: {body}");
        }
        Ok(body)
    }

    fn run_filter(&self) -> (&'static str, String) {
        ("property.e2e_run", self.run_id.clone())
    }

    /// Ids of the run's probes with an event time from `from_ms` on.
    async fn probes_since(&self, from_ms: i64) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES_PER_POLL {
            let mut params = vec![
                self.run_filter(),
                ("tag", PROBE_TAG.to_owned()),
                ("from", from_ms.to_string()),
                ("limit", "1000".to_owned()),
            ];
            if let Some(cursor) = cursor.take() {
                params.push(("cursor", cursor));
            }
            let page = self.get("/v1/events", &params).await?;
            let events = page["events"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            ids.extend(
                events
                    .iter()
                    .filter_map(|e| e["event_id"].as_str().map(str::to_owned)),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        Ok(ids)
    }

    /// How many events of the run the query API counts (exact, raw path).
    async fn count(&self, started_ms: i64) -> anyhow::Result<u64> {
        // A minute either side of the run: whole-day buckets cover it.
        let answer = self
            .get(
                "/v1/metrics",
                &[
                    self.run_filter(),
                    ("interval", "1d".to_owned()),
                    ("metrics", "count".to_owned()),
                    ("exact", "true".to_owned()),
                    ("from", (started_ms - 60_000).to_string()),
                    ("to", (now_ms() + 60_000).to_string()),
                ],
            )
            .await?;
        let rows = answer["rows"]
            .as_array()
            .context("the query API's metrics answer has no rows")?;
        rows.iter()
            .map(|row| row["count"].as_u64().context("a row without a count"))
            .sum()
    }
}

async fn poll_probes(
    query: QueryApi,
    pending: Pending,
    freshness: Arc<Mutex<Latencies>>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let oldest = match pending.lock() {
            Ok(pending) => pending.values().map(|p| p.event_time_ms).min(),
            Err(_) => return,
        };
        let Some(oldest) = oldest else {
            continue;
        };
        // A failed poll is retried at the next tick; the final count is the check.
        let Ok(seen) = query.probes_since(oldest).await else {
            continue;
        };
        let now = Instant::now();
        let (Ok(mut pending), Ok(mut freshness)) = (pending.lock(), freshness.lock()) else {
            return;
        };
        for id in seen {
            if let Some(probe) = pending.remove(&id) {
                freshness.record(now.saturating_duration_since(probe.acked));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> E2eLoad {
        E2eLoad {
            url: String::new(),
            api_key: String::new(),
            query_url: String::new(),
            read_key: String::new(),
            rate: 1.0,
            batch: 3,
            duration: Duration::from_secs(1),
            poll: Duration::from_millis(50),
            settle: Duration::from_secs(1),
            spec: EventSpec {
                seed: 7,
                event_bytes: 300,
                users: 100,
                now_ms: 1_700_000_000_000,
                spread_ms: 60_000,
                stamp_send_time: false,
            },
        }
    }

    #[test]
    fn every_event_is_marked_and_only_the_first_is_a_probe() {
        let body: Value = serde_json::from_slice(&batch_body(&load(), "e2e-1", 7, 0)).unwrap();
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.len(), 3);
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event["properties"][RUN_PROPERTY], "e2e-1");
            let probe = event["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == PROBE_TAG);
            assert_eq!(probe, i == 0, "event {i}");
        }
        assert_eq!(events[0]["event_id"], probe_id("e2e-1", 7));
    }
}
