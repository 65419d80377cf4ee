//! Event exports read in slices: the range is cut into slices of whole
//! hours of about `--export-slice-rows` events (counted first), read newest
//! first, each by a task of its own one slice ahead, so ClickHouse sorts the
//! next slice while the current one is sent.

use std::collections::VecDeque;

use axum::body::Bytes;
use clickhouse::Row;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{CHUNK_BYTES, Format, write_event};
use crate::error::Result;
use crate::events::{StoredEvent, event_conditions};
use crate::filters::{Filters, Sql, TimeRange};

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
pub async fn plan(
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
pub struct SlicedExport {
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
    /// An export of the slices whose queries are `waiting`, newest first.
    pub fn new(client: clickhouse::Client, format: Format, waiting: VecDeque<Sql>) -> Self {
        Self {
            client,
            format,
            waiting,
            started: VecDeque::new(),
            wrote_rows: false,
            done: false,
        }
    }

    pub async fn next_chunk(&mut self) -> Option<Chunk> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
