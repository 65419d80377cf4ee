//! One window's aggregate: counts, duration statistics and the sketches.

use super::codec::{DecodeError, Reader, decode_exact, put_varint};
use super::hll::Hll;
use super::quantiles::QuantileSketch;

/// Everything a window knows about its events. Every field merges exactly
/// (sums, minimum, maximum, sketch unions), so aggregates of parts merge into
/// the aggregate of the whole, in any order and grouping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    /// Events in the window.
    pub count: u64,
    /// Events that carried a `duration_ms`.
    pub duration_count: u64,
    /// Sum of the durations in whole microseconds (each rounded), so sums stay
    /// exact and associative; saturates at u64::MAX (584,000 years).
    pub duration_sum_us: u64,
    pub duration_min: Option<f64>,
    pub duration_max: Option<f64>,
    /// Distinct `user_id`s (events without one add nothing).
    pub users: Hll,
    /// Distinct `session_id`s.
    pub sessions: Hll,
    pub durations: QuantileSketch,
}

/// The numbers an aggregate stands for, for people and JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub count: u64,
    pub users: u64,
    pub sessions: u64,
    pub duration_count: u64,
    /// Milliseconds.
    pub duration_sum: f64,
    pub duration_min: Option<f64>,
    pub duration_max: Option<f64>,
    pub duration_p50: Option<f64>,
    pub duration_p90: Option<f64>,
    pub duration_p95: Option<f64>,
    pub duration_p99: Option<f64>,
}

/// One event's contribution, as [`Aggregate::add`] takes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Contribution<'a> {
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub duration_ms: Option<f64>,
}

fn min_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A duration in whole microseconds; durations are validated to 0..=1e12 ms.
fn micros(duration_ms: f64) -> u64 {
    (duration_ms * 1000.0).round().clamp(0.0, u64::MAX as f64) as u64
}

/// A [`Contribution`] with its ids hashed, for an event that adds to
/// several aggregates (its window's and one per rolled-up property).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HashedContribution {
    user: Option<u64>,
    session: Option<u64>,
    duration_ms: Option<f64>,
}

impl Contribution<'_> {
    pub fn hashed(self) -> HashedContribution {
        HashedContribution {
            user: self.user_id.map(|id| Hll::hash(id.as_bytes())),
            session: self.session_id.map(|id| Hll::hash(id.as_bytes())),
            duration_ms: self.duration_ms,
        }
    }
}

impl Aggregate {
    /// Adds one event.
    pub fn add(&mut self, event: Contribution<'_>) {
        self.add_hashed(event.hashed());
    }

    /// Adds one event whose ids are hashed already.
    pub fn add_hashed(&mut self, event: HashedContribution) {
        self.count += 1;
        if let Some(user) = event.user {
            self.users.insert_hash(user);
        }
        if let Some(session) = event.session {
            self.sessions.insert_hash(session);
        }
        if let Some(duration) = event.duration_ms.filter(|d| d.is_finite()) {
            self.duration_count += 1;
            self.duration_sum_us = self.duration_sum_us.saturating_add(micros(duration));
            self.duration_min = min_option(self.duration_min, Some(duration));
            self.duration_max = max_option(self.duration_max, Some(duration));
            self.durations.insert(duration);
        }
    }

    /// Adds every event of `other`.
    pub fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.duration_count += other.duration_count;
        self.duration_sum_us = self.duration_sum_us.saturating_add(other.duration_sum_us);
        self.duration_min = min_option(self.duration_min, other.duration_min);
        self.duration_max = max_option(self.duration_max, other.duration_max);
        self.users.merge(&other.users);
        self.sessions.merge(&other.sessions);
        self.durations.merge(&other.durations);
    }

    /// A duration quantile, kept within the exact minimum and maximum (which
    /// only moves it closer to the true value).
    pub fn duration_quantile(&self, q: f64) -> Option<f64> {
        let estimate = self.durations.quantile(q)?;
        Some(estimate.clamp(self.duration_min?, self.duration_max?))
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count,
            users: self.users.estimate(),
            sessions: self.sessions.estimate(),
            duration_count: self.duration_count,
            duration_sum: self.duration_sum_us as f64 / 1000.0,
            duration_min: self.duration_min,
            duration_max: self.duration_max,
            duration_p50: self.duration_quantile(0.50),
            duration_p90: self.duration_quantile(0.90),
            duration_p95: self.duration_quantile(0.95),
            duration_p99: self.duration_quantile(0.99),
        }
    }

    /// The stored form of the whole aggregate (format version 1).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        put_varint(out, self.count);
        put_varint(out, self.duration_count);
        put_varint(out, self.duration_sum_us);
        for bound in [self.duration_min, self.duration_max] {
            match bound {
                Some(value) => {
                    out.push(1);
                    out.extend_from_slice(&value.to_le_bytes());
                }
                None => out.push(0),
            }
        }
        self.users.encode(out);
        self.sessions.encode(out);
        self.durations.encode(out);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if reader.byte()? != 1 {
            return Err(DecodeError("unknown aggregate format version"));
        }
        let count = reader.varint()?;
        let duration_count = reader.varint()?;
        let duration_sum_us = reader.varint()?;
        let mut bound = || -> Result<Option<f64>, DecodeError> {
            match reader.byte()? {
                0 => Ok(None),
                1 => Ok(Some(reader.f64()?)),
                _ => Err(DecodeError("duration bound flag")),
            }
        };
        let (duration_min, duration_max) = (bound()?, bound()?);
        Ok(Self {
            count,
            duration_count,
            duration_sum_us,
            duration_min,
            duration_max,
            users: Hll::decode(reader)?,
            sessions: Hll::decode(reader)?,
            durations: QuantileSketch::decode(reader)?,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes, Self::decode)
    }

    /// Heap bytes held by the sketches, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.users.heap_bytes() + self.sessions.heap_bytes() + self.durations.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_and_round_trips() {
        let mut aggregate = Aggregate::default();
        for n in 0..100u32 {
            aggregate.add(Contribution {
                user_id: Some(&format!("u{}", n % 10)),
                session_id: Some(&format!("s{n}")),
                duration_ms: (n % 2 == 0).then_some(f64::from(n) + 0.25),
            });
        }
        aggregate.add(Contribution::default());
        let summary = aggregate.summary();
        assert_eq!(
            (summary.count, summary.users, summary.sessions),
            (101, 10, 100)
        );
        assert_eq!(summary.duration_count, 50);
        assert_eq!(
            summary.duration_sum,
            (0..50).map(|n| f64::from(n * 2) + 0.25).sum::<f64>()
        );
        assert_eq!(
            (summary.duration_min, summary.duration_max),
            (Some(0.25), Some(98.25))
        );
        let p50 = summary.duration_p50.unwrap();
        assert!((p50 - 48.25).abs() <= 0.01 * 48.25, "{p50}");
        let bytes = aggregate.to_bytes();
        assert_eq!(Aggregate::from_bytes(&bytes), Ok(aggregate));
        assert!(Aggregate::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(Aggregate::default().summary().duration_p99, None);
    }

    /// An aggregate the first version wrote (its sketches in the register
    /// form) still reads, merges and re-encodes as it was.
    #[test]
    fn aggregates_of_the_first_version_still_read() {
        let text = "01050598750100000000000000000100000000000018400103840a01f917019159040105a1\
                    01039040014402a50f02dd14010104320164013e012601";
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect();
        let mut new = Aggregate::default();
        for n in 0..5u32 {
            new.add(Contribution {
                user_id: Some(&format!("u{}", n % 3)),
                session_id: Some(&format!("s{n}")),
                duration_ms: Some(f64::from(n) * 1.5),
            });
        }
        let old = Aggregate::from_bytes(&bytes).unwrap();
        assert_eq!(old.to_bytes(), bytes);
        assert_eq!(old.summary(), new.summary());
        assert!(new.users.is_exact() && !old.users.is_exact());
        assert_ne!(new.to_bytes(), bytes, "new aggregates store exact sets");
        let mut merged = old;
        merged.merge(&new);
        assert_eq!(merged.count, 10);
        assert_eq!((merged.summary().users, merged.summary().sessions), (3, 5));
    }
}
