//! Windowed rollups: the model that the stream processor computes and the
//! query API reads. No IO.
//!
//! A rollup is an [`Aggregate`] of the events of one [`WindowKey`]: a project,
//! a one-minute event-time window, and the dimensions type, source and status.
//! Aggregates merge exactly, in any order and grouping ([`Aggregate::merge`]),
//! which is what lets the pipeline store partial aggregates (one per Kafka
//! partition, plus corrections for late events) and lets readers add them up
//! for any coarser bucket ([`Granularity`]) or any set of dimensions.
//!
//! Error bounds (the only inexact numbers; counts, sums, min and max are exact):
//! - unique users and sessions ([`hll`]): exact up to 4,096 distinct values
//!   ([`hll::EXACT_MAX`]) in a window, and in any merge of windows while the
//!   union stays within it (up to a collision of the 64-bit hash); above
//!   that a HyperLogLog with 2^14 registers, standard error 0.81 %. Sketches
//!   stored before the exact form existed are registers, and so is anything
//!   merged with them (near exact for a few hundred values);
//! - duration quantiles (p50, p90, p95, p99): a DDSketch-style sketch
//!   ([`quantiles`]) whose answers are within 1 % of the true value at the rank.
//!
//! Encodings are stable and versioned: [`Aggregate::to_bytes`] (and each
//! sketch's `to_bytes`) is what ClickHouse stores and the live topic carries;
//! hashing is pinned by [`hash`], so sketches from any process merge. Every
//! form ever written stays readable; a reader older than a form refuses it
//! (an [`Hll`]'s first byte names its form: tag 3, the exact set, is newer
//! than tags 1 and 2), so readers are upgraded before writers.
//!
//! - [`live`]: the JSON message of the live topic.
//! - [`property`]: property values as `property_rollups` key them.

pub mod aggregate;
pub mod codec;
pub mod hash;
pub mod hll;
pub mod live;
pub mod property;
pub mod quantiles;

#[cfg(test)]
mod algebra_tests;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub use aggregate::{Aggregate, Contribution, Summary};
pub use codec::DecodeError;
pub use hll::Hll;
pub use live::LiveUpdate;
pub use quantiles::QuantileSketch;

/// The length of a window, in seconds.
pub const WINDOW_SECONDS: u32 = 60;

/// What a rollup row aggregates: one project's events of one minute (by event
/// time) with the same type, source and status. Missing source or status are
/// the empty string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowKey {
    pub project_id: String,
    /// Start of the window (or coarser bucket), Unix seconds.
    pub minute: u32,
    pub event_type: String,
    pub source: String,
    pub status: String,
}

impl WindowKey {
    /// The key of the window that `event` falls in.
    pub fn of_event(event: &crate::Event) -> Self {
        Self {
            project_id: event.project_id.clone(),
            minute: Self::minute_of(event.timestamp_ms),
            event_type: event.event_type.clone(),
            source: event.source.clone().unwrap_or_default(),
            status: event.status.clone().unwrap_or_default(),
        }
    }

    /// The start of the one-minute window that holds `timestamp_ms`.
    pub fn minute_of(timestamp_ms: i64) -> u32 {
        let seconds = u32::try_from(timestamp_ms.max(0) / 1000).unwrap_or(u32::MAX);
        seconds - seconds % WINDOW_SECONDS
    }

    /// The same key with its window widened to the bucket of `granularity`.
    pub fn coarsen(&self, granularity: Granularity) -> Self {
        Self {
            minute: granularity.bucket_start(self.minute),
            ..self.clone()
        }
    }
}

/// Bucket widths a reader may ask for; each is a whole number of windows
/// aligned to the Unix epoch (days are UTC days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    Minute,
    FiveMinutes,
    FifteenMinutes,
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Self; 5] = [
        Self::Minute,
        Self::FiveMinutes,
        Self::FifteenMinutes,
        Self::Hour,
        Self::Day,
    ];

    pub const fn seconds(self) -> u32 {
        match self {
            Self::Minute => 60,
            Self::FiveMinutes => 300,
            Self::FifteenMinutes => 900,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    pub const fn bucket_start(self, unix_seconds: u32) -> u32 {
        unix_seconds - unix_seconds % self.seconds()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "1m",
            Self::FiveMinutes => "5m",
            Self::FifteenMinutes => "15m",
            Self::Hour => "1h",
            Self::Day => "1d",
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown granularity {0:?}: use 1m, 5m, 15m, 1h or 1d")]
pub struct InvalidGranularity(pub String);

impl FromStr for Granularity {
    type Err = InvalidGranularity;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == text)
            .ok_or_else(|| InvalidGranularity(text.to_owned()))
    }
}

/// Merges partial aggregates (rows of several partitions, corrections) into
/// one aggregate per key at `granularity`.
pub fn merge_by_bucket<'a>(
    parts: impl IntoIterator<Item = (&'a WindowKey, &'a Aggregate)>,
    granularity: Granularity,
) -> BTreeMap<WindowKey, Aggregate> {
    let mut merged: BTreeMap<WindowKey, Aggregate> = BTreeMap::new();
    for (key, aggregate) in parts {
        merged
            .entry(key.coarsen(granularity))
            .or_default()
            .merge(aggregate);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_buckets_align() {
        assert_eq!(WindowKey::minute_of(1_700_000_059_999), 1_700_000_040);
        assert_eq!(WindowKey::minute_of(-5), 0);
        assert_eq!(Granularity::Hour.bucket_start(1_700_000_040), 1_699_999_200);
        assert_eq!(Granularity::Day.bucket_start(86_400 * 3 + 5), 86_400 * 3);
        for granularity in Granularity::ALL {
            assert_eq!(granularity.as_str().parse(), Ok(granularity));
            assert_eq!(granularity.seconds() % WINDOW_SECONDS, 0);
        }
        assert!("2m".parse::<Granularity>().is_err());
    }
}
