//! A circuit breaker per destination: after `threshold` failed attempts in a
//! row it opens, and deliveries to that destination wait (in the retry
//! topic, not in memory) instead of tying up a worker on a dead endpoint;
//! after `pause` one trial attempt is let through (half-open): success
//! closes it, failure opens it for twice the pause before, up to
//! `max_pause`. While it is open, every delivery waiting for the endpoint
//! is written to the retry topic again once per pause; the growing pause
//! bounds those rewrites over a long outage (and the trials the dead
//! endpoint gets), at the cost of noticing its return up to `max_pause`
//! late.

use std::time::{Duration, Instant};

/// The breaker's state, as metrics (`0`, `1`, `2`) and the API show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// What the breaker says about the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Go ahead.
    Attempt,
    /// Go ahead: this is the one trial of a half-open breaker.
    Trial,
    /// Do not try before this instant.
    WaitUntil(Instant),
}

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    /// The first pause, and the longest.
    pauses: (Duration, Duration),
    /// The pause of the current opening.
    pause: Duration,
    failures_in_a_row: u32,
    opened_at: Option<Instant>,
    trial_running: bool,
}

impl Breaker {
    pub fn new(threshold: u32, pause: Duration, max_pause: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            pauses: (pause, max_pause.max(pause)),
            pause,
            failures_in_a_row: 0,
            opened_at: None,
            trial_running: false,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(at) if now >= at + self.pause => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// Whether an attempt may start now; a half-open breaker lets one trial
    /// through at a time.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match (self.state(now), self.opened_at) {
            (BreakerState::Closed, _) => Permit::Attempt,
            (BreakerState::HalfOpen, _) if !self.trial_running => {
                self.trial_running = true;
                Permit::Trial
            }
            (_, Some(at)) => Permit::WaitUntil((at + self.pause).max(now + self.pause / 4)),
            (_, None) => Permit::Attempt,
        }
    }

    /// When an open breaker lets its next trial through; `None` unless open.
    pub fn reopens_at(&self, now: Instant) -> Option<Instant> {
        self.opened_at
            .filter(|_| self.state(now) == BreakerState::Open)
            .map(|at| at + self.pause)
    }

    pub fn succeeded(&mut self) {
        self.pause = self.pauses.0;
        self.failures_in_a_row = 0;
        self.opened_at = None;
        self.trial_running = false;
    }

    /// A failed attempt (no answer, or an answer worth a retry); a refused
    /// delivery (4xx) is the receiver's verdict on that delivery, not a sign
    /// the endpoint is down, and counts as neither.
    pub fn failed(&mut self, now: Instant) {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        let trial_failed = self.trial_running;
        self.trial_running = false;
        if trial_failed {
            self.pause = (self.pause * 2).min(self.pauses.1);
        }
        if trial_failed || self.failures_in_a_row >= self.threshold {
            self.opened_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_half_opens_after_the_pause_and_closes_on_success() {
        let pause = Duration::from_secs(10);
        let mut breaker = Breaker::new(3, pause, pause * 4);
        let start = Instant::now();
        for _ in 0..2 {
            assert_eq!(breaker.permit(start), Permit::Attempt);
            breaker.failed(start);
        }
        assert_eq!(breaker.state(start), BreakerState::Closed);
        breaker.failed(start);
        assert_eq!(breaker.state(start), BreakerState::Open);
        assert_eq!(breaker.permit(start), Permit::WaitUntil(start + pause));

        let later = start + pause;
        assert_eq!(breaker.state(later), BreakerState::HalfOpen);
        assert_eq!(breaker.permit(later), Permit::Trial);
        // One trial at a time.
        assert!(matches!(breaker.permit(later), Permit::WaitUntil(_)));
        // A failed trial opens it again for twice the pause, up to the longest.
        breaker.failed(later);
        assert_eq!(breaker.state(later), BreakerState::Open);
        assert_eq!(breaker.reopens_at(later), Some(later + pause * 2));
        assert_eq!(breaker.state(later + pause), BreakerState::Open);
        let mut at = later;
        for expected in [2, 4, 4] {
            at += pause * expected;
            assert_eq!(breaker.state(at), BreakerState::HalfOpen);
            assert_eq!(breaker.reopens_at(at), None);
            assert_eq!(breaker.permit(at), Permit::Trial);
            breaker.failed(at);
        }
        assert_eq!(breaker.reopens_at(at), Some(at + pause * 4));
        at += pause * 4;
        assert_eq!(breaker.permit(at), Permit::Trial);
        breaker.succeeded();
        assert_eq!(breaker.state(at), BreakerState::Closed);
        assert_eq!(breaker.permit(at), Permit::Attempt);
        // Open again: the pause starts over.
        for _ in 0..3 {
            breaker.failed(at);
        }
        assert_eq!(breaker.reopens_at(at), Some(at + pause));
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut breaker = Breaker::new(2, Duration::from_secs(1), Duration::from_secs(1));
        let now = Instant::now();
        breaker.failed(now);
        breaker.succeeded();
        breaker.failed(now);
        assert_eq!(breaker.state(now), BreakerState::Closed);
        assert_eq!(BreakerState::HalfOpen.as_gauge(), 2);
    }
}
