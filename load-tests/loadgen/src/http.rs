//! HTTP ingest load: `connections` workers POST pre-built batches, either as
//! fast as answers come back (closed loop) or on a fixed schedule (open loop).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use reqwest::header::{self, HeaderValue};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::events::Template;
use crate::schedule::Schedule;
use crate::stats::{Tally, round};

/// The user agent the loadgen sends; the Kafka mode puts the same one into its
/// events so that both modes produce records of the same size.
pub const USER_AGENT: &str = concat!("sluice-loadgen/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
pub struct HttpLoad {
    /// Full URL of the ingest endpoint.
    pub url: String,
    pub api_key: String,
    /// Events per request.
    pub batch: usize,
    pub connections: usize,
    /// Unmeasured time at the start, to open connections and warm the broker.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Open loop at this many events per second; closed loop when `None`.
    pub rate: Option<f64>,
    pub timeout: Duration,
    /// Send a W3C `traceparent` with every request (one fixed value: the
    /// gateway's work per request is the same whatever its ids).
    pub traceparent: bool,
}

/// The `traceparent` of `--traceparent` (sampled, so the gateway's spans
/// that continue it are exported).
const TRACEPARENT: &str = "00-5ef1ce5ef1ce5ef1ce5ef1ce5ef1ce00-5ef1ce5ef1ce5e00-01";

/// What a run saw.
#[derive(Debug)]
pub struct HttpOutcome {
    /// Requests answered (or failed) after the warm-up.
    pub tally: Tally,
    /// From the end of the warm-up to the last answer.
    pub window: Duration,
    /// Requests sent in all, warm-up included.
    pub sent: u64,
}

/// Runs the load. Requests count when their answer comes after the warm-up;
/// none is sent after the end.
pub async fn run(load: &HttpLoad, bodies: Arc<Vec<Template>>) -> anyhow::Result<HttpOutcome> {
    let client = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .pool_max_idle_per_host(load.connections)
        .tcp_nodelay(true)
        .timeout(load.timeout)
        .build()
        .context("cannot build the HTTP client")?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", load.api_key))
        .context("the API key is not a valid header value")?;

    let start = Instant::now();
    let shared = Arc::new(Shared {
        client,
        bearer,
        url: load.url.clone(),
        bodies,
        traceparent: load
            .traceparent
            .then(|| HeaderValue::from_static(TRACEPARENT)),
        batch: load.batch as u64,
        next: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        measure_from: start + load.warmup,
        end: start + load.warmup + load.duration,
        start,
        schedule: load.rate.map(|rate| Schedule::new(rate, load.batch)),
        last_answer: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..load.connections)
        .map(|_| tokio::spawn(worker(shared.clone())))
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(&worker.await.context("a load worker panicked")?);
    }
    let last_answer =
        shared.start + Duration::from_micros(shared.last_answer.load(Ordering::Relaxed));
    let window = last_answer
        .saturating_duration_since(shared.measure_from)
        .max(load.duration);
    Ok(HttpOutcome {
        tally,
        window,
        sent: shared.sent.load(Ordering::Relaxed),
    })
}

struct Shared {
    client: reqwest::Client,
    bearer: HeaderValue,
    url: String,
    bodies: Arc<Vec<Template>>,
    traceparent: Option<HeaderValue>,
    batch: u64,
    /// The next request number; also numbers the events for unique ids.
    next: AtomicU64,
    sent: AtomicU64,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    schedule: Option<Schedule>,
    /// Latest answer to a measured request, µs after `start`.
    last_answer: AtomicU64,
}

async fn worker(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    loop {
        let k = shared.next.fetch_add(1, Ordering::Relaxed);
        // Open loop: the due time, however late this worker gets to it.
        let due = match shared.schedule {
            Some(schedule) => {
                let due = shared.start + schedule.due(k);
                if due >= shared.end {
                    break;
                }
                tokio::time::sleep_until(due).await;
                due
            }
            None => Instant::now(),
        };
        // A server slower than the schedule leaves requests unsent at the end;
        // the report counts them rather than letting the run overstay.
        if due >= shared.end || Instant::now() >= shared.end {
            break;
        }
        let template = &shared.bodies[(k % shared.bodies.len() as u64) as usize];
        let body = template.stamp(k * shared.batch);
        let sent = Instant::now();
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let outcome = post(&shared, body).await;
        let answered = Instant::now();
        if answered < shared.measure_from {
            continue;
        }
        let since_start = u64::try_from((answered - shared.start).as_micros()).unwrap_or(u64::MAX);
        shared.last_answer.fetch_max(since_start, Ordering::Relaxed);
        tally.requests += 1;
        match outcome {
            Ok(Answer { status, acked }) => {
                *tally.statuses.entry(status).or_default() += 1;
                if (200..300).contains(&status) {
                    let acked = acked.unwrap_or(shared.batch);
                    tally.events_acked += acked;
                    tally.events_refused += shared.batch - acked;
                }
                tally.latency.record(answered - due);
                tally.service.record(answered - sent);
                tally.send_lag.record(sent - due);
            }
            Err(error) => {
                let kind = if error.is_timeout() {
                    "timeout"
                } else if error.is_connect() {
                    "connect"
                } else {
                    "other"
                };
                *tally.errors.entry(kind).or_default() += 1;
            }
        }
    }
    tally
}

/// A request's answer: its status and, for a 207, how many of its events
/// were acknowledged.
struct Answer {
    status: u16,
    acked: Option<u64>,
}

async fn post(shared: &Shared, body: Vec<u8>) -> reqwest::Result<Answer> {
    let mut request = shared
        .client
        .post(&shared.url)
        .header(header::AUTHORIZATION, shared.bearer.clone())
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(traceparent) = &shared.traceparent {
        request = request.header("traceparent", traceparent.clone());
    }
    let response = request.body(body).send().await?;
    let status = response.status().as_u16();
    // Read the whole answer so the connection goes back to the pool.
    let body = response.bytes().await?;
    let acked = (status == MULTI_STATUS).then(|| accepted_in(&body).min(shared.batch));
    Ok(Answer { status, acked })
}

/// 207 from the batch endpoint: some events were refused, and the body's
/// `accepted` array lists the others.
const MULTI_STATUS: u16 = 207;

fn accepted_in(body: &[u8]) -> u64 {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|answer| Some(answer.get("accepted")?.as_array()?.len() as u64))
        .unwrap_or(0)
}

/// The run's result as one JSON object.
pub fn report(load: &HttpLoad, outcome: &HttpOutcome, event_bytes: f64) -> Value {
    let tally = &outcome.tally;
    let seconds = outcome.window.as_secs_f64();
    let statuses: serde_json::Map<String, Value> = tally
        .statuses
        .iter()
        .map(|(status, n)| (status.to_string(), json!(n)))
        .collect();
    let errors: serde_json::Map<String, Value> = tally
        .errors
        .iter()
        .map(|(kind, n)| ((*kind).to_owned(), json!(n)))
        .collect();
    let mut report = json!({
        "mode": "http",
        "loop": if load.rate.is_some() { "open" } else { "closed" },
        "url": load.url,
        "batch": load.batch,
        "event_bytes": round(event_bytes, 1),
        "connections": load.connections,
        "target_events_per_s": load.rate,
        "seconds": round(seconds, 3),
        "requests": tally.requests,
        "events_acked": tally.events_acked,
        "events_refused": tally.events_refused,
        "events_per_s": round(tally.events_acked as f64 / seconds, 1),
        "requests_per_s": round(tally.requests as f64 / seconds, 1),
        "statuses": statuses,
        "errors": errors,
        "latency_ms": tally.latency.summary(),
    });
    // In a closed loop every request leaves when it is due: nothing to add.
    if let Some(rate) = load.rate {
        let schedule = Schedule::new(rate, load.batch);
        let due = schedule.count_within(load.warmup + load.duration);
        report["requests_unsent"] = json!(due.saturating_sub(outcome.sent));
        report["service_ms"] = tally.service.summary();
        report["send_lag_ms"] = tally.send_lag.summary();
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_accepted_events_of_a_partial_batch() {
        let body = br#"{"accepted":[{"index":0,"event_id":"a"},{"index":2,"event_id":"c"}],
                        "rejected":[{"index":1,"errors":[]}]}"#;
        assert_eq!(accepted_in(body), 2);
        assert_eq!(accepted_in(b"not json"), 0);
    }
}
