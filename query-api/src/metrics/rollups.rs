//! The rollup path: partial rows of the `rollups` table (one per window,
//! source partition and correction; `FINAL` drops replayed copies) merged in
//! Rust with the rollup model into one aggregate per bucket and group.

use std::collections::BTreeMap;

use sluice_runtime::rollups::RollupRow;
use sluice_schemas::rollup::{Aggregate, Hll, QuantileSketch};

use super::request::{Dimension, Metric, MetricsRequest};
use super::{Cell, GroupKey, dominant};
use crate::error::{ApiError, Result};
use crate::filters::{Bound, Sql, TimeRange, text};

/// The columns of [`RollupRow`], with the sketches a request does not need
/// replaced by empty strings (they are most of a row's bytes).
fn columns(request: &MetricsRequest) -> String {
    let sketch = |wanted: bool, column: &str| {
        if wanted {
            column.to_owned()
        } else {
            format!("'' AS {column}")
        }
    };
    format!(
        "project_id, minute, type, source, status, kafka_partition, seq, count, \
         duration_count, duration_sum_us, duration_min, duration_max, {}, {}, {}",
        sketch(request.wants_users(), "users"),
        sketch(request.wants_sessions(), "sessions"),
        sketch(request.wants_quantiles(), "durations"),
    )
}

fn aggregate_of(row: &RollupRow) -> Result<Aggregate> {
    let corrupt = |error: sluice_schemas::rollup::DecodeError| {
        ApiError::CorruptRollup(format!("{error:?} in {:?}", row.key()))
    };
    let hll = |bytes: &[u8]| {
        if bytes.is_empty() {
            Ok(Hll::default())
        } else {
            Hll::from_bytes(bytes).map_err(corrupt)
        }
    };
    Ok(Aggregate {
        count: row.count,
        duration_count: row.duration_count,
        duration_sum_us: row.duration_sum_us,
        duration_min: row.duration_min,
        duration_max: row.duration_max,
        users: hll(&row.users)?,
        sessions: hll(&row.sessions)?,
        durations: if row.durations.is_empty() {
            QuantileSketch::default()
        } else {
            QuantileSketch::from_bytes(&row.durations).map_err(corrupt)?
        },
    })
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
) -> Result<BTreeMap<GroupKey, Cell>> {
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM rollups FINAL WHERE project_id = ?",
        columns(request)
    ));
    sql.binds.push(text(project_id));
    // Windows are whole minutes and the range is whole buckets.
    sql.push(
        " AND minute >= toDateTime(?) AND minute < toDateTime(?)",
        [
            Bound::Int(range.from_ms / 1000),
            Bound::Int(range.to_ms / 1000),
        ],
    );
    request.filters.rollups_sql(&mut sql);
    let mut cursor = sql.query(client).fetch::<RollupRow>()?;
    let mut merged: BTreeMap<GroupKey, (Aggregate, BTreeMap<String, u64>)> = BTreeMap::new();
    while let Some(row) = cursor.next().await? {
        let key = GroupKey {
            bucket_ms: request.bucket_of(i64::from(row.minute) * 1000),
            group: group_of(request, &row),
        };
        let (aggregate, statuses) = merged.entry(key).or_default();
        aggregate.merge(&aggregate_of(&row)?);
        if !row.status.is_empty() {
            *statuses.entry(row.status).or_default() += row.count;
        }
    }
    let wants_status = request.wants(Metric::DominantStatus);
    Ok(merged
        .into_iter()
        .map(|(key, (aggregate, statuses))| {
            let cell = Cell {
                summary: aggregate.summary(),
                dominant_status: if wants_status {
                    dominant(&statuses)
                } else {
                    None
                },
            };
            (key, cell)
        })
        .collect())
}
