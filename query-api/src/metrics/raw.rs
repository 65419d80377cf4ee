//! The exact path: aggregates computed by ClickHouse over raw events (read
//! with `FINAL`), with `uniqExact` and `quantilesExact`.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::Deserialize;
use sluice_schemas::rollup::{Contribution, Summary};

use super::request::{Dimension, MetricsRequest};
use super::{Cell, GroupKey, MAX_ROWS, Partials, column_if, dominant};
use crate::error::{ApiError, Result};
use crate::filters::{Bound, Sql, TimeRange, text};
use crate::snapshot::{EVENTS, Snapshot, read_consistent};

#[derive(Debug, Row, Deserialize)]
struct RawRow {
    bucket: i64,
    groups: Vec<String>,
    count: u64,
    users: u64,
    sessions: u64,
    duration_count: u64,
    duration_sum_us: f64,
    duration_min: Option<f64>,
    duration_max: Option<f64>,
    quantiles: Vec<f64>,
}

#[derive(Debug, Row, Deserialize)]
struct NewestRow {
    bucket: i64,
    groups: Vec<String>,
    status: String,
    user_id: String,
    session_id: String,
    duration_ms: Option<f64>,
}

#[derive(Debug, Row, Deserialize)]
struct StatusRow {
    bucket: i64,
    groups: Vec<String>,
    status: String,
    count: u64,
}

/// Where a group-by on a property reads its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyValues {
    /// From the `properties` JSON of raw events.
    Extracted,
    /// From `property_value` of `property_rollups`.
    RolledUp,
}

/// The SQL of a dimension; property values are strings as stored, numbers
/// and booleans as their JSON text (`sluice_schemas::rollup::property`).
fn dimension_sql(dimension: &Dimension, values: PropertyValues, sql: &mut Sql) {
    match dimension {
        Dimension::Type => sql.push("toString(type)", []),
        Dimension::Source => sql.push("toString(source)", []),
        Dimension::Status => sql.push("toString(status)", []),
        Dimension::Property(_) if values == PropertyValues::RolledUp => {
            sql.push("property_value", [])
        }
        Dimension::Property(key) => sql.push(
            "if(visitParamExtractRaw(properties, ?) LIKE '\"%', \
             visitParamExtractString(properties, ?), visitParamExtractRaw(properties, ?))",
            [text(key), text(key), text(key)],
        ),
    }
}

/// `SELECT <bucket start, ms> AS bucket, [<group values>] AS groups, ` of
/// rows whose time in milliseconds is `time_ms` (an Int64 expression).
pub fn select_bucket_and_groups(
    request: &MetricsRequest,
    time_ms: &str,
    values: PropertyValues,
) -> Sql {
    let width = i64::from(request.granularity.seconds()) * 1000;
    let offset = request.utc_offset_ms;
    let mut sql = Sql::new(&format!(
        "SELECT toInt64(intDiv({time_ms} + ?, ?) * ? - ?) AS bucket, ["
    ));
    sql.binds.extend([
        Bound::Int(offset),
        Bound::Int(width),
        Bound::Int(width),
        Bound::Int(offset),
    ]);
    for (index, dimension) in request.group_by.iter().enumerate() {
        if index > 0 {
            sql.push(", ", []);
        }
        dimension_sql(dimension, values, &mut sql);
    }
    // An empty array literal has no element type on 18.16.
    if request.group_by.is_empty() {
        sql.push("''", []);
    }
    sql.push("] AS groups, ", []);
    sql
}

/// The columns of `events` that the aggregates and group-bys of `request`
/// read: a subquery over clean and other days passes on only these, so
/// ClickHouse does not read `properties` or the ids when nothing uses them.
fn raw_columns(request: &MetricsRequest) -> String {
    let mut columns = vec!["timestamp_ms", "type", "source", "status", "duration_ms"];
    if request.wants_users() {
        columns.push("user_id");
    }
    if request.wants_sessions() {
        columns.push("session_id");
    }
    if request
        .group_by
        .iter()
        .any(|dimension| matches!(dimension, Dimension::Property(_)))
    {
        columns.push("properties");
    }
    columns.join(", ")
}

/// `SELECT bucket, groups, <aggregates> FROM <events> WHERE ... GROUP BY ...`
fn select(
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
    query: &RawQuery<'_>,
    snapshot: &Snapshot,
) -> Sql {
    let mut sql =
        select_bucket_and_groups(request, "toInt64(timestamp_ms)", PropertyValues::Extracted);
    sql.push(query.aggregates, []);
    let mut conditions = Sql::default();
    conditions.push(" AND project_id = ?", [text(project_id)]);
    range.events_sql(&mut conditions);
    request.filters.events_sql(&mut conditions);
    conditions.push(query.extra_where, []);
    let from = snapshot.from(&raw_columns(request), &conditions);
    sql.push(&from.text, from.binds);
    if let Some(extra_group) = query.group {
        sql.push(" GROUP BY bucket, groups", []);
        sql.push(extra_group, []);
        sql.push(" LIMIT ?", [Bound::Int(MAX_ROWS as i64 + 1)]);
    }
    sql
}

/// The parts of one query that differ.
struct RawQuery<'a> {
    aggregates: &'a str,
    /// What follows `GROUP BY bucket, groups`; `None` selects every event.
    group: Option<&'a str>,
    extra_where: &'a str,
}

/// The group values of a row; a request without group-by selects `['']`.
pub fn group_of(request: &MetricsRequest, groups: Vec<String>) -> Vec<String> {
    if request.group_by.is_empty() {
        Vec::new()
    } else {
        groups
    }
}

pub async fn read(
    client: &clickhouse::Client,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
) -> Result<BTreeMap<GroupKey, Cell>> {
    let users = if request.wants_users() {
        "uniqExactIf(user_id, user_id != '')"
    } else {
        "toUInt64(0)"
    };
    let sessions = if request.wants_sessions() {
        "uniqExactIf(session_id, session_id != '')"
    } else {
        "toUInt64(0)"
    };
    // The value at rank floor(q * (n - 1)) of the sorted durations: the rank
    // the rollups' sketches answer for (`quantilesExact` takes floor(q * n)),
    // so both paths mean the same quantile. The sorted array is named inline
    // and handed to the lambda once per level, so it is built once and no
    // extra column comes back.
    let quantiles = if request.wants_quantiles() {
        "arrayMap((q, s) -> arrayElement(s, toUInt64(floor(q * (length(s) - 1))) + 1), \
         [0.5, 0.9, 0.95, 0.99], \
         [(arraySort(groupArrayIf(assumeNotNull(duration_ms), isNotNull(duration_ms))) AS sorted_durations), \
          sorted_durations, sorted_durations, sorted_durations])"
    } else {
        "emptyArrayFloat64()"
    };
    // Durations are summed in whole microseconds, as the rollups sum them,
    // so both paths give the same exact total.
    let aggregates = format!(
        "count() AS count, {users} AS users, {sessions} AS sessions, \
         count(duration_ms) AS duration_count, \
         ifNull(sum(round(duration_ms * 1000)), 0) AS duration_sum_us, \
         min(duration_ms) AS duration_min, max(duration_ms) AS duration_max, \
         {quantiles} AS quantiles"
    );
    let query = RawQuery {
        aggregates: &aggregates,
        group: Some(""),
        extra_where: "",
    };
    let rows: Vec<RawRow> = read_consistent(client, EVENTS, |snapshot| {
        select(request, project_id, range, &query, snapshot)
    })
    .await?;
    if rows.len() > MAX_ROWS {
        return Err(ApiError::TooManyRows { limit: MAX_ROWS });
    }
    let mut cells = BTreeMap::new();
    for row in rows {
        let has_durations = row.duration_count > 0;
        let quantile = |index: usize| row.quantiles.get(index).copied().filter(|_| has_durations);
        let summary = Summary {
            count: row.count,
            users: row.users,
            sessions: row.sessions,
            duration_count: row.duration_count,
            duration_sum: row.duration_sum_us / 1000.0,
            duration_min: row.duration_min.filter(|_| has_durations),
            duration_max: row.duration_max.filter(|_| has_durations),
            duration_p50: quantile(0),
            duration_p90: quantile(1),
            duration_p95: quantile(2),
            duration_p99: quantile(3),
        };
        let key = GroupKey {
            bucket_ms: row.bucket,
            group: group_of(request, row.groups),
        };
        cells.insert(
            key,
            Cell {
                summary,
                dominant_status: None,
            },
        );
    }
    if request.wants(super::request::Metric::DominantStatus) {
        let query = RawQuery {
            aggregates: "status, count() AS count",
            group: Some(", status"),
            extra_where: " AND status != ''",
        };
        let statuses: Vec<StatusRow> = read_consistent(client, EVENTS, |snapshot| {
            select(request, project_id, range, &query, snapshot)
        })
        .await?;
        let mut counts: BTreeMap<GroupKey, BTreeMap<String, u64>> = BTreeMap::new();
        for row in statuses {
            let key = GroupKey {
                bucket_ms: row.bucket,
                group: group_of(request, row.groups),
            };
            *counts
                .entry(key)
                .or_default()
                .entry(row.status)
                .or_default() += row.count;
        }
        for (key, counts) in counts {
            if let Some(cell) = cells.get_mut(&key) {
                cell.dominant_status = dominant(&counts);
            }
        }
    }
    Ok(cells)
}

/// The newest minutes, which rollups do not hold yet, as partials to add to
/// theirs. Their events stream through the rollup model one by one, as the
/// processor adds them to windows, so the sketches of both halves merge
/// (memory stays bounded by the sketches, whatever the rate). They are read
/// with `FINAL`: the newest day is the one still being written.
pub async fn read_newest(
    client: &clickhouse::Client,
    request: &MetricsRequest,
    project_id: &str,
    range: TimeRange,
) -> Result<Partials> {
    // Ids only where a metric counts them. (An alias hides its column in
    // WHERE too; rollups never cover a filter on these ids, so none is there.)
    let aggregates = format!(
        "toString(status) AS status, {}, {}, duration_ms",
        column_if(request.wants_users(), "user_id"),
        column_if(request.wants_sessions(), "session_id"),
    );
    let query = RawQuery {
        aggregates: &aggregates,
        group: None,
        extra_where: "",
    };
    let sql = select(request, project_id, range, &query, &Snapshot::all_final());
    let mut cursor = sql.query(client).fetch::<NewestRow>()?;
    let mut partials = Partials::new();
    while let Some(row) = cursor.next().await? {
        let key = GroupKey {
            bucket_ms: row.bucket,
            group: group_of(request, row.groups),
        };
        if partials.len() >= MAX_ROWS && !partials.contains_key(&key) {
            return Err(ApiError::TooManyRows { limit: MAX_ROWS });
        }
        let (aggregate, statuses) = partials.entry(key).or_default();
        aggregate.add(Contribution {
            user_id: present(&row.user_id),
            session_id: present(&row.session_id),
            duration_ms: row.duration_ms,
        });
        if !row.status.is_empty() {
            *statuses.entry(row.status).or_default() += 1;
        }
    }
    Ok(partials)
}

/// An id column's value; `''` stands for none.
fn present(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}
