//! Having, order-by and limit over computed cells, and the rows they become.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sluice_schemas::time_format::format_rfc3339_ms;

use super::request::{Metric, MetricsRequest, SortKey};
use super::{Cell, GroupKey};

/// A metric as a number, for having and sorting; `None` when undefined
/// (no durations in the cell) or text.
pub fn number(metric: Metric, cell: &Cell) -> Option<f64> {
    let summary = &cell.summary;
    match metric {
        Metric::Count => Some(summary.count as f64),
        Metric::UniqueUsers => Some(summary.users as f64),
        Metric::UniqueSessions => Some(summary.sessions as f64),
        Metric::SumDuration => Some(summary.duration_sum),
        Metric::AvgDuration => (summary.duration_count > 0)
            .then(|| summary.duration_sum / summary.duration_count as f64),
        Metric::MinDuration => summary.duration_min,
        Metric::MaxDuration => summary.duration_max,
        Metric::P50Duration => summary.duration_p50,
        Metric::P90Duration => summary.duration_p90,
        Metric::P95Duration => summary.duration_p95,
        Metric::P99Duration => summary.duration_p99,
        Metric::DominantStatus => None,
    }
}

pub fn value(metric: Metric, cell: &Cell) -> Value {
    match metric {
        Metric::Count => json!(cell.summary.count),
        Metric::UniqueUsers => json!(cell.summary.users),
        Metric::UniqueSessions => json!(cell.summary.sessions),
        Metric::DominantStatus => json!(cell.dominant_status),
        metric => json!(number(metric, cell)),
    }
}

/// Every metric of `cell`, by name.
pub fn all_values(cell: &Cell) -> Map<String, Value> {
    Metric::ALL
        .into_iter()
        .map(|metric| (metric.name().to_owned(), value(metric, cell)))
        .collect()
}

/// Applies having, then order-by (then bucket and group as tie-breakers),
/// then limit.
pub fn shape(request: &MetricsRequest, cells: BTreeMap<GroupKey, Cell>) -> Vec<(GroupKey, Cell)> {
    let mut rows: Vec<(GroupKey, Cell)> = cells
        .into_iter()
        .filter(|(_, cell)| {
            request.having.iter().all(|condition| {
                number(condition.metric, cell)
                    .is_some_and(|left| condition.comparison.holds(left, condition.value))
            })
        })
        .collect();
    if !request.order_by.is_empty() {
        rows.sort_by(|(a_key, a), (b_key, b)| {
            for order in &request.order_by {
                let directed = |ordering: Ordering| {
                    if order.descending {
                        ordering.reverse()
                    } else {
                        ordering
                    }
                };
                let ordering = match &order.key {
                    SortKey::Bucket => directed(a_key.bucket_ms.cmp(&b_key.bucket_ms)),
                    SortKey::Group(index) => {
                        directed(a_key.group[*index].cmp(&b_key.group[*index]))
                    }
                    SortKey::Metric(Metric::DominantStatus) => {
                        directed(a.dominant_status.cmp(&b.dominant_status))
                    }
                    // Undefined values sort last either way round.
                    SortKey::Metric(metric) => match (number(*metric, a), number(*metric, b)) {
                        (Some(x), Some(y)) => directed(x.total_cmp(&y)),
                        (Some(_), None) => Ordering::Less,
                        (None, Some(_)) => Ordering::Greater,
                        (None, None) => Ordering::Equal,
                    },
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            a_key.cmp(b_key)
        });
    }
    rows.truncate(request.limit);
    rows
}

/// The names of a row's fields, in order.
pub fn columns(request: &MetricsRequest) -> Vec<String> {
    std::iter::once("bucket".to_owned())
        .chain(request.group_by.iter().map(|d| d.name()))
        .chain(request.metrics.iter().map(|m| m.name().to_owned()))
        .collect()
}

pub fn json_row(request: &MetricsRequest, key: &GroupKey, cell: &Cell) -> Value {
    let mut row = Map::new();
    row.insert("bucket".into(), json!(format_rfc3339_ms(key.bucket_ms)));
    for (dimension, value) in request.group_by.iter().zip(&key.group) {
        row.insert(dimension.name(), json!(value));
    }
    for metric in &request.metrics {
        row.insert(metric.name().into(), value(*metric, cell));
    }
    Value::Object(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;

    fn cell(count: u64, max: Option<f64>) -> Cell {
        let mut summary = sluice_schemas::rollup::Aggregate::default().summary();
        summary.count = count;
        summary.duration_max = max;
        Cell {
            summary,
            dominant_status: None,
        }
    }

    fn key(bucket_ms: i64, group: &str) -> GroupKey {
        GroupKey {
            bucket_ms,
            group: vec![group.into()],
        }
    }

    #[test]
    fn having_order_and_limit() {
        let request = MetricsRequest::parse(&mut Params::from_pairs(&[
            ("metrics", "count,max_duration"),
            ("group_by", "type"),
            ("having", "count>1"),
            ("order_by", "-max_duration,type"),
            ("limit", "3"),
        ]))
        .unwrap();
        let cells: BTreeMap<_, _> = [
            (key(0, "a"), cell(1, Some(9.0))),
            (key(0, "b"), cell(5, None)),
            (key(0, "c"), cell(5, Some(2.0))),
            (key(60, "a"), cell(2, Some(7.0))),
            (key(60, "d"), cell(3, Some(7.0))),
        ]
        .into();
        let rows = shape(&request, cells);
        let names: Vec<_> = rows
            .iter()
            .map(|(k, _)| (k.bucket_ms, k.group[0].as_str()))
            .collect();
        // a@0 fails having; 7.0 ties go to type; undefined max sorts last.
        assert_eq!(names, [(60, "a"), (60, "d"), (0, "c")]);
        assert_eq!(
            json_row(&request, &rows[0].0, &rows[0].1)["max_duration"],
            json!(7.0)
        );
        assert_eq!(
            columns(&request),
            ["bucket", "type", "count", "max_duration"]
        );
    }
}
