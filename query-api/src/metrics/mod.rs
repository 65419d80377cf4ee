//! `GET /v1/metrics`: time series and group-bys of event metrics.
//!
//! The plan ([`plan`]) serves a question from rollups when they cover it: the
//! filters use only type, source and status (what rollups keep), the group-by
//! those and at most one property (which the processor may roll up, see
//! [`rollups`]), and the buckets ended long enough ago that their windows are
//! closed and stored (`--rollup-delay-ms`). Everything else, and the newest
//! buckets, come from raw events, exactly. The answer says which (`source`)
//! and how far the approximate metrics of rollups may be off (`error_bounds`).
//!
//! - [`request`]: the query string.
//! - [`rollups`]: reading and merging partial rollup rows.
//! - [`raw`]: the exact SQL over raw events.
//! - [`shape`]: having, order-by and limit, and the JSON rows.

pub mod raw;
pub mod request;
pub mod rollups;
pub mod shape;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sluice_schemas::rollup::{Aggregate, Summary, hll, quantiles};
use sluice_schemas::time_format::{format_rfc3339_ms, now_ms};

use crate::auth::ReadProject;
use crate::error::{ApiError, Result};
use crate::filters::TimeRange;
use crate::params::Params;
use crate::state::AppState;
use request::{Metric, MetricsRequest};

const MINUTE_MS: i64 = 60_000;

/// Most (bucket, group) cells one question may produce before having and
/// limit apply; more is refused rather than held in memory.
pub const MAX_ROWS: usize = 200_000;

/// A bucket and the values of the group-by dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    pub bucket_ms: i64,
    pub group: Vec<String>,
}

/// The numbers of one bucket and group, from either path: what an
/// aggregate stands for (exact from raw events, estimated from sketches in
/// rollups), plus the dominant status.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub summary: Summary,
    pub dominant_status: Option<String>,
}

/// The most frequent status; ties go to the smallest status.
pub fn dominant(counts: &BTreeMap<String, u64>) -> Option<String> {
    counts
        .iter()
        .max_by(|(a_status, a), (b_status, b)| a.cmp(b).then(b_status.cmp(a_status)))
        .map(|(status, _)| status.clone())
}

/// What rollup rows and the newest raw events add up to before they become
/// cells: an aggregate per bucket and group, with its counts per status.
pub type Partials = BTreeMap<GroupKey, (Aggregate, BTreeMap<String, u64>)>;

/// `column` when a metric reads it, else an empty string under its name
/// (sketches and ids are most of a row's bytes).
pub fn column_if(wanted: bool, column: &str) -> String {
    if wanted {
        column.to_owned()
    } else {
        format!("'' AS {column}")
    }
}

/// Adds the partials of `other` into `into`.
fn merge_partials(into: &mut Partials, other: Partials) {
    for (key, (aggregate, statuses)) in other {
        let (merged, merged_statuses) = into.entry(key).or_default();
        merged.merge(&aggregate);
        for (status, count) in statuses {
            *merged_statuses.entry(status).or_default() += count;
        }
    }
}

/// The cells of merged partials.
fn cells_of(partials: Partials, wants_status: bool) -> BTreeMap<GroupKey, Cell> {
    partials
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
        .collect()
}

/// Which path serves which part of the (bucket-aligned) range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub rollups: Option<TimeRange>,
    pub raw: Option<TimeRange>,
}

impl Plan {
    pub fn source(&self) -> &'static str {
        match (self.rollups, self.raw) {
            (Some(_), Some(_)) => "rollups+raw",
            (Some(_), None) => "rollups",
            _ => "raw",
        }
    }
}

/// Rollups serve the minutes that end before `now - rollup_delay_ms` when
/// they cover the question; raw events serve the rest. A bucket may take
/// both: today's bucket of a daily series is the day's closed minutes from
/// rollups plus the last few minutes from raw events.
pub fn plan(request: &MetricsRequest, now_ms: i64, rollup_delay_ms: i64) -> Plan {
    let range = request.aligned_range();
    let covered = !request.exact
        && request.filters.rollups_cover()
        && request.grouped_properties().len() <= 1;
    // The first minute that may still have open windows.
    let horizon = (now_ms - rollup_delay_ms).div_euclid(MINUTE_MS) * MINUTE_MS;
    if !covered || horizon <= range.from_ms {
        return Plan {
            rollups: None,
            raw: Some(range),
        };
    }
    if horizon >= range.to_ms {
        return Plan {
            rollups: Some(range),
            raw: None,
        };
    }
    Plan {
        rollups: Some(TimeRange {
            from_ms: range.from_ms,
            to_ms: horizon,
        }),
        raw: Some(TimeRange {
            from_ms: horizon,
            to_ms: range.to_ms,
        }),
    }
}

/// The answer before it is shaped into JSON or a file.
pub struct Answer {
    pub request: MetricsRequest,
    pub plan: Plan,
    pub cells: Vec<(GroupKey, Cell)>,
}

/// Plans, reads and shapes the answer to `request` for `project_id`.
pub async fn answer(state: &AppState, project_id: &str, request: MetricsRequest) -> Result<Answer> {
    let mut plan = plan(&request, now_ms(), state.settings.rollup_delay_ms);
    let client = &state.clickhouse;
    let cells = match (plan.rollups, plan.raw) {
        (Some(closed), newest) => {
            // Both halves at once: the answer waits for the slower only.
            let (partials, newest) =
                tokio::try_join!(rollups::read(client, &request, project_id, closed), async {
                    match newest {
                        Some(range) => raw::read_newest(client, &request, project_id, range).await,
                        None => Ok(Partials::new()),
                    }
                })?;
            match partials {
                Some(mut partials) => {
                    merge_partials(&mut partials, newest);
                    cells_of(partials, request.wants(Metric::DominantStatus))
                }
                // The property is not rolled up over the whole range.
                None => {
                    let range = request.aligned_range();
                    plan = Plan {
                        rollups: None,
                        raw: Some(range),
                    };
                    raw::read(client, &request, project_id, range).await?
                }
            }
        }
        (None, Some(range)) => raw::read(client, &request, project_id, range).await?,
        (None, None) => BTreeMap::new(),
    };
    if cells.len() > MAX_ROWS {
        return Err(ApiError::TooManyRows { limit: MAX_ROWS });
    }
    let cells = shape::shape(&request, cells);
    Ok(Answer {
        request,
        plan,
        cells,
    })
}

/// How far the approximate metrics may be off, for the ones requested and
/// served from rollups (raw events are exact).
pub fn error_bounds(request: &MetricsRequest, plan: &Plan) -> Value {
    let mut bounds = serde_json::Map::new();
    if plan.rollups.is_none() {
        return Value::Object(bounds);
    }
    let hll_error = 1.04 / f64::from(1u32 << hll::PRECISION).sqrt();
    for metric in &request.metrics {
        let bound = match metric {
            Metric::UniqueUsers | Metric::UniqueSessions => json!({
                "kind": "relative_standard_error",
                "value": (hll_error * 10_000.0).round() / 10_000.0,
                "note": format!(
                    "exact up to {} distinct ids per cell; above, HyperLogLog with 2^14 registers (rows stored before the exact form: estimates)",
                    hll::EXACT_MAX
                )
            }),
            metric if metric.is_quantile() => json!({
                "kind": "relative_error",
                "value": quantiles::RELATIVE_ACCURACY,
                "note": "within this fraction of the true value at the rank"
            }),
            _ => continue,
        };
        bounds.insert(metric.name().to_owned(), bound);
    }
    Value::Object(bounds)
}

pub async fn get_metrics(
    State(state): State<AppState>,
    ReadProject(project_id): ReadProject,
    mut params: Params,
) -> Result<Json<Value>> {
    let request = MetricsRequest::parse(&mut params)?;
    params.finish()?;
    let answer = answer(&state, &project_id, request).await?;
    let request = &answer.request;
    let range = request.aligned_range();
    let mut body = json!({
        "interval": request.granularity.as_str(),
        "from": format_rfc3339_ms(range.from_ms),
        "to": format_rfc3339_ms(range.to_ms),
        "utc_offset_minutes": request.utc_offset_ms / 60_000,
        "source": answer.plan.source(),
        "error_bounds": error_bounds(request, &answer.plan),
        "columns": shape::columns(request),
        "rows": answer.cells.iter().map(|(key, cell)| shape::json_row(request, key, cell)).collect::<Vec<_>>(),
    });
    if let (Some(_), Some(raw)) = (answer.plan.rollups, answer.plan.raw) {
        body["raw_from"] = json!(format_rfc3339_ms(raw.from_ms));
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> MetricsRequest {
        MetricsRequest::parse(&mut Params::from_pairs(pairs)).unwrap()
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn plans_rollups_for_old_buckets_and_raw_for_the_rest() {
        let now = 100 * HOUR + 1_000;
        let base = [("from", "0"), ("to", "360000000"), ("interval", "1h")];
        let both = plan(&request(&base), now, 120_000);
        assert_eq!(both.source(), "rollups+raw");
        // Minutes before now - 2 min come from rollups, even inside the
        // current bucket.
        let horizon = 100 * HOUR - 120_000;
        assert_eq!(both.rollups.unwrap().to_ms, horizon);
        assert_eq!(both.raw.unwrap().from_ms, horizon);
        assert_eq!(both.raw.unwrap().to_ms, 100 * HOUR);
        assert_eq!(plan(&request(&base), 200 * HOUR, 0).source(), "rollups");
        let mut with_tag = base.to_vec();
        with_tag.push(("tag", "x"));
        assert_eq!(plan(&request(&with_tag), 200 * HOUR, 0).source(), "raw");
        let mut by_property = base.to_vec();
        by_property.push(("group_by", "type,property.plan"));
        // If the processor rolls `plan` up; the read falls back otherwise.
        assert_eq!(
            plan(&request(&by_property), 200 * HOUR, 0).source(),
            "rollups"
        );
        let mut by_two_properties = base.to_vec();
        by_two_properties.push(("group_by", "property.plan,property.country"));
        assert_eq!(
            plan(&request(&by_two_properties), 200 * HOUR, 0).source(),
            "raw"
        );
        let mut forced = base.to_vec();
        forced.push(("exact", "true"));
        assert_eq!(plan(&request(&forced), 200 * HOUR, 0).source(), "raw");
    }

    #[test]
    fn dominant_status_breaks_ties_by_name() {
        let counts: BTreeMap<String, u64> =
            [("500".into(), 3), ("200".into(), 3), ("404".into(), 1)].into();
        assert_eq!(dominant(&counts).as_deref(), Some("200"));
        assert_eq!(dominant(&BTreeMap::new()), None);
    }
}
