//! A stand-in webhook receiver for the destinations benchmark (`bench
//! destinations`): it answers every POST with 200 at once and records, per
//! delivery, when it arrived and how long after its event's send time (the
//! `sent_us` property that `kafka --stamp-send-time` sets). `GET /report`
//! answers with the report so far; on SIGTERM or SIGINT it is printed.
//!
//! Deliveries are counted per distinct event id too, so a redelivery shows
//! as `requests` above `distinct_events`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::events::SENT_US_PROPERTY;
use crate::otlp_sink::serve_until_signal;
use crate::stats::{Latencies, round};

/// What the sink has received so far.
#[derive(Debug, Default)]
pub struct Receipts {
    pub requests: u64,
    /// Bodies that are not a delivery of an event with an id.
    pub unreadable: u64,
    pub event_ids: HashSet<String>,
    /// From the event's send time to its receipt, for stamped events.
    pub latency: Latencies,
    /// First and last receipt, Unix µs.
    pub first_us: Option<u64>,
    pub last_us: u64,
}

impl Receipts {
    /// Records one delivery's `body` received at `now_us`.
    pub fn record(&mut self, body: &[u8], now_us: u64) {
        self.requests += 1;
        self.first_us.get_or_insert(now_us);
        self.last_us = self.last_us.max(now_us);
        let Some((event_id, sent_us)) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|body| delivered_event(&body))
        else {
            self.unreadable += 1;
            return;
        };
        self.event_ids.insert(event_id);
        if let Some(sent_us) = sent_us {
            self.latency
                .record(Duration::from_micros(now_us.saturating_sub(sent_us)));
        }
    }

    /// The report: counts, the receiving window (first to last receipt),
    /// deliveries per second over it, and latency percentiles in ms.
    pub fn report(&self) -> Value {
        let seconds = self
            .first_us
            .map_or(0.0, |first| self.last_us.saturating_sub(first) as f64 / 1e6);
        let per_second = if seconds > 0.0 {
            round(self.requests as f64 / seconds, 1)
        } else {
            0.0
        };
        json!({
            "mode": "webhook-sink",
            "requests": self.requests,
            "distinct_events": self.event_ids.len(),
            "unreadable": self.unreadable,
            "first_receipt_us": self.first_us,
            "last_receipt_us": self.last_us,
            "seconds": round(seconds, 3),
            "deliveries_per_s": per_second,
            "stamped": self.latency.count(),
            "latency_ms": self.latency.summary(),
        })
    }
}

/// The event id of a delivery's body (`{"data":{"event_id":…,
/// "properties":{…}}}`) and its send time, when the event carries one.
/// `properties` may be an object or its JSON text; a zero send time (a
/// warm-up record's) is none.
pub fn delivered_event(body: &Value) -> Option<(String, Option<u64>)> {
    let data = body.get("data")?;
    let event_id = data.get("event_id")?.as_str()?.to_owned();
    let sent = |properties: &Value| {
        properties
            .get(SENT_US_PROPERTY)?
            .as_str()?
            .parse::<u64>()
            .ok()
            .filter(|&sent_us| sent_us > 0)
    };
    let sent_us = match data.get("properties") {
        Some(Value::String(text)) => serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|p| sent(&p)),
        Some(properties) => sent(properties),
        None => None,
    };
    Some((event_id, sent_us))
}

type Shared = Arc<Mutex<Receipts>>;

/// Serves on `listen` until a signal; the report of what came.
pub async fn run(listen: SocketAddr) -> anyhow::Result<Value> {
    let receipts = Shared::default();
    let app = Router::new()
        .route("/report", get(report))
        .fallback(receive)
        .with_state(receipts.clone());
    serve_until_signal(listen, app).await?;
    let report = receipts
        .lock()
        .map_err(|_| anyhow::anyhow!("a receiving task panicked"))?
        .report();
    Ok(report)
}

async fn receive(State(receipts): State<Shared>, body: Bytes) -> StatusCode {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        });
    match receipts.lock() {
        Ok(mut receipts) => {
            receipts.record(&body, now_us);
            StatusCode::OK
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn report(State(receipts): State<Shared>) -> Result<Json<Value>, StatusCode> {
    receipts
        .lock()
        .map(|receipts| Json(receipts.report()))
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, properties: &Value) -> Vec<u8> {
        json!({"type": "event", "webhook_id": "wh_1",
               "data": {"event_id": id, "properties": properties}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn reads_the_event_id_and_the_send_time() {
        let body: Value = serde_json::from_slice(&delivery(
            "e1",
            &json!({"sent_us": "1700000000000000", "pad": "x"}),
        ))
        .unwrap();
        assert_eq!(
            delivered_event(&body),
            Some(("e1".into(), Some(1_700_000_000_000_000)))
        );
        let as_text = json!({"data": {"event_id": "e2",
                                      "properties": r#"{"sent_us":"0000000000000042"}"#}});
        assert_eq!(delivered_event(&as_text), Some(("e2".into(), Some(42))));
        let unstamped = json!({"data": {"event_id": "e3", "properties": {}}});
        assert_eq!(delivered_event(&unstamped), Some(("e3".into(), None)));
        let warm_up = json!({"data": {"event_id": "e4",
                                      "properties": {"sent_us": "0000000000000000"}}});
        assert_eq!(delivered_event(&warm_up), Some(("e4".into(), None)));
        assert_eq!(delivered_event(&json!({"data": {}})), None);
    }

    #[test]
    fn the_report_counts_repeats_and_measures_from_the_send() {
        let mut receipts = Receipts::default();
        let sent = 1_700_000_000_000_000u64;
        receipts.record(
            &delivery("a", &json!({"sent_us": sent.to_string()})),
            sent + 10_000,
        );
        receipts.record(
            &delivery("b", &json!({"sent_us": sent.to_string()})),
            sent + 30_000,
        );
        receipts.record(
            &delivery("a", &json!({"sent_us": sent.to_string()})),
            sent + 2_010_000,
        );
        receipts.record(b"not json", sent + 2_010_000);
        let report = receipts.report();
        assert_eq!(report["requests"], 4);
        assert_eq!(report["distinct_events"], 2);
        assert_eq!(report["unreadable"], 1);
        assert_eq!(report["stamped"], 3);
        assert_eq!(report["seconds"], 2.0);
        assert_eq!(report["deliveries_per_s"], 2.0);
        let p50 = report["latency_ms"]["p50"].as_f64().unwrap();
        assert!((p50 - 30.0).abs() < 0.1, "{p50}");
    }

    #[test]
    fn an_empty_sink_reports_zeros() {
        let report = Receipts::default().report();
        assert_eq!(report["requests"], 0);
        assert_eq!(report["deliveries_per_s"], 0.0);
        assert!(report["latency_ms"].is_null());
    }
}
