//! `GET /v1/export/events` and `GET /v1/export/metrics`: files in CSV, JSON
//! or NDJSON.
//!
//! Event exports stream: the range is cut into slices of whole hours of
//! about half a million events (counted first), read newest first, each
//! sorted by ClickHouse while the slice before it leaves in chunks of about
//! 64 KiB; memory stays constant however many rows the range holds. An error after the first byte cannot change the status any
//! more; it ends the body early (a JSON file is then visibly incomplete) and
//! goes to the log. CSV text cells that start with `=`, `+`, `-`, `@`, tab or
//! carriage return get a leading `'`, so spreadsheets do not run them as
//! formulas.

use std::collections::VecDeque;
use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::Value;
use sluice_schemas::time_format::{Rfc3339Ms, format_rfc3339_ms};
use tokio::sync::mpsc;

use crate::error::Result;
use crate::events::{StoredEvent, event_conditions, select_events};
use crate::filters::{Filters, Sql, TimeRange};
use crate::metrics::request::MetricsRequest;
use crate::metrics::{self, shape};
use crate::params::Params;
use crate::routes::{AppState, authorize};
use crate::snapshot::Snapshot;

const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Ndjson,
}

impl Format {
    fn parse(params: &mut Params) -> Result<Self> {
        Ok(params
            .parse("format", |text| match text {
                "csv" => Ok(Self::Csv),
                "json" => Ok(Self::Json),
                "ndjson" => Ok(Self::Ndjson),
                _ => Err("use csv, json or ndjson".to_owned()),
            })?
            .unwrap_or(Self::Csv))
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
        }
    }
}

/// Appends `value` as one CSV cell (RFC 4180 quoting), escaping formulas in
/// text cells.
pub fn csv_cell(out: &mut Vec<u8>, value: &str, is_text: bool) {
    let bytes = value.as_bytes();
    let formula = is_text
        && bytes
            .first()
            .is_some_and(|first| matches!(first, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'));
    let quote = formula
        || bytes
            .iter()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if !quote {
        out.extend_from_slice(bytes);
        return;
    }
    out.push(b'"');
    if formula {
        out.push(b'\'');
    }
    // Each quote inside is doubled.
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'"') {
        out.extend_from_slice(&rest[..=at]);
        out.push(b'"');
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

fn csv_line(out: &mut Vec<u8>, cells: &[(&str, bool)]) {
    for (index, (value, is_text)) in cells.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        csv_cell(out, value, *is_text);
    }
    out.extend_from_slice(b"\r\n");
}

fn file_time(ms: i64) -> String {
    format_rfc3339_ms(ms)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn file_response(format: Format, name: &str, range: TimeRange, body: Body) -> Response {
    let file = format!(
        "sluice-{name}-{}-{}.{}",
        file_time(range.from_ms),
        file_time(range.to_ms),
        format.extension()
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    // The name is made of ASCII letters, digits, dashes and a dot only.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

const EVENT_HEADER: [&str; 14] = [
    "event_id",
    "project_id",
    "type",
    "timestamp",
    "received_at",
    "user_id",
    "session_id",
    "source",
    "duration_ms",
    "status",
    "tags",
    "properties",
    "client_ip",
    "user_agent",
];

/// Writes one event in `format` (a JSON row led by `,`); `scratch` holds
/// the cells CSV formats.
fn write_event(out: &mut Vec<u8>, format: Format, row: &StoredEvent<'_>, scratch: &mut Vec<u8>) {
    match format {
        Format::Csv => {
            // Times, duration and tags, formatted one after the other.
            scratch.clear();
            let _ = write!(scratch, "{}", Rfc3339Ms(row.timestamp_ms as i64));
            let timestamp_end = scratch.len();
            let _ = write!(scratch, "{}", Rfc3339Ms(row.received_at_ms as i64));
            let received_end = scratch.len();
            if let Some(duration) = row.duration_ms {
                let _ = write!(scratch, "{duration}");
            }
            let duration_end = scratch.len();
            let _ = serde_json::to_writer(&mut *scratch, &row.tags);
            let formatted = |from: usize, to: usize| {
                std::str::from_utf8(&scratch[from..to]).unwrap_or_default()
            };
            csv_line(
                out,
                &[
                    (row.event_id, true),
                    (row.project_id, true),
                    (row.event_type, true),
                    (formatted(0, timestamp_end), false),
                    (formatted(timestamp_end, received_end), false),
                    (row.user_id, true),
                    (row.session_id, true),
                    (row.source, true),
                    (formatted(received_end, duration_end), false),
                    (row.status, true),
                    (formatted(duration_end, scratch.len()), true),
                    (row.properties, true),
                    (row.client_ip, true),
                    (row.user_agent, true),
                ],
            );
        }
        Format::Json => {
            out.extend_from_slice(b",\n");
            let _ = serde_json::to_writer(&mut *out, &row.view());
        }
        Format::Ndjson => {
            let _ = serde_json::to_writer(&mut *out, &row.view());
            out.push(b'\n');
        }
    }
}

/// Chunks a slice may hold ready before the response takes them.
const CHUNKS_AHEAD: usize = 4;

#[derive(Debug, Row, Deserialize)]
struct HourRows {
    hour: u32,
    rows: u64,
}

/// Splits `range` into slices of whole hours (the ends clamped to the range)
/// holding about `slice_rows` events each, newest first. The counts are
/// read without `FINAL`: copies only make a slice smaller than planned.
async fn plan_slices(
    client: &clickhouse::Client,
    project_id: &str,
    range: TimeRange,
    filters: &Filters,
    slice_rows: u64,
) -> Result<Vec<TimeRange>> {
    let mut sql = Sql::new(
        "SELECT toUInt32(toStartOfHour(timestamp)) AS hour, count() AS rows FROM events WHERE 1",
    );
    let conditions = event_conditions(project_id, range, filters);
    sql.push(&conditions.text, conditions.binds);
    sql.push(" GROUP BY hour ORDER BY hour DESC", []);
    let hours = sql.query(client).fetch_all::<HourRows>().await?;
    Ok(slices_of(range, &hours, slice_rows))
}

/// The slices of `range` for its hours' counts (newest first).
fn slices_of(range: TimeRange, hours: &[HourRows], slice_rows: u64) -> Vec<TimeRange> {
    let mut slices = Vec::new();
    let mut end = range.to_ms;
    let mut rows = 0;
    for hour in hours {
        rows += hour.rows;
        let start = i64::from(hour.hour) * 1000;
        if rows >= slice_rows && start > range.from_ms && start < end {
            slices.push(TimeRange {
                from_ms: start,
                to_ms: end,
            });
            end = start;
            rows = 0;
        }
    }
    if end > range.from_ms {
        slices.push(TimeRange {
            from_ms: range.from_ms,
            to_ms: end,
        });
    }
    slices
}

type Chunk = std::result::Result<Bytes, clickhouse::error::Error>;

/// Reads one slice in a task of its own, as chunks of written rows (each
/// row of a JSON file led by `,`), so ClickHouse reads and sorts the next
/// slice while the response sends this one. The task ends when the slice
/// does or when nobody takes its chunks any more.
fn spawn_slice(client: clickhouse::Client, sql: Sql, format: Format) -> mpsc::Receiver<Chunk> {
    let (chunks, receiver) = mpsc::channel(CHUNKS_AHEAD);
    tokio::spawn(async move {
        let mut cursor = match sql.query(&client).fetch::<StoredEvent<'static>>() {
            Ok(cursor) => cursor,
            Err(error) => {
                let _ = chunks.send(Err(error)).await;
                return;
            }
        };
        let mut scratch = Vec::new();
        let mut out = Vec::with_capacity(CHUNK_BYTES + 4096);
        loop {
            match cursor.next().await {
                Ok(Some(row)) => {
                    write_event(&mut out, format, &row, &mut scratch);
                    if out.len() >= CHUNK_BYTES {
                        let full =
                            std::mem::replace(&mut out, Vec::with_capacity(CHUNK_BYTES + 4096));
                        if chunks.send(Ok(Bytes::from(full))).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => {
                    if !out.is_empty() {
                        let _ = chunks.send(Ok(Bytes::from(out))).await;
                    }
                    return;
                }
                Err(error) => {
                    let _ = chunks.send(Err(error)).await;
                    return;
                }
            }
        }
    });
    receiver
}

/// The slices of an export, each started one slice ahead of its turn.
struct SlicedExport {
    client: clickhouse::Client,
    format: Format,
    /// The queries of the slices not started yet, newest first.
    waiting: VecDeque<Sql>,
    /// Started slices, in order; the front one is being sent.
    started: VecDeque<mpsc::Receiver<Chunk>>,
    /// Whether a row went out yet (the first JSON row has no comma).
    wrote_rows: bool,
    done: bool,
}

impl SlicedExport {
    async fn next_chunk(&mut self) -> Option<Chunk> {
        while !self.done {
            while self.started.len() < 2
                && let Some(sql) = self.waiting.pop_front()
            {
                let slice = spawn_slice(self.client.clone(), sql, self.format);
                self.started.push_back(slice);
            }
            let Some(front) = self.started.front_mut() else {
                self.done = true;
                return (self.format == Format::Json).then(|| Ok(Bytes::from_static(b"\n]\n")));
            };
            match front.recv().await {
                Some(Ok(chunk)) => {
                    let first = !self.wrote_rows;
                    self.wrote_rows = true;
                    return Some(Ok(if first && self.format == Format::Json {
                        chunk.slice(1..)
                    } else {
                        chunk
                    }));
                }
                Some(Err(error)) => {
                    tracing::error!(cause = %error, "export stopped by a ClickHouse error");
                    self.done = true;
                    return Some(Err(error));
                }
                None => {
                    self.started.pop_front();
                }
            }
        }
        None
    }
}

pub async fn export_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut params: Params,
) -> Result<Response> {
    let project_id = authorize(&state, &headers)?;
    let format = Format::parse(&mut params)?;
    let range = TimeRange::parse(&mut params)?;
    let filters = Filters::parse(&mut params)?;
    params.finish()?;
    let slice_rows = state.settings.export_slice_rows;
    let slices = plan_slices(&state.clickhouse, &project_id, range, &filters, slice_rows).await?;
    // A stream cannot be taken back, so it never skips FINAL. Copies of an
    // event share its time, so they fall into one slice.
    let waiting = slices
        .into_iter()
        .map(|slice| select_events(&project_id, slice, &filters, None, &Snapshot::all_final()))
        .collect();
    let mut head = Vec::new();
    match format {
        Format::Csv => csv_line(&mut head, &EVENT_HEADER.map(|name| (name, false))),
        Format::Json => head.push(b'['),
        Format::Ndjson => {}
    }
    let export = SlicedExport {
        client: state.clickhouse.clone(),
        format,
        waiting,
        started: VecDeque::new(),
        wrote_rows: false,
        done: false,
    };
    let chunks = futures::stream::unfold(export, |mut export| async move {
        export.next_chunk().await.map(|chunk| (chunk, export))
    });
    let head = futures::stream::once(async move { Ok(Bytes::from(head)) });
    let body = Body::from_stream(futures::StreamExt::chain(head, chunks));
    Ok(file_response(format, "events", range, body))
}

pub async fn export_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut params: Params,
) -> Result<Response> {
    let project_id = authorize(&state, &headers)?;
    let format = Format::parse(&mut params)?;
    let request = MetricsRequest::parse(&mut params)?;
    params.finish()?;
    let answer = metrics::answer(&state, &project_id, request).await?;
    let request = &answer.request;
    let columns = shape::columns(request);
    let mut out = Vec::new();
    match format {
        Format::Csv => {
            let header: Vec<(&str, bool)> = columns.iter().map(|c| (c.as_str(), false)).collect();
            csv_line(&mut out, &header);
            for (key, cell) in &answer.cells {
                let row = shape::json_row(request, key, cell);
                let cells: Vec<(String, bool)> = columns
                    .iter()
                    .map(|column| match &row[column] {
                        Value::String(text) => (text.clone(), column != "bucket"),
                        Value::Null => (String::new(), false),
                        other => (other.to_string(), false),
                    })
                    .collect();
                let cells: Vec<(&str, bool)> =
                    cells.iter().map(|(v, t)| (v.as_str(), *t)).collect();
                csv_line(&mut out, &cells);
            }
        }
        Format::Json | Format::Ndjson => {
            let rows = answer
                .cells
                .iter()
                .map(|(key, cell)| shape::json_row(request, key, cell));
            if format == Format::Json {
                let rows: Vec<Value> = rows.collect();
                let _ = serde_json::to_writer(&mut out, &rows);
            } else {
                for row in rows {
                    let _ = serde_json::to_writer(&mut out, &row);
                    out.push(b'\n');
                }
            }
        }
    }
    Ok(file_response(
        format,
        "metrics",
        request.aligned_range(),
        Body::from(out),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(value: &str, is_text: bool) -> String {
        let mut out = Vec::new();
        csv_cell(&mut out, value, is_text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn slices_cover_the_range_newest_first_at_hour_starts() {
        const HOUR_MS: i64 = 3_600_000;
        let range = TimeRange {
            from_ms: 10 * HOUR_MS + 5,
            to_ms: 20 * HOUR_MS + 7,
        };
        let hours = |counts: &[(i64, u64)]| -> Vec<HourRows> {
            counts
                .iter()
                .map(|&(hour, rows)| HourRows {
                    hour: (hour * 3600) as u32,
                    rows,
                })
                .collect()
        };
        const ROWS: u64 = 1_000;
        let half = ROWS / 2;
        let slices = slices_of(
            range,
            &hours(&[(20, half), (19, half), (15, 1), (12, ROWS), (10, 3)]),
            ROWS,
        );
        let bounds: Vec<(i64, i64)> = slices.iter().map(|s| (s.from_ms, s.to_ms)).collect();
        assert_eq!(
            bounds,
            [
                (19 * HOUR_MS, range.to_ms),
                (12 * HOUR_MS, 19 * HOUR_MS),
                (range.from_ms, 12 * HOUR_MS)
            ]
        );
        // Few rows: one slice; none: still one, so the file has its head.
        assert_eq!(slices_of(range, &hours(&[(11, 5)]), ROWS), [range]);
        assert_eq!(slices_of(range, &[], ROWS), [range]);
        // The first hour of the range is never cut off on its own.
        assert_eq!(slices_of(range, &hours(&[(10, ROWS * 3)]), ROWS), [range]);
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_escaped() {
        assert_eq!(cell("plain", true), "plain");
        assert_eq!(cell("a,b", true), "\"a,b\"");
        assert_eq!(cell("say \"hi\"", true), "\"say \"\"hi\"\"\"");
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(cell(formula, true).starts_with("\"'"), "{formula}");
        }
        assert_eq!(cell("-1.5", false), "-1.5");
        assert_eq!(cell("line\nbreak", true), "\"line\nbreak\"");
    }
}
