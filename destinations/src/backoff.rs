//! When to try a failed delivery again: exponential backoff with full
//! jitter, capped, or what the receiver's `Retry-After` asks (within the cap),
//! and which answers are worth a retry at all.

use std::time::Duration;

/// The retry schedule of one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the second attempt, before jitter.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (1 for the first):
    /// a uniformly random point of `[ceiling / 2, ceiling]` where the ceiling
    /// doubles with each attempt up to `max`. Half the ceiling at least, so
    /// retries never bunch at zero; random within, so the failures of one
    /// outage do not all come back at once. `unit` is a random number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1u32 << doublings).min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait after a failure that named one with `Retry-After`, kept
    /// within `max` so a receiver cannot park a delivery forever.
    pub fn after_retry_after(&self, asked: Duration) -> Duration {
        asked.min(self.max)
    }
}

/// A uniform random number in `[0, 1)` from the OS-seeded v4 UUID generator
/// (jitter needs no more than that).
pub fn random_unit() -> f64 {
    let bits = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    );
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After`: delay-seconds, or an HTTP date relative to `now_ms`.
/// Unreadable values and dates in the past give `None`.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    let at_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?;
    let wait = at_ms.checked_sub(now_ms)?;
    u64::try_from(wait).ok().map(Duration::from_millis)
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: delivered.
    Delivered { status: u16 },
    /// An answer worth another attempt (5xx, 408, 429), with its
    /// `Retry-After` when it gave one.
    Retryable {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: a timeout, a refused or reset connection.
    NoAnswer { cause: String },
    /// Any other answer (3xx, 4xx): the receiver refuses it, and would again.
    Refused { status: u16 },
}

impl Outcome {
    pub fn of_status(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            200..=299 => Self::Delivered { status },
            408 | 429 | 500..=599 => Self::Retryable {
                status,
                retry_after,
            },
            _ => Self::Refused { status },
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. } | Self::NoAnswer { .. })
    }

    /// The HTTP status, 0 when there was none.
    pub fn status(&self) -> u16 {
        match self {
            Self::Delivered { status }
            | Self::Retryable { status, .. }
            | Self::Refused { status } => *status,
            Self::NoAnswer { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    #[test]
    fn delays_double_within_jitter_up_to_the_cap() {
        for attempt in 1..=10u32 {
            let ceiling = Duration::from_secs(1 << (attempt - 1)).min(SCHEDULE.max);
            assert_eq!(SCHEDULE.delay(attempt, 0.0), ceiling / 2);
            let top = SCHEDULE.delay(attempt, 0.999_999);
            assert!(top <= ceiling && top > ceiling.mul_f64(0.99), "{attempt}");
        }
        assert_eq!(SCHEDULE.delay(1_000, 0.0), Duration::from_secs(30));
        let unit = random_unit();
        assert!((0.0..1.0).contains(&unit));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_within_the_cap() {
        let now_ms = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after(" 3 ", now_ms),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_ms),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now_ms),
            None
        );
        assert_eq!(parse_retry_after("soon", now_ms), None);
        assert_eq!(parse_retry_after("-1", now_ms), None);
        assert_eq!(
            SCHEDULE.after_retry_after(Duration::from_secs(3_600)),
            SCHEDULE.max
        );
    }

    #[test]
    fn only_server_errors_timeouts_and_throttling_are_retried() {
        assert_eq!(
            Outcome::of_status(204, None),
            Outcome::Delivered { status: 204 }
        );
        for status in [408, 429, 500, 503] {
            assert!(Outcome::of_status(status, None).is_retryable(), "{status}");
        }
        for status in [301, 400, 401, 404, 410, 422] {
            assert_eq!(
                Outcome::of_status(status, None),
                Outcome::Refused { status }
            );
        }
        assert!(
            Outcome::NoAnswer {
                cause: "timeout".into()
            }
            .is_retryable()
        );
    }
}
