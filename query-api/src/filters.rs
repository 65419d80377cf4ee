//! The filters and time range every read endpoint shares, and the SQL they
//! become: fixed fragments with `?` placeholders, values only through
//! `.bind()`.

use clickhouse::query::Query;
use serde::Serialize;
use sluice_schemas::time_format::{DAY_MS, now_ms, parse_rfc3339_ms};

use crate::error::{ApiError, Result};
use crate::params::Params;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Bound {
    Text(String),
    Int(i64),
}

/// SQL text plus the values of its placeholders, in order.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Bound>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            binds: Vec::new(),
        }
    }

    /// Appends `fragment`, whose `?`s take `binds` in order.
    pub fn push(&mut self, fragment: &str, binds: impl IntoIterator<Item = Bound>) {
        self.text.push_str(fragment);
        self.binds.extend(binds);
    }

    pub fn query(&self, client: &clickhouse::Client) -> Query {
        self.binds
            .iter()
            .fold(client.query(&self.text), |query, value| query.bind(value))
    }
}

pub fn text(value: &str) -> Bound {
    Bound::Text(value.to_owned())
}

/// `[from_ms, to_ms)` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl TimeRange {
    /// `from` and `to` (RFC 3339 with any offset, or epoch ms); `to` defaults
    /// to now, `from` to 24 hours before `to`.
    pub fn parse(params: &mut Params) -> Result<Self> {
        let to_ms = params
            .parse("to", parse_time)?
            .unwrap_or_else(|| now_ms() + 1);
        let from_ms = params
            .parse("from", parse_time)?
            .unwrap_or((to_ms - DAY_MS).max(0));
        if from_ms >= to_ms {
            return Err(ApiError::invalid("from", "must be before `to`"));
        }
        Ok(Self { from_ms, to_ms })
    }

    /// Conditions on the `events` table: the `DateTime` column for partition
    /// and index pruning, the millisecond column for the exact edges.
    pub fn events_sql(&self, sql: &mut Sql) {
        sql.push(
            " AND timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)\
              AND timestamp_ms >= ? AND timestamp_ms < ?",
            [
                Bound::Int(self.from_ms / 1000),
                Bound::Int(self.to_ms / 1000),
                Bound::Int(self.from_ms),
                Bound::Int(self.to_ms),
            ],
        );
    }
}

fn parse_time(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .or_else(|| parse_rfc3339_ms(text))
        .filter(|ms| (0..=4_102_444_800_000).contains(ms))
        .ok_or_else(|| "must be an RFC 3339 date-time or epoch milliseconds, 1970 to 2100".into())
}

pub use sluice_schemas::rollup::property::{PROPERTY_KEY_RULE, valid_property_key};

/// The event filters: every one given must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub event_type: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub tag: Option<String>,
    /// `property.KEY=VALUE`: the property's value (a string, or the JSON
    /// text of a number or boolean) equals VALUE.
    pub properties: Vec<(String, String)>,
}

impl Filters {
    pub fn parse(params: &mut Params) -> Result<Self> {
        let filters = Self {
            event_type: params.take("type")?,
            source: params.take("source")?,
            status: params.take("status")?,
            user_id: params.take("user_id")?,
            session_id: params.take("session_id")?,
            tag: params.take("tag")?,
            properties: params.take_prefixed("property."),
        };
        for (key, _) in &filters.properties {
            if !valid_property_key(key) {
                return Err(ApiError::invalid(
                    format!("property.{key}"),
                    PROPERTY_KEY_RULE,
                ));
            }
        }
        Ok(filters)
    }

    /// Whether the rollups can answer: they keep only type, source and status.
    pub fn rollups_cover(&self) -> bool {
        self.user_id.is_none()
            && self.session_id.is_none()
            && self.tag.is_none()
            && self.properties.is_empty()
    }

    /// The dimension filters, which rollups and events both have.
    fn dimensions(&self) -> [(&'static str, &Option<String>); 3] {
        [
            ("type", &self.event_type),
            ("source", &self.source),
            ("status", &self.status),
        ]
    }

    /// Conditions on the `events` table.
    pub fn events_sql(&self, sql: &mut Sql) {
        let columns = [("user_id", &self.user_id), ("session_id", &self.session_id)];
        for (column, value) in self.dimensions().into_iter().chain(columns) {
            if let Some(value) = value {
                sql.push(&format!(" AND {column} = ?"), [text(value)]);
            }
        }
        if let Some(tag) = &self.tag {
            sql.push(" AND has(tags, ?)", [text(tag)]);
        }
        for (key, value) in &self.properties {
            sql.push(
                " AND (visitParamExtractString(properties, ?) = ? OR visitParamExtractRaw(properties, ?) = ?)",
                [text(key), text(value), text(key), text(value)],
            );
        }
    }

    /// Conditions on the `rollups` table; only valid when [`Self::rollups_cover`].
    pub fn rollups_sql(&self, sql: &mut Sql) {
        for (column, value) in self.dimensions() {
            if let Some(value) = value {
                sql.push(&format!(" AND {column} = ?"), [text(value)]);
            }
        }
    }

    /// Whether a rollup or live window with these dimensions passes.
    pub fn matches_dimensions(&self, event_type: &str, source: &str, status: &str) -> bool {
        [event_type, source, status]
            .into_iter()
            .zip(self.dimensions())
            .all(|(actual, (_, wanted))| wanted.as_ref().is_none_or(|wanted| wanted == actual))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_bound_conditions() {
        let mut params = Params::from_pairs(&[
            ("type", "click"),
            ("tag", "beta"),
            ("property.plan", "pro'; DROP TABLE events"),
        ]);
        let filters = Filters::parse(&mut params).unwrap();
        assert!(!filters.rollups_cover());
        let mut sql = Sql::new("SELECT 1 WHERE 1");
        filters.events_sql(&mut sql);
        assert_eq!(sql.text.matches('?').count(), sql.binds.len());
        assert!(!sql.text.contains("DROP"), "{}", sql.text);
        assert!(filters.matches_dimensions("click", "web", ""));
        assert!(!filters.matches_dimensions("view", "web", ""));
    }

    #[test]
    fn rejects_odd_property_keys_and_ranges() {
        let mut params = Params::from_pairs(&[("property.a b", "1")]);
        assert!(Filters::parse(&mut params).is_err());
        let mut params = Params::from_pairs(&[
            ("from", "2024-01-02T00:00:00Z"),
            ("to", "2024-01-01T00:00:00Z"),
        ]);
        assert!(TimeRange::parse(&mut params).is_err());
        let mut params = Params::from_pairs(&[
            ("from", "2024-01-01T05:30:00+05:30"),
            ("to", "1704067260000"),
        ]);
        let range = TimeRange::parse(&mut params).unwrap();
        assert_eq!(range.from_ms, 1_704_067_200_000);
        assert_eq!(range.to_ms, 1_704_067_260_000);
    }
}
