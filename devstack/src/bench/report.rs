//! The load generator's JSON reports: running `sluice-loadgen` with its
//! report into a file, and reading numbers out of a report.

use std::path::Path;
use std::process::Command;

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// Runs `sluice-loadgen ARGS`, its JSON report into `out`; the report.
pub fn loadgen(bin_dir: &Path, args: &[String], out: &Path) -> anyhow::Result<Value> {
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let status = Command::new(bin_dir.join("sluice-loadgen"))
        .args(args)
        .stdout(file)
        .status()
        .context("cannot run sluice-loadgen")?;
    if !status.success() {
        bail!("sluice-loadgen {} failed ({status})", args.join(" "));
    }
    read_json(out)
}

pub fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(text.trim())
        .with_context(|| format!("{} is not one JSON object", path.display()))
}

/// A number at `pointer` (e.g. `/latency_ms/p99`), 0 when absent.
pub fn number(value: &Value, pointer: &str) -> f64 {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// The sum over its labels of metric `name` (e.g. a counter's `…_total` or
/// a histogram's `…_sum`) on the `/metrics` of the service on `port`.
pub fn scraped_sum(port: u16, name: &str) -> anyhow::Result<f64> {
    match crate::probe::http_get(port, "/metrics", Duration::from_secs(5)) {
        Some((200, text)) => Ok(metric_sum(&text, name)),
        _ => bail!("the service on port {port} does not serve /metrics"),
    }
}

/// The sum over its labels of metric `name` in Prometheus text `metrics`.
pub fn metric_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_is_summed_over_its_labels_only() {
        let text = "# TYPE sluice_destination_parked counter\n\
            sluice_destination_parked_total{webhook_id=\"a\",reason=\"circuit_open\"} 3\n\
            sluice_destination_parked_total{webhook_id=\"b\",reason=\"queue_full\"} 4.5\n\
            sluice_destination_parked_total_other 100\n\
            sluice_processor_insert_duration_seconds_sum{table=\"events\"} 1.5\n\
            sluice_processor_insert_duration_seconds_count{table=\"events\"} 3\n\
            sluice_processor_insert_duration_seconds_sum{table=\"rollups\"} 0.25\n";
        assert_eq!(metric_sum(text, "sluice_destination_parked_total"), 7.5);
        assert_eq!(
            metric_sum(text, "sluice_processor_insert_duration_seconds_sum"),
            1.75
        );
        assert_eq!(metric_sum(text, "sluice_destination_matches_total"), 0.0);
        assert_eq!(metric_sum("", "anything"), 0.0);
    }
}
