//! `sluice-dev browser`: the services' pages in a real browser. It starts
//! the gateway, a processor, the destinations service and the query API on
//! free ports (as [`crate::conformance`] does, with topics and a database of
//! their own; webhooks may point at this machine), makes a key, and runs
//! with Debian's chromium, driven by npm's playwright-core:
//! - `deploy/browser/docs_test.js`: opens `/docs` on both services, checks
//!   that the page logs no console error, authorizes with the key and sends
//!   requests with "Try it out";
//! - `deploy/browser/dashboard_test.js`: the dashboard at `/` of the query
//!   API, as an admin and a viewer of the key's project (both made here with
//!   the bootstrap endpoint `POST /v1/admin/users`): live tiles, the metrics
//!   and event explorers, key management, webhooks (delivered to a receiver
//!   the test runs), users added, changed and removed (whose session is
//!   then refused), a password change, and the pages a viewer is refused.
//!
//! Screenshots go to `docs/screenshots/`.
//!
//! Nothing is skipped: without chromium or playwright-core the run fails,
//! naming `deploy/install.sh browser`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::bench::processes::Processes;
use crate::bench::unix_seconds;
use crate::conformance::{Target, Webhooks, create_key, start_services};
use crate::sluice_cache;

/// The browser the tests drive: Debian's (Playwright's own download cannot
/// work here).
pub const CHROMIUM: &str = "/usr/bin/chromium";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct BrowserCheck {
    /// Where the screenshots go [docs/screenshots of the repository].
    #[arg(long)]
    pub screenshots: Option<PathBuf>,
    /// Keep the services' logs (path printed).
    #[arg(long)]
    pub keep_logs: bool,
    /// The broker and ClickHouse to start the services on (the test
    /// matrix's); else SLUICE_KAFKA_BROKERS and SLUICE_CLICKHOUSE_URL, or the stack.
    #[arg(skip)]
    pub stack: Option<(String, String)>,
}

fn say(line: impl AsRef<str>) {
    println!("browser: {}", line.as_ref());
}

/// `node_modules` holding playwright-core, as `deploy/install.sh browser`
/// installs it.
fn node_modules() -> PathBuf {
    sluice_cache("SLUICE_BROWSER_CACHE", "browser").join("node/node_modules")
}

/// Fails, naming the install command, when chromium, node or
/// playwright-core is missing.
fn check_installed(chromium: &Path, modules: &Path) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!("chromium ({})", chromium.display()));
    }
    if !modules.join("playwright-core/package.json").is_file() {
        missing.push(format!("playwright-core (in {})", modules.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node".into());
    }
    if !missing.is_empty() {
        bail!(
            "the browser tests need {}: run deploy/install.sh browser",
            missing.join(", ")
        );
    }
    Ok(())
}

impl BrowserCheck {
    /// True when every page passed.
    pub fn run(&self, repo: &Path) -> anyhow::Result<bool> {
        let modules = node_modules();
        check_installed(Path::new(CHROMIUM), &modules)?;
        let screenshots = self
            .screenshots
            .clone()
            .unwrap_or_else(|| repo.join("docs/screenshots"));
        std::fs::create_dir_all(&screenshots)
            .with_context(|| format!("cannot create {}", screenshots.display()))?;
        let work = std::env::temp_dir().join(format!(
            "sluice-browser-{}-{}",
            std::process::id(),
            unix_seconds()
        ));
        std::fs::create_dir_all(&work)?;
        let mut processes = Processes::default();
        processes.patience = Duration::from_secs(90);
        let outcome = self.run_in(repo, &work, &mut processes, &modules, &screenshots);
        processes.stop_all();
        if self.keep_logs {
            say(format!("service logs kept in {}", work.display()));
        } else {
            let _ = std::fs::remove_dir_all(&work);
        }
        outcome
    }

    fn run_in(
        &self,
        repo: &Path,
        work: &Path,
        processes: &mut Processes,
        modules: &Path,
        screenshots: &Path,
    ) -> anyhow::Result<bool> {
        let target = start_services(
            repo,
            work,
            processes,
            self.stack.clone(),
            "browser",
            Webhooks::Served,
        )?;
        let key = create_key(&target)?;
        crate::bench::e2e::wait_for_key_at(&target.query, &key)?;
        let people = DashboardUsers::for_run();
        people.create(&target)?;
        let env = [
            ("NODE_PATH", modules.as_os_str().to_owned()),
            ("SLUICE_CHROMIUM", CHROMIUM.into()),
            ("SLUICE_QUERY_URL", target.query.url().into()),
            ("SLUICE_GATEWAY_URL", target.gateway.url().into()),
            ("SLUICE_BROWSER_KEY", key.into()),
            ("SLUICE_SCREENSHOTS", screenshots.as_os_str().to_owned()),
            ("SLUICE_ADMIN_EMAIL", (&people.admin.0).into()),
            ("SLUICE_ADMIN_PASSWORD", (&people.admin.1).into()),
            ("SLUICE_VIEWER_EMAIL", (&people.viewer.0).into()),
            ("SLUICE_VIEWER_PASSWORD", (&people.viewer.1).into()),
            ("SLUICE_GLOBAL_ADMIN_EMAIL", (&people.global.0).into()),
            ("SLUICE_GLOBAL_ADMIN_PASSWORD", (&people.global.1).into()),
            ("SLUICE_PROJECT", PROJECT.into()),
            ("SLUICE_OTHER_PROJECT", OTHER_PROJECT.into()),
        ];
        let mut passed = true;
        for (script, what) in [
            ("docs_test.js", "/docs of the query API and the gateway"),
            ("dashboard_test.js", "the dashboard of the query API"),
        ] {
            say(format!("===== {what} (deploy/browser/{script}) ====="));
            let started = Instant::now();
            let status = Command::new("node")
                .arg(repo.join("deploy/browser").join(script))
                .envs(env.iter().map(|(name, value)| (name, value)))
                .current_dir(repo)
                .status()
                .context("cannot run node")?;
            let seconds = started.elapsed().as_secs();
            if status.success() {
                say(format!(
                    "{script} passed in {seconds} s; screenshots in {}",
                    screenshots.display()
                ));
            } else {
                say(format!("{script} FAILED ({status}) in {seconds} s"));
                passed = false;
            }
        }
        Ok(passed)
    }
}

/// The project of [`create_key`]'s key, whose dashboard the test opens.
const PROJECT: &str = "conformance";

/// A second project, where the admin is only a viewer: the dashboard then
/// offers a project switcher, and hides the management pages there.
const OTHER_PROJECT: &str = "browser-other";

/// The people the dashboard test signs in as: an admin of [`PROJECT`] (and
/// viewer of [`OTHER_PROJECT`]), a viewer of [`PROJECT`] and a global
/// admin, as (email, password).
struct DashboardUsers {
    admin: (String, String),
    viewer: (String, String),
    /// A global admin: no role anywhere, every role everywhere.
    global: (String, String),
}

impl DashboardUsers {
    /// Addresses of this run only: the users topic outlives it.
    fn for_run() -> Self {
        let run = format!("{}-{}", std::process::id(), unix_seconds());
        let person = |role: &str| {
            (
                format!("{role}-{run}@browser.sluice.test"),
                format!("{role}-password-{run}"),
            )
        };
        Self {
            admin: person("admin"),
            viewer: person("viewer"),
            global: person("global-admin"),
        }
    }

    /// `POST /v1/admin/users` on the query API with the admin token, once
    /// per person.
    fn create(&self, target: &Target) -> anyhow::Result<()> {
        let authorization = format!("Bearer {}", target.admin_token);
        let admin_roles = json!([{"project_id": PROJECT, "role": "admin"},
            {"project_id": OTHER_PROJECT, "role": "viewer"}]);
        let viewer_roles = json!([{"project_id": PROJECT, "role": "viewer"}]);
        for ((email, password), role, roles) in [
            (&self.admin, "admin", admin_roles),
            (&self.viewer, "viewer", viewer_roles),
            (&self.global, "global admin", json!([])),
        ] {
            let body = json!({"email": email, "password": password, "roles": roles,
                "global_admin": role == "global admin"});
            let answer = target.query.call(
                "POST",
                "/v1/admin/users",
                &[
                    ("Authorization", &authorization),
                    ("Content-Type", "application/json"),
                ],
                &body.to_string(),
            );
            match answer {
                Some((201, _)) => {}
                Some((status, text)) => {
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|body| body.get("message")?.as_str().map(str::to_owned))
                        .unwrap_or(text);
                    bail!("the query API refused to create the {role} user ({status}): {message}")
                }
                None => bail!(
                    "cannot reach the query API's admin API at {}",
                    target.query.url()
                ),
            }
        }
        say(format!(
            "users {} (admin; viewer of {OTHER_PROJECT}) and {} (viewer) of project {PROJECT}, {} (global admin)",
            self.admin.0, self.viewer.0, self.global.0
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_browser_fails_with_the_install_command() {
        let nowhere = Path::new("/nonexistent/sluice");
        let error = check_installed(&nowhere.join("chromium"), nowhere)
            .unwrap_err()
            .to_string();
        assert!(error.contains("deploy/install.sh browser"), "{error}");
        assert!(error.contains("chromium") && error.contains("playwright-core"));
    }
}
