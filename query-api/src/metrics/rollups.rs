//! The rollup path: partial rows of the `rollups` table (one per window,
//! source partition and correction; `FINAL` drops replayed copies) merged
//! into one aggregate per bucket and group, to which the newest minutes'
//! raw events may still add.
//!
//! A group-by on one property reads `property_rollups` for that key instead,
//! if the processor rolled it up over the whole range: the rows of a key add
//! up to the count of `rollups` where it did, and fall short where it did
//! not (a key added later, or an instance without it). [`read`] compares
//! the two counts, read at the same time, and answers `None` when they
//! differ, for the raw path to answer instead.
//!
//! Questions without uniques or percentiles need no sketch: ClickHouse adds
//! the exact columns up per bucket and group ([`read_scalars`]), so only
//! the answer's rows travel. Sketches are merged in Rust with the rollup model
//! ([`read_sketches`]), a row per partial.

use std::sync::Arc;

use clickhouse::Row;
use serde::Deserialize;
use tokio::task::JoinSet;

use sluice_schemas::rollup::{Aggregate, QuantileSketch};

use super::raw::{PropertyValues, group_of as raw_group_of, select_bucket_and_groups};
use super::request::{Dimension, Metric, MetricsRequest};
use super::{GroupKey, MAX_ROWS, MINUTE_MS, Partials, column_if, merge_partials};
use crate::error::{ApiError, Result};
use crate::filters::{Bound, Sql, TimeRange, text};
use crate::snapshot::{
    PROPERTY_ROLLUPS, ROLLUPS, Snapshot, Table, fold_consistent, read_consistent,
};

const HOUR_MS: i64 = 60 * MINUTE_MS;

/// Which table of partials answers, and for which property key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source<'a> {
    Windows,
    Property(&'a str),
}

impl Source<'_> {
    fn of(request: &MetricsRequest) -> Source<'_> {
        match request.grouped_properties()[..] {
            [key] => Source::Property(key),
            _ => Source::Windows,
        }
    }

    fn table(self) -> Table {
        match self {
            Source::Windows => ROLLUPS,
            Source::Property(_) => PROPERTY_ROLLUPS,
        }
    }

    /// The property value column (empty for `rollups`).
    fn property_value_column(self) -> &'static str {
        match self {
            Source::Windows => "'' AS property_value",
            Source::Property(_) => "property_value",
        }
    }
}

/// What the merge reads of a partial row of `rollups` or
/// `property_rollups`, borrowed from the cursor's buffer (a question may
/// merge hundreds of thousands); the column order matches [`columns`].
#[derive(Debug, Row, Deserialize)]
struct PartialRow<'a> {
    minute: u32,
    #[serde(rename = "type")]
    event_type: &'a str,
    source: &'a str,
    status: &'a str,
    property_value: &'a str,
    count: u64,
    duration_count: u64,
    duration_sum_us: u64,
    duration_min: Option<f64>,
    duration_max: Option<f64>,
    users: &'a [u8],
    sessions: &'a [u8],
    durations: &'a [u8],
}

/// The columns of [`PartialRow`], with the sketches a request does not need
/// replaced by empty strings (they are most of a row's bytes).
fn columns(request: &MetricsRequest, source: Source<'_>) -> String {
    let sketch = column_if;
    format!(
        "minute, type, source, status, {}, count, duration_count, duration_sum_us, \
         duration_min, duration_max, {}, {}, {}",
        source.property_value_column(),
        sketch(request.wants_users(), "users"),
        sketch(request.wants_sessions(), "sessions"),
        sketch(request.wants_quantiles(), "durations"),
    )
}

/// Adds a partial rollup row to `aggregate`; its user and session sketches
/// go straight into the aggregate's (no sketch built per row).
fn merge_row(aggregate: &mut Aggregate, row: &PartialRow<'_>) -> Result<()> {
    let corrupt = |error: sluice_schemas::rollup::DecodeError| {
        ApiError::CorruptRollup(format!(
            "{error:?} in the partial of {} {}/{}/{}",
            row.minute, row.event_type, row.source, row.status
        ))
    };
    aggregate.merge(&Aggregate {
        count: row.count,
        duration_count: row.duration_count,
        duration_sum_us: row.duration_sum_us,
        duration_min: row.duration_min,
        duration_max: row.duration_max,
        durations: if row.durations.is_empty() {
            QuantileSketch::default()
        } else {
            QuantileSketch::from_bytes(row.durations).map_err(corrupt)?
        },
        ..Aggregate::default()
    });
    for (sketch, bytes) in [
        (&mut aggregate.users, row.users),
        (&mut aggregate.sessions, row.sessions),
    ] {
        if !bytes.is_empty() {
            sketch.merge_bytes(bytes).map_err(corrupt)?;
        }
    }
    Ok(())
}

fn group_of(request: &MetricsRequest, row: &PartialRow<'_>) -> Vec<String> {
    request
        .group_by
        .iter()
        .map(|dimension| match dimension {
            Dimension::Type => row.event_type,
            Dimension::Source => row.source,
            Dimension::Status => row.status,
            // Rows of `property_rollups` for the one key grouped by.
            Dimension::Property(_) => row.property_value,
        })
        .map(str::to_owned)
        .collect()
}

/// The partials of `range`, or `None` when the group-by is on a property
/// that `property_rollups` does not cover over all of it.
pub async fn read(
    client: &clickhouse::Client,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
) -> Result<Option<Partials>> {
    let source = Source::of(request);
    let partials = async {
        if request.wants_users() || request.wants_sessions() || request.wants_quantiles() {
            read_sketches(client, request, project_id, range).await
        } else {
            read_scalars(client, request, project_id, range, source).await
        }
    };
    if source == Source::Windows {
        return Ok(Some(partials.await?));
    }
    let (partials, windows_count) =
        tokio::try_join!(partials, count_events(client, request, project_id, range))?;
    let property_count: u64 = partials
        .values()
        .map(|(aggregate, _)| aggregate.count)
        .sum();
    Ok((property_count == windows_count).then_some(partials))
}

/// The events that `rollups` counts in `range` under the request's filters.
async fn count_events(
    client: &clickhouse::Client,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
) -> Result<u64> {
    let counts: Vec<u64> = read_consistent(client, ROLLUPS, |snapshot| {
        let select = Sql::new("SELECT sum(count)");
        let source = Source::Windows;
        with_rollups_from(
            select, request, project_id, range, "count", snapshot, source,
        )
    })
    .await?;
    Ok(counts.into_iter().sum())
}

/// `select` followed by `FROM rollups ...` (or `property_rollups`): the
/// rows of the project in `range` passing the filters, passing on `columns`.
fn with_rollups_from(
    mut select: Sql,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
    columns: &str,
    snapshot: &Snapshot,
    source: Source<'_>,
) -> Sql {
    let mut conditions = Sql::default();
    conditions.push(" AND project_id = ?", [text(project_id)]);
    if let Source::Property(key) = source {
        conditions.push(" AND property_key = ?", [text(key)]);
    }
    // Windows are whole minutes and the range is whole buckets.
    conditions.push(
        " AND minute >= toDateTime(?) AND minute < toDateTime(?)",
        [
            Bound::Int(range.from_ms / 1000),
            Bound::Int(range.to_ms / 1000),
        ],
    );
    request.filters.rollups_sql(&mut conditions);
    let from = snapshot.from(columns, &conditions);
    select.push(&from.text, from.binds);
    select
}

/// The columns the scalar sums read.
fn scalar_columns(source: Source<'_>) -> String {
    let columns = "minute, type, source, status, count, duration_count, duration_sum_us, \
                   duration_min, duration_max";
    match source {
        Source::Windows => columns.to_owned(),
        Source::Property(_) => format!("{columns}, property_value"),
    }
}

#[derive(Debug, Row, Deserialize)]
struct ScalarRow {
    bucket: i64,
    groups: Vec<String>,
    status_value: String,
    total_count: u64,
    total_duration_count: u64,
    total_duration_sum_us: u64,
    lowest_duration: Option<f64>,
    highest_duration: Option<f64>,
}

/// `SELECT bucket, groups, status, <sums> FROM rollups ... GROUP BY ...`
fn scalar_sums(
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
    wants_status: bool,
    snapshot: &Snapshot,
    source: Source<'_>,
) -> Sql {
    let mut sql = select_bucket_and_groups(
        request,
        "toInt64(toUInt32(minute)) * 1000",
        PropertyValues::RolledUp,
    );
    // Rows per status only when the dominant status needs their counts.
    sql.push(
        if wants_status {
            "toString(status) AS status_value, "
        } else {
            "'' AS status_value, "
        },
        [],
    );
    sql.push(
        // Aliases differ from the columns: ClickHouse would read an alias
        // named like its column as a cycle.
        "sum(count) AS total_count, sum(duration_count) AS total_duration_count, \
         sum(duration_sum_us) AS total_duration_sum_us, min(duration_min) AS lowest_duration, \
         max(duration_max) AS highest_duration",
        [],
    );
    let columns = scalar_columns(source);
    let mut sql = with_rollups_from(sql, request, project_id, range, &columns, snapshot, source);
    sql.push(
        " GROUP BY bucket, groups, status_value LIMIT ?",
        [Bound::Int(MAX_ROWS as i64 + 1)],
    );
    sql
}

async fn read_scalars(
    client: &clickhouse::Client,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
    source: Source<'_>,
) -> Result<Partials> {
    let wants_status = request.wants(Metric::DominantStatus);
    let rows: Vec<ScalarRow> = read_consistent(client, source.table(), |snapshot| {
        scalar_sums(request, project_id, range, wants_status, snapshot, source)
    })
    .await?;
    if rows.len() > MAX_ROWS {
        return Err(ApiError::TooManyRows { limit: MAX_ROWS });
    }
    let mut merged = Partials::new();
    for row in rows {
        let key = GroupKey {
            bucket_ms: row.bucket,
            group: raw_group_of(request, row.groups),
        };
        let (aggregate, statuses) = merged.entry(key).or_default();
        aggregate.merge(&Aggregate {
            count: row.total_count,
            duration_count: row.total_duration_count,
            duration_sum_us: row.total_duration_sum_us,
            duration_min: row.lowest_duration,
            duration_max: row.highest_duration,
            ..Aggregate::default()
        });
        if !row.status_value.is_empty() {
            *statuses.entry(row.status_value).or_default() += row.total_count;
        }
    }
    Ok(merged)
}

/// Merging sketches is most of the API's work for such questions: a range
/// of an hour or more is cut into two halves of whole minutes, each read and
/// merged on a task of its own (the runtime has a worker per core), and the
/// two are added up.
async fn read_sketches(
    client: &clickhouse::Client,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
) -> Result<Partials> {
    if range.to_ms - range.from_ms < HOUR_MS {
        return read_sketches_of(client, request, project_id, range).await;
    }
    let middle = range.from_ms + (range.to_ms - range.from_ms) / 2 / MINUTE_MS * MINUTE_MS;
    let request = Arc::new(request.clone());
    let mut halves = JoinSet::new();
    for half in [
        TimeRange {
            from_ms: range.from_ms,
            to_ms: middle,
        },
        TimeRange {
            from_ms: middle,
            to_ms: range.to_ms,
        },
    ] {
        let (client, request, project_id) =
            (client.clone(), request.clone(), project_id.to_owned());
        halves.spawn(async move { read_sketches_of(&client, &request, &project_id, half).await });
    }
    let mut merged = Partials::new();
    while let Some(half) = halves.join_next().await {
        match half {
            Ok(partials) => merge_partials(&mut merged, partials?),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    Ok(merged)
}

async fn read_sketches_of(
    client: &clickhouse::Client,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
) -> Result<Partials> {
    let source = Source::of(request);
    let columns = columns(request, source);
    fold_consistent::<PartialRow<'_>, Partials>(
        client,
        source.table(),
        |snapshot| {
            let select = Sql::new(&format!("SELECT {columns}"));
            with_rollups_from(
                select, request, project_id, range, &columns, snapshot, source,
            )
        },
        |merged, row| {
            let key = GroupKey {
                bucket_ms: request.bucket_of(i64::from(row.minute) * 1000),
                group: group_of(request, &row),
            };
            let (aggregate, statuses) = merged.entry(key).or_default();
            merge_row(aggregate, &row)?;
            if !row.status.is_empty() {
                *statuses.entry(row.status.to_owned()).or_default() += row.count;
            }
            Ok(())
        },
    )
    .await
}
