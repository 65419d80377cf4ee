//! What `GET /v1/metrics` asks: interval, metrics, group-by, having,
//! order-by and limit, parsed from the query string.

use std::str::FromStr;

use sluice_schemas::rollup::Granularity;

use crate::error::{ApiError, Result};
use crate::filters::{Filters, TimeRange, valid_property_key};
use crate::params::Params;

pub const DEFAULT_LIMIT: usize = 10_000;
pub const MAX_LIMIT: usize = 100_000;

/// A number the API computes per bucket and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Count,
    UniqueUsers,
    UniqueSessions,
    SumDuration,
    AvgDuration,
    MinDuration,
    MaxDuration,
    P50Duration,
    P90Duration,
    P95Duration,
    P99Duration,
    DominantStatus,
}

impl Metric {
    pub const ALL: [Self; 12] = [
        Self::Count,
        Self::UniqueUsers,
        Self::UniqueSessions,
        Self::SumDuration,
        Self::AvgDuration,
        Self::MinDuration,
        Self::MaxDuration,
        Self::P50Duration,
        Self::P90Duration,
        Self::P95Duration,
        Self::P99Duration,
        Self::DominantStatus,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::UniqueUsers => "unique_users",
            Self::UniqueSessions => "unique_sessions",
            Self::SumDuration => "sum_duration",
            Self::AvgDuration => "avg_duration",
            Self::MinDuration => "min_duration",
            Self::MaxDuration => "max_duration",
            Self::P50Duration => "p50_duration",
            Self::P90Duration => "p90_duration",
            Self::P95Duration => "p95_duration",
            Self::P99Duration => "p99_duration",
            Self::DominantStatus => "dominant_status",
        }
    }

    pub const fn is_quantile(self) -> bool {
        matches!(
            self,
            Self::P50Duration | Self::P90Duration | Self::P95Duration | Self::P99Duration
        )
    }
}

impl FromStr for Metric {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|metric| metric.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|m| m.name()).collect();
                format!("unknown metric {name:?}; use {}", names.join(", "))
            })
    }
}

/// A group-by dimension, from the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    Type,
    Source,
    Status,
    Property(String),
}

impl Dimension {
    pub fn name(&self) -> String {
        match self {
            Self::Type => "type".into(),
            Self::Source => "source".into(),
            Self::Status => "status".into(),
            Self::Property(key) => format!("property.{key}"),
        }
    }
}

impl FromStr for Dimension {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "type" => Ok(Self::Type),
            "source" => Ok(Self::Source),
            "status" => Ok(Self::Status),
            _ => match name.strip_prefix("property.") {
                Some(key) if valid_property_key(key) => Ok(Self::Property(key.to_owned())),
                _ => Err(format!(
                    "cannot group by {name:?}; use type, source, status or property.KEY"
                )),
            },
        }
    }
}

/// How a `having` condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Equal,
    NotEqual,
    GreaterOrEqual,
    Greater,
}

impl Comparison {
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Self::Less => left < right,
            Self::LessOrEqual => left <= right,
            Self::Equal => left == right,
            Self::NotEqual => left != right,
            Self::GreaterOrEqual => left >= right,
            Self::Greater => left > right,
        }
    }
}

/// `metric OP number`, e.g. `count>=10`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Having {
    pub metric: Metric,
    pub comparison: Comparison,
    pub value: f64,
}

impl FromStr for Having {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        // Two-character operators first, so `>=` is not read as `>`.
        const OPERATORS: [(&str, Comparison); 6] = [
            (">=", Comparison::GreaterOrEqual),
            ("<=", Comparison::LessOrEqual),
            ("!=", Comparison::NotEqual),
            (">", Comparison::Greater),
            ("<", Comparison::Less),
            ("=", Comparison::Equal),
        ];
        let (at, operator, comparison) = OPERATORS
            .iter()
            .filter_map(|(op, comparison)| text.find(op).map(|at| (at, *op, *comparison)))
            .min_by_key(|(at, op, _)| (*at, std::cmp::Reverse(op.len())))
            .ok_or_else(|| format!("{text:?} is not METRIC OP NUMBER (OP: > >= < <= = !=)"))?;
        let metric: Metric = text[..at].trim().parse()?;
        if metric == Metric::DominantStatus {
            return Err("having compares numbers; dominant_status is text".into());
        }
        let value = text[at + operator.len()..]
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .ok_or_else(|| format!("{text:?}: the right side must be a number"))?;
        Ok(Self {
            metric,
            comparison,
            value,
        })
    }
}

/// What a result row is sorted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Bucket,
    Group(usize),
    Metric(Metric),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub key: SortKey,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub struct MetricsRequest {
    pub range: TimeRange,
    pub granularity: Granularity,
    /// Buckets start at midnight of this UTC offset (1h and 1d), in ms.
    pub utc_offset_ms: i64,
    pub metrics: Vec<Metric>,
    pub group_by: Vec<Dimension>,
    pub filters: Filters,
    pub having: Vec<Having>,
    pub order_by: Vec<OrderBy>,
    pub limit: usize,
    /// Always the exact path (raw events), even where rollups cover the
    /// question (`exact=true`).
    pub exact: bool,
}

/// The items of a comma list, trimmed. An empty item (`a,,b`, `a,`) is an
/// error, a typo more often than not, and so is an empty value: on the wire
/// it is both an empty list and a list of one empty item, and a parameter
/// left out says "none" without doubt.
fn list(text: &str) -> Result<Vec<&str>, String> {
    if text.trim().is_empty() {
        return Err("is empty: leave the parameter out for none".to_owned());
    }
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.iter().any(|item| item.is_empty()) {
        return Err(format!(
            "{text:?} has an empty item; separate names with single commas"
        ));
    }
    Ok(items)
}

fn parse_list<T: FromStr<Err = String>>(text: &str) -> Result<Vec<T>, String> {
    list(text)?.into_iter().map(str::parse).collect()
}

/// `+05:30`, `-08:00`, `Z`: a fixed offset in whole minutes, up to 14 h.
pub fn parse_utc_offset(text: &str) -> Result<i64, String> {
    let invalid = || format!("{text:?} is not an offset like +05:30, -08:00 or Z");
    if text == "Z" {
        return Ok(0);
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(invalid()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(invalid)?;
    // Digits only: `parse` alone would take a sign, as in `+05:-30`.
    let digits = |part: &str, len: std::ops::RangeInclusive<usize>| {
        (len.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<i64>().ok())
            .flatten()
            .ok_or_else(invalid)
    };
    let (hours, minutes) = (digits(hours, 1..=2)?, digits(minutes, 2..=2)?);
    if hours > 14 || minutes > 59 {
        return Err(invalid());
    }
    Ok(sign * (hours * 60 + minutes) * 60_000)
}

impl MetricsRequest {
    pub fn parse(params: &mut Params) -> Result<Self> {
        let range = TimeRange::parse(params)?;
        let granularity = params
            .parse("interval", |text| {
                text.parse::<Granularity>().map_err(|e| e.to_string())
            })?
            .unwrap_or(Granularity::Hour);
        let utc_offset_ms = params.parse("utc_offset", parse_utc_offset)?.unwrap_or(0);
        let metrics = params
            .parse("metrics", parse_list::<Metric>)?
            .unwrap_or_else(|| vec![Metric::Count]);
        let group_by = params
            .parse("group_by", parse_list::<Dimension>)?
            .unwrap_or_default();
        if group_by.len() > 4 {
            return Err(ApiError::invalid("group_by", "at most 4 dimensions"));
        }
        let having = params
            .parse("having", parse_list::<Having>)?
            .unwrap_or_default();
        let order_by = params
            .parse("order_by", |text| parse_order(text, &group_by))?
            .unwrap_or_default();
        let limit = params
            .parse("limit", |text| {
                text.parse::<usize>()
                    .ok()
                    .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                    .ok_or_else(|| format!("must be between 1 and {MAX_LIMIT}"))
            })?
            .unwrap_or(DEFAULT_LIMIT);
        let exact = params
            .parse("exact", |text| match text {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err("use true or false".to_owned()),
            })?
            .unwrap_or(false);
        let filters = Filters::parse(params)?;
        for condition in &having {
            if !metrics.contains(&condition.metric) {
                return Err(ApiError::invalid(
                    "having",
                    format!(
                        "{} is not among the requested metrics",
                        condition.metric.name()
                    ),
                ));
            }
        }
        Ok(Self {
            range,
            granularity,
            utc_offset_ms,
            metrics,
            group_by,
            filters,
            having,
            order_by,
            limit,
            exact,
        })
    }

    /// The distinct property keys the group-by names.
    pub fn grouped_properties(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .group_by
            .iter()
            .filter_map(|dimension| match dimension {
                Dimension::Property(key) => Some(key.as_str()),
                _ => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    pub fn wants(&self, metric: Metric) -> bool {
        self.metrics.contains(&metric)
    }

    pub fn wants_users(&self) -> bool {
        self.wants(Metric::UniqueUsers)
    }

    pub fn wants_sessions(&self) -> bool {
        self.wants(Metric::UniqueSessions)
    }

    pub fn wants_quantiles(&self) -> bool {
        self.metrics.iter().any(|metric| metric.is_quantile())
    }

    /// The start of the bucket that holds `ms`.
    pub fn bucket_of(&self, ms: i64) -> i64 {
        let width = i64::from(self.granularity.seconds()) * 1000;
        (ms + self.utc_offset_ms).div_euclid(width) * width - self.utc_offset_ms
    }

    /// The range widened to whole buckets, so every bucket is complete.
    pub fn aligned_range(&self) -> TimeRange {
        let width = i64::from(self.granularity.seconds()) * 1000;
        let to = self.bucket_of(self.range.to_ms - 1) + width;
        TimeRange {
            from_ms: self.bucket_of(self.range.from_ms).max(0),
            to_ms: to,
        }
    }
}

fn parse_order(text: &str, group_by: &[Dimension]) -> Result<Vec<OrderBy>, String> {
    list(text)?
        .into_iter()
        .map(|item| {
            let (descending, name) = match item.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, item),
            };
            let key = if name == "bucket" {
                SortKey::Bucket
            } else if let Some(index) = group_by.iter().position(|d| d.name() == name) {
                SortKey::Group(index)
            } else {
                SortKey::Metric(name.parse().map_err(|_| {
                    format!("cannot order by {name:?}: use bucket, a group_by dimension or a requested metric")
                })?)
            };
            Ok(OrderBy { key, descending })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> Result<MetricsRequest> {
        let mut params = Params::from_pairs(pairs);
        let request = MetricsRequest::parse(&mut params)?;
        params.finish()?;
        Ok(request)
    }

    #[test]
    fn parses_a_full_request() {
        let request = request(&[
            ("from", "0"),
            ("to", "86400000"),
            ("interval", "15m"),
            ("metrics", "count,p95_duration,unique_users"),
            ("group_by", "type,property.plan"),
            ("having", "count>=10,p95_duration<5.5"),
            ("order_by", "-count,property.plan"),
            ("limit", "5"),
            ("utc_offset", "+05:30"),
        ])
        .unwrap();
        assert_eq!(request.granularity, Granularity::FifteenMinutes);
        assert_eq!(request.group_by[1], Dimension::Property("plan".into()));
        assert_eq!(request.having[0].comparison, Comparison::GreaterOrEqual);
        assert_eq!(request.having[1].value, 5.5);
        assert_eq!(request.order_by[1].key, SortKey::Group(1));
        assert!(request.order_by[0].descending);
        assert_eq!(request.utc_offset_ms, 19_800_000);
        assert!(request.wants_quantiles() && request.wants_users() && !request.wants_sessions());
    }

    #[test]
    fn rejects_what_is_not_allowed() {
        for pairs in [
            &[("metrics", "count,bogus")][..],
            &[("group_by", "user_id")],
            &[("group_by", "property.a b")],
            &[("having", "count>x")],
            &[("having", "unique_users>1")],
            &[("order_by", "nope")],
            &[("order_by", "count,")],
            &[("metrics", "count,,unique_users")],
            &[("group_by", ",type")],
            &[("interval", "2m")],
            &[("limit", "0")],
            &[("utc_offset", "05:30")],
            &[("utc_offset", "+05:-30")],
            &[("utc_offset", "++5:30")],
            &[("utc_offset", "+5:3")],
            &[("utc_offset", "+15:00")],
            &[("unknown", "1")],
        ] {
            assert!(request(pairs).is_err(), "{pairs:?}");
        }
    }

    #[test]
    fn an_empty_value_or_item_is_an_error_naming_the_parameter() {
        for name in ["metrics", "group_by", "having", "order_by"] {
            for value in ["", " "] {
                let error = request(&[(name, value)]).unwrap_err().to_string();
                assert!(
                    error.contains(name) && error.contains("leave the parameter out"),
                    "{error}"
                );
            }
        }
        let spaced = request(&[("metrics", " count , unique_users ")]).unwrap();
        assert_eq!(spaced.metrics, [Metric::Count, Metric::UniqueUsers]);
        let error = request(&[("metrics", "count,")]).unwrap_err().to_string();
        assert!(error.contains("empty item"), "{error}");
    }

    #[test]
    fn buckets_follow_the_offset() {
        let request = request(&[
            ("from", "2024-01-01T10:17:00Z"),
            ("to", "2024-01-02T10:00:00Z"),
            ("interval", "1d"),
            ("utc_offset", "+05:30"),
        ])
        .unwrap();
        // Midnight at +05:30 is 18:30 UTC the day before.
        let aligned = request.aligned_range();
        assert_eq!(aligned.from_ms, 1_704_047_400_000);
        assert_eq!(aligned.to_ms, 1_704_047_400_000 + 2 * 86_400_000);
        assert_eq!(request.bucket_of(1_704_047_400_000), 1_704_047_400_000);
        assert_eq!(
            request.bucket_of(1_704_047_399_999),
            1_704_047_400_000 - 86_400_000
        );
    }
}
