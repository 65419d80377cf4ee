//! `GET /v1/export/events` and `GET /v1/export/metrics`: files in CSV, JSON
//! or NDJSON.
//!
//! Event exports stream in chunks of about 64 KiB, read in slices
//! ([`slices`]), so memory stays constant however many rows the range
//! holds. An error after the first byte cannot change the status any more; it ends the body early (a JSON file is then visibly incomplete) and
//! goes to the log. CSV text cells that start with `=`, `+`, `-`, `@`, tab or
//! carriage return get a leading `'`, so spreadsheets do not run them as
//! formulas.

mod slices;

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sluice_schemas::time_format::{Rfc3339Ms, format_rfc3339_ms};

use crate::auth::ReadProject;
use crate::error::Result;
use crate::events::{EVENT_FIELDS, StoredEvent, select_events};
use crate::filters::{Filters, TimeRange};
use crate::metrics::request::MetricsRequest;
use crate::metrics::{self, shape};
use crate::params::Params;
use crate::snapshot::Snapshot;
use crate::state::AppState;
use slices::SlicedExport;

pub(crate) const CHUNK_BYTES: usize = 64 * 1024;

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

/// Writes one event in `format` (a JSON row led by `,`); `scratch` holds
/// the cells CSV formats.
pub(crate) fn write_event(
    out: &mut Vec<u8>,
    format: Format,
    row: &StoredEvent<'_>,
    scratch: &mut Vec<u8>,
) {
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

pub async fn export_events(
    State(state): State<AppState>,
    ReadProject(project_id): ReadProject,
    mut params: Params,
) -> Result<Response> {
    let format = Format::parse(&mut params)?;
    let range = TimeRange::parse(&mut params)?;
    let filters = Filters::parse(&mut params)?;
    params.finish()?;
    let slice_rows = state.settings.export_slice_rows;
    let slices = slices::plan(&state.clickhouse, &project_id, range, &filters, slice_rows).await?;
    // A stream cannot be taken back, so it never skips FINAL. Copies of an
    // event share its time, so they fall into one slice.
    let waiting = slices
        .into_iter()
        .map(|slice| select_events(&project_id, slice, &filters, None, &Snapshot::all_final()))
        .collect();
    let mut head = Vec::new();
    match format {
        Format::Csv => csv_line(&mut head, &EVENT_FIELDS.map(|(name, _)| (name, false))),
        Format::Json => head.push(b'['),
        Format::Ndjson => {}
    }
    let export = SlicedExport::new(state.clickhouse.clone(), format, waiting);
    let chunks = futures::stream::unfold(export, |mut export| async move {
        export.next_chunk().await.map(|chunk| (chunk, export))
    });
    let head = futures::stream::once(async move { Ok(Bytes::from(head)) });
    let body = Body::from_stream(futures::StreamExt::chain(head, chunks));
    Ok(file_response(format, "events", range, body))
}

pub async fn export_metrics(
    State(state): State<AppState>,
    ReadProject(project_id): ReadProject,
    mut params: Params,
) -> Result<Response> {
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
