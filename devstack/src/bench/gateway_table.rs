//! The table of `bench gateway`: one row per run from the phases' JSON
//! reports (`runN-PHASE.json`), then the median, minimum and maximum of
//! each column over the runs, aligned in columns (as `column -t` printed).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::report::read_json;
use super::stats::{Spread, trimmed};

const COLUMNS: [&str; 20] = [
    "run",
    "bare ev/s",
    "gateway ev/s",
    "ratio",
    "ceiling ev/s",
    "ceiling ratio",
    "peak p99 ms",
    "half rate",
    "half p99 ms",
    "half p99.9 ms",
    "floor p99 ms",
    "gw CPU us/event",
    "loadgen CPU %",
    "gw RSS MiB",
    "overload RSS MiB",
    "traced ev/s",
    "traced/peak",
    "traced CPU us/event",
    "OTLP posts",
    "overload answers",
];

/// One run's row: the numeric columns (all but the first and last) and the
/// overload answers.
fn row(phases: &BTreeMap<String, Value>) -> (Vec<Option<f64>>, String) {
    let get = |phase: &str, pointer: &str| {
        phases
            .get(phase)
            .and_then(|v| v.pointer(pointer))
            .and_then(Value::as_f64)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let bare = get("bare", "/events_per_s");
    let peak = get("peak", "/events_per_s");
    let ceiling = get("ceiling", "/events_per_s");
    let traced = get("traced", "/events_per_s");
    let numbers = vec![
        bare,
        peak,
        ratio(peak, bare),
        ceiling,
        ratio(ceiling, bare),
        get("peak", "/latency_ms/p99"),
        get("half", "/target_events_per_s"),
        get("half", "/events_per_s"),
        get("half", "/latency_ms/p99"),
        get("half", "/latency_ms/p999"),
        get("floor", "/group_latency_ms/p99"),
        ratio(
            get("gateway", "/gateway_cpu_s_peak_phase").map(|s| s * 1e6),
            get("peak", "/events_acked"),
        ),
        ratio(
            get("peak", "/loadgen_cpu_s").map(|s| s * 100.0),
            get("peak", "/seconds"),
        ),
        get("gateway", "/gateway_peak_rss_kib").map(|kib| kib / 1024.0),
        get("gateway", "/gateway_overload_peak_rss_kib").map(|kib| kib / 1024.0),
        traced,
        ratio(traced, peak),
        ratio(
            get("otlp", "/gateway_cpu_s").map(|s| s * 1e6),
            get("traced", "/events_acked"),
        ),
        get("otlp", "/otlp_requests"),
    ];
    let answers = phases.get("overload").map_or_else(
        || "-".to_owned(),
        |over| {
            let mut parts = Vec::new();
            for key in ["statuses", "errors"] {
                if let Some(map) = over.get(key).and_then(Value::as_object) {
                    parts.extend(map.iter().map(|(k, v)| format!("{k}={v}")));
                }
            }
            parts.join(" ")
        },
    );
    (numbers, answers)
}

/// A cell of the gateway table: three decimals under 10, else one.
fn cell(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v < 10.0 => trimmed(v, 3),
        Some(v) => trimmed(v, 1),
    }
}

/// The table of a results directory: one row per run, then median, min and
/// max of each column when there are several runs, aligned in columns.
pub fn table(dir: &Path) -> anyhow::Result<String> {
    let mut runs: BTreeMap<u32, BTreeMap<String, Value>> = Default::default();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let Some((run, phase)) = name
            .strip_prefix("run")
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let Ok(run) = run.parse() else { continue };
        runs.entry(run)
            .or_default()
            .insert(phase.to_owned(), read_json(&path)?);
    }
    let mut lines = vec![COLUMNS.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>()];
    let rows: Vec<(Vec<Option<f64>>, String)> = runs.values().map(row).collect();
    for (run, (numbers, answers)) in runs.keys().zip(&rows) {
        let mut line = vec![run.to_string()];
        line.extend(numbers.iter().map(|v| cell(*v)));
        line.push(answers.clone());
        lines.push(line);
    }
    if rows.len() > 1 {
        for stat in ["median", "min", "max"] {
            let mut line = vec![stat.to_owned()];
            for column in 0..rows[0].0.len() {
                let values: Vec<f64> = rows
                    .iter()
                    .filter_map(|(numbers, _)| numbers[column])
                    .collect();
                let spread = Spread::of(&values);
                line.push(cell(spread.map(|s| match stat {
                    "median" => s.median,
                    "min" => s.min,
                    _ => s.max,
                })));
            }
            line.push("-".into());
            lines.push(line);
        }
    }
    Ok(aligned(&lines))
}

/// Rows of cells as aligned columns (what `column -t` printed).
pub fn aligned(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|line| {
            let cells: Vec<String> = line
                .iter()
                .enumerate()
                .map(|(c, text)| format!("{text:<width$}", width = widths[c]))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_results_directory_reads_as_a_table() {
        let dir = std::env::temp_dir().join(format!("sluice-bench-gateway-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write =
            |name: &str, value: Value| std::fs::write(dir.join(name), value.to_string()).unwrap();
        for (run, bare, peak) in [(1, 100_000.0, 50_000.0), (2, 200_000.0, 150_000.0)] {
            write(
                &format!("run{run}-bare.json"),
                json!({"events_per_s": bare}),
            );
            write(
                &format!("run{run}-peak.json"),
                json!({"events_per_s": peak, "events_acked": 1_000_000,
                "latency_ms": {"p99": 7.25}, "loadgen_cpu_s": 5.0, "seconds": 10.0}),
            );
            write(
                &format!("run{run}-gateway.json"),
                json!({"gateway_peak_rss_kib": 20480,
                "gateway_overload_peak_rss_kib": null, "gateway_cpu_s_peak_phase": 2.0}),
            );
            write(
                &format!("run{run}-overload.json"),
                json!({"statuses": {"202": 10, "429": 2}, "errors": {}}),
            );
        }
        let text = table(&dir).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cells = |line: &str| {
            line.split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(cells(lines[0]), "run bare ev/s gateway", "{text}");
        assert_eq!(cells(lines[1]), "1 100000 50000 0.5", "{text}");
        assert!(lines[1].ends_with("202=10 429=2"), "{text}");
        assert!(lines[1].contains(" 7.25 "), "{text}");
        assert_eq!(cells(lines[3]), "median 150000 100000 0.625", "{text}");
        assert_eq!(lines.len(), 6, "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
