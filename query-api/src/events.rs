//! `GET /v1/events`: raw events of the caller's project, newest first, a page
//! at a time.
//!
//! Pages are keyset-paginated on (event time, event id), both descending: the
//! cursor names the last event of a page and the time range of the first, so
//! events that arrive meanwhile (newer ones, or ones inserted into pages
//! already read) never shift or repeat what the next page returns.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sluice_schemas::time_format::format_rfc3339_ms;

use crate::error::Result;
use crate::filters::{Bound, Filters, Sql, TimeRange, text};
use crate::params::Params;
use crate::routes::{AppState, authorize};
use crate::snapshot::{Snapshot, read_consistent};

pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1_000;
/// The newest slice of the range that a page reads first.
const FIRST_SLICE_MS: i64 = 15 * 60 * 1000;

/// One row as read back; the column order matches [`EVENT_COLUMNS`].
#[derive(Debug, Row, Deserialize)]
pub struct StoredEvent {
    pub event_id: String,
    pub project_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp_ms: u64,
    pub received_at_ms: u64,
    pub user_id: String,
    pub session_id: String,
    pub source: String,
    pub duration_ms: Option<f64>,
    pub status: String,
    pub tags: Vec<String>,
    pub properties: String,
    pub client_ip: String,
    pub user_agent: String,
}

/// An event as the API returns it: the fields the producer sent, plus what
/// the gateway added.
#[derive(Debug, Serialize)]
pub struct EventView {
    pub event_id: String,
    pub project_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: String,
    pub received_at: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub source: Option<String>,
    pub duration_ms: Option<f64>,
    pub status: Option<String>,
    pub tags: Vec<String>,
    /// The stored JSON text as it is: parsed once to check it, never rebuilt.
    pub properties: Box<RawValue>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// `text` as JSON, or `null` if it is not JSON (the processor stores only
/// JSON objects).
fn raw_json(text: String) -> Box<RawValue> {
    RawValue::from_string(text)
        .or_else(|_| RawValue::from_string("null".to_owned()))
        .expect("null is JSON")
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

impl From<StoredEvent> for EventView {
    fn from(row: StoredEvent) -> Self {
        Self {
            event_id: row.event_id,
            project_id: row.project_id,
            event_type: row.event_type,
            timestamp: format_rfc3339_ms(row.timestamp_ms as i64),
            received_at: format_rfc3339_ms(row.received_at_ms as i64),
            user_id: non_empty(row.user_id),
            session_id: non_empty(row.session_id),
            source: non_empty(row.source),
            duration_ms: row.duration_ms,
            status: non_empty(row.status),
            tags: row.tags,
            properties: raw_json(row.properties),
            client_ip: non_empty(row.client_ip),
            user_agent: non_empty(row.user_agent),
        }
    }
}

pub const EVENT_COLUMNS: &str = "event_id, project_id, type, timestamp_ms, received_at_ms, \
    user_id, session_id, source, duration_ms, status, tags, properties, client_ip, user_agent";

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
pub fn select_events(
    project_id: &str,
    range: TimeRange,
    filters: &Filters,
    after: Option<&Cursor>,
    snapshot: &Snapshot,
) -> Sql {
    let mut conditions = Sql::default();
    conditions.push(" AND project_id = ?", [text(project_id)]);
    range.events_sql(&mut conditions);
    filters.events_sql(&mut conditions);
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
    let mut sql = Sql::new(&format!("SELECT {EVENT_COLUMNS}"));
    let from = snapshot.from_events(EVENT_COLUMNS, &conditions);
    sql.push(&from.text, from.binds);
    sql.push(" ORDER BY timestamp_ms DESC, event_id DESC", []);
    sql
}

pub async fn list_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut params: Params,
) -> Result<Json<Value>> {
    let project_id = authorize(&state, &headers)?;
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
    let mut rows: Vec<StoredEvent> = Vec::with_capacity(wanted);
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
        let found: Vec<StoredEvent> = read_consistent(&state.clickhouse, |snapshot| {
            let mut sql = select_events(&project_id, slice, &filters, cursor.as_ref(), snapshot);
            sql.push(" LIMIT ?", [Bound::Int(missing)]);
            sql
        })
        .await?;
        rows.extend(found);
        slice_end = slice.from_ms;
        span = span.saturating_mul(4);
    }
    let next_cursor = (rows.len() as u64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|last| {
            Cursor {
                range,
                timestamp_ms: last.timestamp_ms as i64,
                event_id: last.event_id.clone(),
            }
            .encode()
        })
    });
    let events: Vec<EventView> = rows.into_iter().map(EventView::from).collect();
    Ok(Json(json!({
        "events": events,
        "next_cursor": next_cursor.flatten(),
        "from": format_rfc3339_ms(range.from_ms),
        "to": format_rfc3339_ms(range.to_ms),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

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
