//! `sluice-dev test`: every test of the workspace against the real stack,
//! once per ClickHouse engine, as CI runs it (`.ci/run` calls
//! `deploy/test.sh`, a wrapper of this):
//!
//! - `clickhouse-18`: Debian's clickhouse-server 18.16;
//! - `chdb`: the current engine (chdb-core 26.9) behind the HTTP test
//!   fixture in testkit/chdb-fixture, whose own tests run first.
//!
//! Before them, once: the Kubernetes manifests (`deploy/kubernetes/
//! validate.sh`), the Prometheus rules (`promtool check rules`, `promtool
//! test rules`) and the OpenAPI conformance of both HTTP services
//! (`sluice-dev conformance`, on the first engine), and both services'
//! `/docs` in headless chromium (`sluice-dev browser`). It installs what is
//! missing first (`deploy/install.sh`), starts the stack, and fails when
//! any part fails; tests never skip (a missing broker or engine fails
//! them, saying so).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::browser_check::BrowserCheck;
use crate::cluster::{CLUSTER_NAME, Cluster, ClusterSettings};
use crate::components::Component;
use crate::conformance::Conformance;
use crate::settings::{HOST, StackSettings};
use crate::stack::Stack;

/// The engines a run can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Clickhouse18,
    Chdb,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Self::Clickhouse18 => "clickhouse-18",
            Self::Chdb => "chdb",
        }
    }

    /// `clickhouse-18`, `chdb` or `both`.
    pub fn parse_choice(choice: &str) -> anyhow::Result<Vec<Self>> {
        Ok(match choice {
            "both" => vec![Self::Clickhouse18, Self::Chdb],
            "clickhouse-18" => vec![Self::Clickhouse18],
            "chdb" => vec![Self::Chdb],
            other => bail!(
                "unknown engine '{other}': use clickhouse-18, chdb or both (--engine or SLUICE_TEST_ENGINES)"
            ),
        })
    }

    fn component(self) -> Component {
        match self {
            Self::Clickhouse18 => Component::Clickhouse,
            Self::Chdb => Component::Chdb,
        }
    }

    fn url(self, settings: &StackSettings) -> String {
        let port = match self {
            Self::Clickhouse18 => settings.clickhouse_http_port,
            Self::Chdb => settings.chdb_port,
        };
        format!("http://{HOST}:{port}")
    }
}

#[derive(Debug, Clone)]
pub struct TestRun {
    pub engines: Vec<Engine>,
    pub conformance: bool,
    /// Passed to the test runner, e.g. `-E 'test(end_to_end)'`.
    pub runner_args: Vec<String>,
}

fn say(line: impl AsRef<str>) {
    println!("test: {}", line.as_ref());
}

/// Runs `program` in `repo`; Ok(true) when it exits 0.
fn succeeds(repo: &Path, command: &mut Command) -> anyhow::Result<bool> {
    let status = command
        .current_dir(repo)
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    Ok(status.success())
}

/// One named part of the run and how it ended.
struct Outcome {
    summary: Vec<String>,
    failed: Vec<String>,
}

impl Outcome {
    fn record(&mut self, part: &str, passed: bool, detail: &str) {
        self.summary.push(format!("{part}: {detail}"));
        if !passed {
            self.failed.push(part.to_owned());
        }
    }

    /// Runs a part that checks running services and records how it ended
    /// and how long it took; a part that cannot start counts as failed.
    fn timed(&mut self, part: &str, run: impl FnOnce() -> anyhow::Result<bool>) {
        let started = Instant::now();
        let passed = run().unwrap_or_else(|error| {
            eprintln!("{part}: error: {error:#}");
            false
        });
        let verdict = if passed { "passed" } else { "FAILED" };
        let detail = format!("{verdict} in {} s", started.elapsed().as_secs());
        self.record(part, passed, &detail);
    }
}

/// The tests of a cluster of their own (`.config/nextest.toml` keeps them
/// out of the engine passes).
const CLUSTER_TESTS: &str =
    "binary_id(sluice-devstack::cluster) or binary_id(sluice-testkit::cluster_faults)";

/// The suites that must give the same answers on a cluster as on one
/// server: the query API's, the processor's exactly-once tests, and
/// retention (day partitions dropped on every shard).
const CLUSTER_SUITES: &str = "binary(exactly_once) or binary_id(sluice-query-api::api) \
                              or test(retention_drops_old_day_partitions_only)";

impl TestRun {
    /// The query and exactly-once suites again, on the local cluster
    /// (`sluice-dev cluster`: tables `ON CLUSTER`, replicated, sharded by
    /// Kafka partition, read through Distributed tables), once, on 18.16.
    fn cluster_pass(
        &self,
        repo: &Path,
        brokers: &str,
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        say(
            "===== engine cluster-18: the query and exactly-once suites on the local cluster =====",
        );
        let started = Instant::now();
        let cluster = Cluster::new(ClusterSettings::from_env(repo)?);
        cluster.up()?;
        let (first, second_shard) = (cluster.url(1), cluster.url(3));
        let passed = succeeds(
            repo,
            Command::new("cargo")
                .args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--no-fail-fast",
                    "-E",
                    CLUSTER_SUITES,
                ])
                .env("SLUICE_TEST_KAFKA_BROKERS", brokers)
                .env("SLUICE_TEST_CLICKHOUSE_ENGINE", "cluster-18")
                .env("SLUICE_TEST_CLICKHOUSE_URL", &first)
                .env("SLUICE_TEST_CLICKHOUSE_CLUSTER", CLUSTER_NAME)
                .env(
                    "SLUICE_TEST_CLICKHOUSE_SHARD_URLS",
                    format!("{first},{second_shard}"),
                ),
        )?;
        let verdict = if passed { "passed" } else { "FAILED" };
        outcome.record(
            "engine cluster-18 (query and exactly-once suites)",
            passed,
            &format!("{verdict} in {} s", started.elapsed().as_secs()),
        );
        Ok(())
    }

    pub fn run(&self, settings: &StackSettings) -> anyhow::Result<bool> {
        let repo = settings.repo.clone();
        let install = |what: &[&str]| -> anyhow::Result<()> {
            let mut command = Command::new(repo.join("deploy/install.sh"));
            command.args(what);
            if !succeeds(&repo, &mut command)? {
                bail!("deploy/install.sh {} failed", what.join(" "));
            }
            Ok(())
        };
        let brokers =
            std::env::var("SLUICE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| settings.kafka_brokers());
        // A named engine URL: one run, against it.
        let external = std::env::var("SLUICE_TEST_CLICKHOUSE_URL").ok();
        let runs: Vec<(String, String)> = match &external {
            Some(url) => {
                let name = std::env::var("SLUICE_TEST_CLICKHOUSE_ENGINE")
                    .unwrap_or_else(|_| "external".into());
                say(format!(
                    "SLUICE_TEST_CLICKHOUSE_URL is set: one run, against {url}"
                ));
                vec![(name, url.clone())]
            }
            None => self
                .engines
                .iter()
                .map(|engine| (engine.name().to_owned(), engine.url(settings)))
                .collect(),
        };

        install(&[])?;
        // promtool for the rules, prometheus for testkit/tests/prometheus.rs.
        install(&["prometheus"])?;
        // ZooKeeper for the local cluster of devstack/tests/cluster.rs.
        install(&["zookeeper"])?;
        // Debian's chromium and playwright-core for the browser step.
        install(&["browser"])?;
        let mut components = vec![Component::Kafka];
        if external.is_none() {
            for engine in &self.engines {
                if *engine == Engine::Chdb {
                    install(&["chdb"])?;
                }
                components.push(engine.component());
            }
        }
        Stack::new(settings.clone()).up(&components)?;

        let nextest = Command::new("cargo")
            .args(["nextest", "--version"])
            .output()
            .is_ok_and(|output| output.status.success());
        if !nextest {
            say(
                "cargo-nextest not found; using cargo test (install it with: cargo install cargo-nextest --locked)",
            );
        }
        let mut outcome = Outcome {
            summary: Vec::new(),
            failed: Vec::new(),
        };

        say("===== Kubernetes manifests (deploy/kubernetes/validate.sh) =====");
        let valid = succeeds(
            &repo,
            &mut Command::new(repo.join("deploy/kubernetes/validate.sh")),
        )?;
        outcome.record(
            "Kubernetes manifests",
            valid,
            if valid { "valid" } else { "INVALID" },
        );

        say("===== Prometheus rules (promtool check rules, promtool test rules) =====");
        let rules = succeeds(
            &repo,
            Command::new("promtool").args(["check", "rules", "deploy/prometheus/rules.yml"]),
        )? && succeeds(
            &repo,
            Command::new("promtool").args(["test", "rules", "deploy/prometheus/rules_test.yml"]),
        )?;
        outcome.record(
            "Prometheus rules",
            rules,
            if rules {
                "valid, unit tests passed"
            } else {
                "FAILED"
            },
        );

        if self.conformance {
            let (engine, url) = &runs[0];
            let stack = Some((brokers.clone(), url.clone()));
            say(format!(
                "===== OpenAPI conformance (sluice-dev conformance) on {engine} ====="
            ));
            outcome.timed("OpenAPI conformance", || {
                Conformance {
                    stack: stack.clone(),
                    ..Conformance::default()
                }
                .run(&repo)
            });
            say(format!(
                "===== browser: /docs in chromium (sluice-dev browser) on {engine} ====="
            ));
            // CI's screenshots stay out of the committed ones (docs/screenshots).
            outcome.timed("browser (/docs)", || {
                BrowserCheck {
                    stack,
                    screenshots: Some(repo.join(".sluice/browser")),
                    ..BrowserCheck::default()
                }
                .run(&repo)
            });
        } else {
            outcome
                .summary
                .push("OpenAPI conformance and browser (/docs): not run (--no-conformance)".into());
        }

        if !self.runner_args.is_empty() {
            outcome
                .summary
                .push("ClickHouse cluster: not run (runner arguments choose the tests)".into());
        } else if nextest {
            // Its own ZooKeeper and three ClickHouse 18.16 servers whatever
            // the engine: once, here; the engine passes leave it out
            // (.config/nextest.toml). Under plain cargo test it runs in each.
            say(
                "===== ClickHouse cluster (devstack/tests/cluster.rs, testkit/tests/cluster_faults.rs) =====",
            );
            let started = Instant::now();
            let passed = succeeds(
                &repo,
                Command::new("cargo").args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--no-fail-fast",
                    "--ignore-default-filter",
                    "-E",
                    CLUSTER_TESTS,
                ]),
            )?;
            let verdict = if passed { "passed" } else { "FAILED" };
            outcome.record(
                "ClickHouse cluster",
                passed,
                &format!("{verdict} in {} s", started.elapsed().as_secs()),
            );
            self.cluster_pass(&repo, &brokers, &mut outcome)?;
        }

        for (engine, url) in &runs {
            say(format!("===== engine {engine}: {url} ====="));
            let started = Instant::now();
            let mut passed = true;
            if engine == Engine::Chdb.name() {
                say("the chdb fixture's own tests (testkit/chdb-fixture/test_*.py)");
                passed &= succeeds(
                    &repo,
                    Command::new(settings.chdb_venv.join("bin/python"))
                        .env("PYTHONDONTWRITEBYTECODE", "1")
                        .args([
                            "-m",
                            "unittest",
                            "discover",
                            "-s",
                            "testkit/chdb-fixture",
                            "-q",
                        ]),
                )?;
            }
            let mut runner = Command::new("cargo");
            if nextest {
                runner.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
            } else {
                runner.args(["test", "--workspace", "--no-fail-fast"]);
            }
            runner
                .args(&self.runner_args)
                .env("SLUICE_TEST_KAFKA_BROKERS", &brokers)
                .env("SLUICE_TEST_CLICKHOUSE_ENGINE", engine)
                .env("SLUICE_TEST_CLICKHOUSE_URL", url);
            passed &= succeeds(&repo, &mut runner)?;
            let verdict = if passed { "passed" } else { "FAILED" };
            say(format!("===== engine {engine}: {verdict} ====="));
            outcome.record(
                &format!("engine {engine}"),
                passed,
                &format!("{verdict} in {} s", started.elapsed().as_secs()),
            );
        }

        for line in &outcome.summary {
            say(line);
        }
        if !outcome.failed.is_empty() {
            say(format!("failed: {}", outcome.failed.join(", ")));
        }
        Ok(outcome.failed.is_empty())
    }
}
