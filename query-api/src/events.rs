//! `GET /v1/events`: raw events of the caller's project, newest first, a page
//! at a time.
//!
//! Pages are keyset-paginated on (event time, event id), both descending: the
//! cursor names the last event of a page and the time range of the first, so
//! events that arrive meanwhile (newer ones, or ones inserted into pages
//! already read) never shift or repeat what the next page returns.

use std::borrow::Cow;

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use sluice_schemas::time_format::{Rfc3339Ms, format_rfc3339_ms};

use crate::auth::ReadProject;
use crate::error::Result;
use crate::filters::{Bound, Filters, Sql, TimeRange, text};
use crate::params::Params;
use crate::snapshot::{EVENTS, Snapshot, read_consistent_with};
use crate::state::AppState;

pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1_000;
/// The newest slice of the range that a page reads first.
const FIRST_SLICE_MS: i64 = 15 * 60 * 1000;

/// One row as read back, borrowed from the cursor's buffer, so pages and
/// exports copy only what they keep; the column order matches
/// [`EVENT_FIELDS`].
#[derive(Debug, Row, Deserialize)]
pub struct StoredEvent<'a> {
    pub event_id: &'a str,
    pub project_id: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub timestamp_ms: u64,
    pub received_at_ms: u64,
    pub user_id: &'a str,
    pub session_id: &'a str,
    pub source: &'a str,
    pub duration_ms: Option<f64>,
    pub status: &'a str,
    #[serde(borrow)]
    pub tags: Vec<&'a str>,
    pub properties: &'a str,
    pub client_ip: &'a str,
    pub user_agent: &'a str,
}

/// An event as the API returns it: the fields the producer sent, plus what
/// the gateway added.
#[derive(Debug, Serialize)]
pub struct EventView<'a> {
    pub event_id: &'a str,
    pub project_id: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub timestamp: Rfc3339Ms,
    pub received_at: Rfc3339Ms,
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub source: Option<&'a str>,
    pub duration_ms: Option<f64>,
    pub status: Option<&'a str>,
    pub tags: &'a [&'a str],
    /// The stored JSON text as it is: checked, never rebuilt.
    pub properties: Cow<'a, RawValue>,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// The stored properties as they are when they are JSON (the processor
/// stores only JSON objects), else the stored text as a JSON string: a row
/// written some other way still reads back, never as `null`.
fn raw_json(text: &str) -> Cow<'_, RawValue> {
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) => Cow::Borrowed(raw),
        Err(_) => {
            Cow::Owned(serde_json::value::to_raw_value(text).expect("a string serializes to JSON"))
        }
    }
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

impl<'a> StoredEvent<'a> {
    pub fn view(&'a self) -> EventView<'a> {
        EventView {
            event_id: self.event_id,
            project_id: self.project_id,
            event_type: self.event_type,
            timestamp: Rfc3339Ms(self.timestamp_ms as i64),
            received_at: Rfc3339Ms(self.received_at_ms as i64),
            user_id: non_empty(self.user_id),
            session_id: non_empty(self.session_id),
            source: non_empty(self.source),
            duration_ms: self.duration_ms,
            status: non_empty(self.status),
            tags: &self.tags,
            properties: raw_json(self.properties),
            client_ip: non_empty(self.client_ip),
            user_agent: non_empty(self.user_agent),
        }
    }
}

/// Every field of an event as the API returns it ([`EventView`], the
/// exports' CSV header), in order, with the column it is read from
/// ([`StoredEvent`]).
pub const EVENT_FIELDS: [(&str, &str); 14] = [
    ("event_id", "event_id"),
    ("project_id", "project_id"),
    ("type", "type"),
    ("timestamp", "timestamp_ms"),
    ("received_at", "received_at_ms"),
    ("user_id", "user_id"),
    ("session_id", "session_id"),
    ("source", "source"),
    ("duration_ms", "duration_ms"),
    ("status", "status"),
    ("tags", "tags"),
    ("properties", "properties"),
    ("client_ip", "client_ip"),
    ("user_agent", "user_agent"),
];

/// The columns of [`EVENT_FIELDS`], for a `SELECT`.
fn event_columns() -> String {
    EVENT_FIELDS.map(|(_, column)| column).join(", ")
}

/// Where a page ends: the last event returned, and the range of the first page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub range: TimeRange,
    pub timestamp_ms: i64,
    pub event_id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "v1:{}:{}:{}:{}",
            self.range.from_ms, self.range.to_ms, self.timestamp_ms, self.event_id
        ))
    }

    pub fn decode(cursor: &str) -> Result<Self, String> {
        let invalid = || "not a cursor this API returned".to_owned();
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.splitn(5, ':');
        if parts.next() != Some("v1") {
            return Err(invalid());
        }
        let mut number = || -> Result<i64, String> {
            parts
                .next()
                .and_then(|part| part.parse().ok())
                .ok_or_else(invalid)
        };
        let (from_ms, to_ms, timestamp_ms) = (number()?, number()?, number()?);
        let event_id = parts.next().ok_or_else(invalid)?.to_owned();
        Ok(Self {
            range: TimeRange { from_ms, to_ms },
            timestamp_ms,
            event_id,
        })
    }
}

/// The project's events in `range` passing `filters`, newest first, after
/// `after` when given, with copies collapsed (see [`Snapshot`]).
/// ` AND ...`: the project's events in `range` passing `filters`.
pub fn event_conditions(project_id: &str, range: TimeRange, filters: &Filters) -> Sql {
    let mut conditions = Sql::default();
    conditions.push(" AND project_id = ?", [text(project_id)]);
    range.events_sql(&mut conditions);
    filters.events_sql(&mut conditions);
    conditions
}

pub fn select_events(
    project_id: &str,
    range: TimeRange,
    filters: &Filters,
    after: Option<&Cursor>,
    snapshot: &Snapshot,
) -> Sql {
    let mut conditions = event_conditions(project_id, range, filters);
    if let Some(after) = after {
        conditions.push(
            " AND (timestamp_ms < ? OR (timestamp_ms = ? AND event_id < ?))",
            [
                Bound::Int(after.timestamp_ms),
                Bound::Int(after.timestamp_ms),
                text(&after.event_id),
            ],
        );
    }
    let columns = event_columns();
    let mut sql = Sql::new(&format!("SELECT {columns}"));
    let from = snapshot.from(&columns, &conditions);
    sql.push(&from.text, from.binds);
    sql.push(" ORDER BY timestamp_ms DESC, event_id DESC", []);
    sql
}

pub async fn list_events(
    State(state): State<AppState>,
    ReadProject(project_id): ReadProject,
    mut params: Params,
) -> Result<Json<EventsPage>> {
    let cursor = params.parse("cursor", Cursor::decode)?;
    let range = match &cursor {
        // A cursor carries the range of the first page, so a default `to`
        // (now) does not move while paging.
        Some(cursor) => {
            TimeRange::parse(&mut params)?;
            cursor.range
        }
        None => TimeRange::parse(&mut params)?,
    };
    let limit = params
        .parse("limit", |text| {
            text.parse::<u64>()
                .ok()
                .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                .ok_or_else(|| format!("must be between 1 and {MAX_LIMIT}"))
        })?
        .unwrap_or(DEFAULT_LIMIT);
    let filters = Filters::parse(&mut params)?;
    params.finish()?;

    let wanted = limit as usize + 1;
    // Each row becomes its JSON at once, with what its cursor would need.
    let mut rows: Vec<(i64, String, Box<RawValue>)> = Vec::with_capacity(wanted);
    // Newest first: read the newest slice of the range, then older slices
    // four times as long, until the page is full. Sorting a whole day to
    // return its newest hundred events is what this avoids.
    let mut slice_end = match &cursor {
        Some(cursor) => (cursor.timestamp_ms + 1).min(range.to_ms),
        None => range.to_ms,
    };
    let mut span = FIRST_SLICE_MS;
    while rows.len() < wanted && slice_end > range.from_ms {
        let slice = TimeRange {
            from_ms: (slice_end - span).max(range.from_ms),
            to_ms: slice_end,
        };
        let missing = (wanted - rows.len()) as i64;
        let found = read_consistent_with::<StoredEvent<'_>, _>(
            &state.clickhouse,
            EVENTS,
            |snapshot| {
                let mut sql =
                    select_events(&project_id, slice, &filters, cursor.as_ref(), snapshot);
                sql.push(" LIMIT ?", [Bound::Int(missing)]);
                sql
            },
            |row| {
                // As text, never as a `Value` tree: a number a float cannot
                // hold reads back as it was stored instead of failing.
                let json = serde_json::value::to_raw_value(&row.view()).unwrap_or_else(|error| {
                    let unreadable = json!({"event_id": row.event_id, "error": error.to_string()});
                    serde_json::value::to_raw_value(&unreadable).expect("JSON of strings")
                });
                (row.timestamp_ms as i64, row.event_id.to_owned(), json)
            },
        )
        .await?;
        rows.extend(found);
        slice_end = slice.from_ms;
        span = span.saturating_mul(4);
    }
    let next_cursor = (rows.len() as u64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|(timestamp_ms, event_id, _)| {
            Cursor {
                range,
                timestamp_ms: *timestamp_ms,
                event_id: event_id.clone(),
            }
            .encode()
        })
    });
    Ok(Json(EventsPage {
        events: rows.into_iter().map(|(_, _, json)| json).collect(),
        next_cursor: next_cursor.flatten(),
        from: format_rfc3339_ms(range.from_ms),
        to: format_rfc3339_ms(range.to_ms),
    }))
}

/// A page of `GET /v1/events`. Each event is kept as its JSON text, never
/// as a `Value` tree, so it reads back as stored.
#[derive(Debug, Serialize)]
pub struct EventsPage {
    events: Vec<Box<RawValue>>,
    next_cursor: Option<String>,
    from: String,
    to: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_view_has_the_fields_in_their_order() {
        let stored = StoredEvent {
            event_id: "e",
            project_id: "p",
            event_type: "t",
            timestamp_ms: 1,
            received_at_ms: 2,
            user_id: "",
            session_id: "",
            source: "",
            duration_ms: None,
            status: "",
            tags: Vec::new(),
            properties: "{}",
            client_ip: "",
            user_agent: "",
        };
        let text = serde_json::to_string(&stored.view()).unwrap();
        let fields =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text).unwrap();
        assert_eq!(fields.len(), EVENT_FIELDS.len(), "{text}");
        let at: Vec<usize> = EVENT_FIELDS
            .iter()
            .map(|(name, _)| text.find(&format!("\"{name}\":")).expect(name))
            .collect();
        assert!(at.is_sorted(), "{text}");
        assert!(event_columns().starts_with("event_id, project_id, type, timestamp_ms"));
    }

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let cursor = Cursor {
            range: TimeRange {
                from_ms: 1,
                to_ms: 99,
            },
            timestamp_ms: 42,
            event_id: "id:with:colons".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        assert!(Cursor::decode("bm9wZQ").is_err());
        assert!(Cursor::decode("!!").is_err());
    }
}
