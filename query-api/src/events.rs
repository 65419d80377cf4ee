//! `GET /v1/events`: raw events of the caller's project, newest first.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_runtime::auth::presented_key;
use sluice_runtime::keys::Scope;
use sluice_schemas::time_format::{DAY_MS, format_rfc3339_ms, now_ms, parse_rfc3339_ms};

use crate::error::{ApiError, Result};
use crate::routes::AppState;

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1_000;

/// Query string of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Start of the time range (inclusive): RFC 3339 or epoch ms; default 24 h before `to`.
    from: Option<String>,
    /// End of the time range (exclusive): RFC 3339 or epoch ms; default now.
    to: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Most events to return, 1 to 1000; default 100.
    limit: Option<u64>,
}

/// One row as read back; the column order matches [`SELECT_EVENTS`].
#[derive(Debug, Row, Deserialize)]
struct StoredEvent {
    event_id: String,
    project_id: String,
    #[serde(rename = "type")]
    event_type: String,
    timestamp_ms: u64,
    received_at_ms: u64,
    user_id: String,
    session_id: String,
    source: String,
    duration_ms: Option<f64>,
    status: String,
    tags: Vec<String>,
    properties: String,
    client_ip: String,
    user_agent: String,
}

/// An event as the API returns it: the fields the producer sent, plus what
/// the gateway added.
#[derive(Debug, Serialize)]
pub struct EventView {
    event_id: String,
    project_id: String,
    #[serde(rename = "type")]
    event_type: String,
    timestamp: String,
    received_at: String,
    user_id: Option<String>,
    session_id: Option<String>,
    source: Option<String>,
    duration_ms: Option<f64>,
    status: Option<String>,
    tags: Vec<String>,
    properties: Value,
    client_ip: Option<String>,
    user_agent: Option<String>,
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
            properties: serde_json::from_str(&row.properties).unwrap_or(Value::Null),
            client_ip: non_empty(row.client_ip),
            user_agent: non_empty(row.user_agent),
        }
    }
}

/// `FINAL` collapses replayed and retried copies of an event before they are counted.
const SELECT_EVENTS: &str = "
    SELECT event_id, project_id, type, timestamp_ms, received_at_ms, user_id, session_id,
           source, duration_ms, status, tags, properties, client_ip, user_agent
    FROM events FINAL
    WHERE project_id = ?
      AND timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
      AND timestamp_ms >= ? AND timestamp_ms < ?
      AND (? = '' OR type = ?)
    ORDER BY timestamp_ms DESC, event_id DESC
    LIMIT ?";

pub async fn list_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: std::result::Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let key = state
        .keys
        .authorize(&presented_key(&headers).unwrap_or_default(), Scope::Read)?;
    let project_id = key.project_id.as_str();
    let Query(query) = query.map_err(|rejection| ApiError::InvalidParameter {
        name: "query",
        reason: rejection.body_text(),
    })?;
    let to_ms = match &query.to {
        Some(text) => parse_time("to", text)?,
        None => now_ms() + 1,
    };
    let from_ms = match &query.from {
        Some(text) => parse_time("from", text)?,
        None => (to_ms - DAY_MS).max(0),
    };
    if from_ms >= to_ms {
        return Err(ApiError::InvalidParameter {
            name: "from",
            reason: "must be before `to`".into(),
        });
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidParameter {
            name: "limit",
            reason: format!("must be between 1 and {MAX_LIMIT}"),
        });
    }
    let event_type = query.event_type.unwrap_or_default();
    let rows = state
        .clickhouse
        .query(SELECT_EVENTS)
        .bind(project_id)
        .bind(from_ms / 1000)
        .bind(to_ms / 1000)
        .bind(from_ms)
        .bind(to_ms)
        .bind(&event_type)
        .bind(&event_type)
        .bind(limit)
        .fetch_all::<StoredEvent>()
        .await?;
    let events: Vec<EventView> = rows.into_iter().map(EventView::from).collect();
    Ok(Json(serde_json::json!({
        "events": events,
        "from": format_rfc3339_ms(from_ms),
        "to": format_rfc3339_ms(to_ms),
    })))
}

fn parse_time(name: &'static str, text: &str) -> Result<i64> {
    text.parse::<i64>()
        .ok()
        .or_else(|| parse_rfc3339_ms(text))
        .filter(|ms| *ms >= 0)
        .ok_or_else(|| ApiError::InvalidParameter {
            name,
            reason: "must be an RFC 3339 date-time or epoch milliseconds".into(),
        })
}
