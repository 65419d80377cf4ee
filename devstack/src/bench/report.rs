//! The load generator's JSON reports: running `sluice-loadgen` with its
//! report into a file, and reading numbers out of a report.

use std::path::Path;
use std::process::Command;

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
