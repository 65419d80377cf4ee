//! The rollup path: partial rows of the `rollups` table (one per window,
//! source partition and correction; `FINAL` drops replayed copies) merged
//! into one aggregate per bucket and group, to which the newest minutes'
//! raw events may still add.
//!
//! Questions without uniques or percentiles need no sketch: ClickHouse adds
//! the exact columns up per bucket and group ([`read_scalars`]), so only
//! the answer's rows travel. Sketches are merged in Rust with the rollup model
//! ([`read_sketches`]), a row per partial.

use clickhouse::Row;
use serde::Deserialize;

use sluice_runtime::rollups::RollupRow;
use sluice_schemas::rollup::{Aggregate, QuantileSketch};

use super::raw::{group_of as raw_group_of, select_bucket_and_groups};
use super::request::{Dimension, Metric, MetricsRequest};
use super::{GroupKey, MAX_ROWS, Partials, column_if};
use crate::error::{ApiError, Result};
use crate::filters::{Bound, Sql, TimeRange, text};
use crate::snapshot::{ROLLUPS, Snapshot, read_consistent};

/// The columns of [`RollupRow`], with the sketches a request does not need
/// replaced by empty strings (they are most of a row's bytes).
fn columns(request: &MetricsRequest) -> String {
    let sketch = column_if;
    format!(
        "project_id, minute, type, source, status, kafka_partition, seq, count, \
         duration_count, duration_sum_us, duration_min, duration_max, {}, {}, {}",
        sketch(request.wants_users(), "users"),
        sketch(request.wants_sessions(), "sessions"),
        sketch(request.wants_quantiles(), "durations"),
    )
}

/// Adds a partial rollup row to `aggregate`; its user and session sketches
/// go straight into the aggregate's (no sketch built per row).
fn merge_row(aggregate: &mut Aggregate, row: &RollupRow) -> Result<()> {
    let corrupt = |error: sluice_schemas::rollup::DecodeError| {
        ApiError::CorruptRollup(format!("{error:?} in {:?}", row.key()))
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
            QuantileSketch::from_bytes(&row.durations).map_err(corrupt)?
        },
        ..Aggregate::default()
    });
    for (sketch, bytes) in [
        (&mut aggregate.users, &row.users),
        (&mut aggregate.sessions, &row.sessions),
    ] {
        if !bytes.is_empty() {
            sketch.merge_bytes(bytes).map_err(corrupt)?;
        }
    }
    Ok(())
}

fn group_of(request: &MetricsRequest, row: &RollupRow) -> Vec<String> {
    request
        .group_by
        .iter()
        .map(|dimension| match dimension {
            Dimension::Type => row.event_type.clone(),
            Dimension::Source => row.source.clone(),
            Dimension::Status => row.status.clone(),
            // The plan sends property group-bys to raw events.
            Dimension::Property(_) => String::new(),
        })
        .collect()
}

pub async fn read(
    client: &clickhouse::Client,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
) -> Result<Partials> {
    if request.wants_users() || request.wants_sessions() || request.wants_quantiles() {
        read_sketches(client, request, project_id, range).await
    } else {
        read_scalars(client, request, project_id, range).await
    }
}

/// `FROM rollups ...`: the rollup rows of the project in `range` passing
/// the filters, passing on `columns`.
fn rollups_from(
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
    columns: &str,
    snapshot: &Snapshot,
) -> Sql {
    let mut conditions = Sql::default();
    conditions.push(" AND project_id = ?", [text(project_id)]);
    // Windows are whole minutes and the range is whole buckets.
    conditions.push(
        " AND minute >= toDateTime(?) AND minute < toDateTime(?)",
        [
            Bound::Int(range.from_ms / 1000),
            Bound::Int(range.to_ms / 1000),
        ],
    );
    request.filters.rollups_sql(&mut conditions);
    snapshot.from(columns, &conditions)
}

/// The columns the scalar sums read.
const SCALAR_COLUMNS: &str = "minute, type, source, status, count, duration_count, \
    duration_sum_us, duration_min, duration_max";

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
) -> Sql {
    let mut sql = select_bucket_and_groups(request, "toInt64(toUInt32(minute)) * 1000");
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
    let from = rollups_from(request, project_id, range, SCALAR_COLUMNS, snapshot);
    sql.push(&from.text, from.binds);
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
) -> Result<Partials> {
    let wants_status = request.wants(Metric::DominantStatus);
    let rows: Vec<ScalarRow> = read_consistent(client, ROLLUPS, |snapshot| {
        scalar_sums(request, project_id, range, wants_status, snapshot)
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

async fn read_sketches(
    client: &clickhouse::Client,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
) -> Result<Partials> {
    // Sketches stream into the merge, so their read cannot be taken back
    // and run again: always with FINAL.
    let columns = columns(request);
    let mut sql = Sql::new(&format!("SELECT {columns}"));
    let from = rollups_from(
        request,
        project_id,
        range,
        &columns,
        &Snapshot::all_final_of(ROLLUPS),
    );
    sql.push(&from.text, from.binds);
    let mut cursor = sql.query(client).fetch::<RollupRow>()?;
    let mut merged = Partials::new();
    while let Some(row) = cursor.next().await? {
        let key = GroupKey {
            bucket_ms: request.bucket_of(i64::from(row.minute) * 1000),
            group: group_of(request, &row),
        };
        let (aggregate, statuses) = merged.entry(key).or_default();
        merge_row(aggregate, &row)?;
        if !row.status.is_empty() {
            *statuses.entry(row.status).or_default() += row.count;
        }
    }
    Ok(merged)
}
