//! The open-loop arrival schedule: request `k` is due at `k * interval` after
//! the start, whatever happened to the requests before it.
//!
//! Latency is measured from that due time, not from the moment the request
//! actually left. A client that waited for a stalled server before sending
//! would otherwise leave the stall out of its figures (coordinated omission).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Time between two requests, in nanoseconds.
    interval_ns: f64,
}

impl Schedule {
    /// Requests of `batch` events each, `events_per_s` events per second in all.
    pub fn new(events_per_s: f64, batch: usize) -> Self {
        assert!(events_per_s > 0.0, "the rate must be positive");
        Self {
            interval_ns: 1e9 * batch as f64 / events_per_s,
        }
    }

    /// When request `k` is due, after the start.
    pub fn due(&self, k: u64) -> Duration {
        Duration::from_nanos((k as f64 * self.interval_ns).round() as u64)
    }

    /// How many requests are due before `within` has passed.
    pub fn count_within(&self, within: Duration) -> u64 {
        // The division is only a first guess: rounding may put it one off.
        let mut count = (within.as_nanos() as f64 / self.interval_ns).ceil() as u64;
        while count > 0 && self.due(count - 1) >= within {
            count -= 1;
        }
        while self.due(count) < within {
            count += 1;
        }
        count
    }

    pub fn requests_per_s(&self) -> f64 {
        1e9 / self.interval_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_evenly_spaced_at_the_event_rate() {
        let schedule = Schedule::new(50_000.0, 100);
        assert_eq!(schedule.requests_per_s(), 500.0);
        assert_eq!(schedule.due(0), Duration::ZERO);
        assert_eq!(schedule.due(1), Duration::from_millis(2));
        assert_eq!(schedule.due(500), Duration::from_secs(1));
    }

    #[test]
    fn due_times_do_not_drift_over_a_long_run() {
        // 3 requests per ms: a rounded per-request interval would drift by ms.
        let schedule = Schedule::new(3000.0, 1);
        assert_eq!(schedule.due(3_000_000), Duration::from_secs(1000));
        assert_eq!(schedule.count_within(Duration::from_secs(10)), 30_000);
    }

    #[test]
    fn count_includes_a_request_due_before_the_end() {
        let schedule = Schedule::new(3.0, 1);
        // Due at 0, 333 ms and 667 ms: three before one second ends.
        assert_eq!(schedule.count_within(Duration::from_millis(1000)), 3);
        assert_eq!(schedule.count_within(Duration::from_millis(700)), 3);
        assert_eq!(schedule.count_within(Duration::from_millis(600)), 2);
    }
}
