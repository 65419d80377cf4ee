//! What a run counts and measures, and how a run's result is printed.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies in microseconds, from 1 µs to 10 minutes, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    fn ms_at(&self, quantile: f64) -> f64 {
        self.0.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// p50, p90, p99, p99.9, max and mean in milliseconds.
    pub fn summary(&self) -> Value {
        if self.0.is_empty() {
            return Value::Null;
        }
        json!({
            "p50": self.ms_at(0.5),
            "p90": self.ms_at(0.9),
            "p95": self.ms_at(0.95),
            "p99": self.ms_at(0.99),
            "p999": self.ms_at(0.999),
            "max": self.0.max() as f64 / 1000.0,
            "mean": self.0.mean() / 1000.0,
            "count": self.0.len(),
        })
    }
}

/// What one worker saw; workers' tallies are merged at the end.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub requests: u64,
    /// Events acknowledged: all of a 2xx answer's, or those a 207 lists as accepted.
    pub events_acked: u64,
    /// Events of 2xx answers that were not acknowledged (refused in a 207).
    pub events_refused: u64,
    /// Answers by HTTP status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an answer, by kind (connect, timeout, other).
    pub errors: BTreeMap<&'static str, u64>,
    /// From the intended send time (open loop) or the send (closed loop) to the answer.
    pub latency: Latencies,
    /// From the actual send to the answer: the server's time alone.
    pub service: Latencies,
    /// Open loop: from the due time to the actual send. Includes the timer's
    /// granularity (about 1 ms in tokio) and waits for a free connection.
    pub send_lag: Latencies,
}

impl Tally {
    pub fn merge(&mut self, other: &Self) {
        self.requests += other.requests;
        self.events_acked += other.events_acked;
        self.events_refused += other.events_refused;
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.latency.merge(&other.latency);
        self.service.merge(&other.service);
        self.send_lag.merge(&other.send_lag);
    }
}

/// CPU seconds (user + system) this process has used so far, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Clock ticks are taken as
/// 1/100 s, the value of USER_HZ on every mainstream Linux architecture.
pub fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: count fields after its closing paren.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Rounds to a readable number of decimals for the report.
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// The order of a report's fields in the human summary; others follow.
const FIELD_ORDER: &[&str] = &[
    "mode",
    "loop",
    "url",
    "brokers",
    "topic",
    "batch",
    "event_bytes",
    "key_bytes",
    "value_bytes",
    "connections",
    "threads",
    "target_events_per_s",
    "seconds",
    "sent",
    "requests",
    "requests_due",
    "requests_unsent",
    "events_acked",
    "events_refused",
    "events_per_s",
    "requests_per_s",
    "statuses",
    "errors",
    "failed",
    "first_error",
    "latency_ms",
    "service_ms",
    "send_lag_ms",
    "ack_latency_ms",
    "group",
    "group_latency_ms",
    "loadgen_cpu_s",
];

/// Prints a report: the JSON object on one line, or an aligned human summary.
pub fn print_report(report: &Value, as_json: bool) {
    let Some(fields) = report.as_object().filter(|_| !as_json) else {
        println!("{report}");
        return;
    };
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort_by_key(|key| {
        FIELD_ORDER
            .iter()
            .position(|k| k == key)
            .unwrap_or(usize::MAX)
    });
    for key in keys {
        let line = match &fields[key] {
            Value::Object(inner) if key.ends_with("_ms") => {
                ["p50", "p90", "p99", "p999", "max", "mean"]
                    .iter()
                    .filter_map(|name| Some(format!("{name} {:.3}", inner.get(*name)?.as_f64()?)))
                    .collect::<Vec<_>>()
                    .join("  ")
            }
            Value::Object(inner) => inner
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        println!("{key:>20}: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time() {
        if cfg!(target_os = "linux") {
            assert!(own_cpu_seconds().is_some());
        }
    }

    #[test]
    fn merged_tallies_add_up() {
        let mut a = Tally {
            requests: 2,
            ..Tally::default()
        };
        a.statuses.insert(202, 2);
        a.latency.record(Duration::from_millis(1));
        let mut b = Tally {
            requests: 1,
            ..Tally::default()
        };
        b.statuses.insert(202, 1);
        b.errors.insert("timeout", 1);
        b.latency.record(Duration::from_millis(3));
        a.merge(&b);
        assert_eq!(a.requests, 3);
        assert_eq!(a.statuses[&202], 3);
        assert_eq!(a.errors["timeout"], 1);
        assert_eq!(a.latency.count(), 2);
        let max = a.latency.summary()["max"].as_f64().unwrap();
        assert!((max - 3.0).abs() < 0.01);
    }
}
