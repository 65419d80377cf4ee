//! `sluice-dev conformance`: the gateway and the query API checked against
//! their OpenAPI documents (`/openapi.json`) with schemathesis, then real
//! SDKs pointed at the gateway ([`crate::sdk_check`]). schemathesis generates valid and invalid
//! requests and checks every answer: no 5xx, documented status codes,
//! content types, headers and bodies, invalid input refused with a 4xx,
//! unknown methods refused with 405 and Allow.
//!
//! Without URLs it starts its own gateway, processor and query API (debug
//! builds, on free ports, with their own topics and database, so it never
//! reads or writes anyone's data, and failed-auth checks do not trip the
//! per-IP limit) on the broker and ClickHouse of SLUICE_KAFKA_BROKERS and
//! SLUICE_CLICKHOUSE_URL, or of the stack (started when needed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bench::processes::{Processes, ServiceLaunch};
use crate::bench::{HttpEndpoint, unix_seconds};
use crate::components::Component;
use crate::sdk_check::SdkCheck;
use crate::settings::{HOST, StackSettings};
use crate::stack::Stack;
use crate::{sluice_cache, sluice_cache_dir};

/// schemathesis's checks: all but `positive_data_acceptance` (some rules
/// span parameters or need state, which JSON Schema cannot state, and get
/// a documented 400) and `max_response_time` (timing is not conformance).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,missing_required_header,unsupported_method,allow_header_conformance,ignored_auth,use_after_free,ensure_resource_availability";

/// A fixed name, so runs do not pile up topics and databases (the processor
/// resumes from its checkpoint; the API reads the last day).
const RUN_NAME: &str = "conformance";

#[derive(Debug, Clone, clap::Args)]
pub struct Conformance {
    /// Check a running gateway instead (with --query and --admin-token;
    /// only a disposable stack: the run sends events, creates and revokes keys).
    #[arg(long, requires_all = ["query", "admin_token"])]
    pub gateway: Option<String>,
    /// The running query API to check.
    #[arg(long, requires_all = ["gateway", "admin_token"])]
    pub query: Option<String>,
    /// The admin token both running services accept.
    #[arg(long, requires_all = ["gateway", "query"])]
    pub admin_token: Option<String>,
    /// Generated requests per operation and phase.
    #[arg(long, default_value_t = DEFAULT_EXAMPLES, value_parser = clap::value_parser!(u32).range(1..))]
    pub examples: u32,
    /// Keep schemathesis's JUnit reports and the services' logs (path printed).
    #[arg(long)]
    pub keep_reports: bool,
    /// The broker and ClickHouse to start the services on (the test
    /// matrix's); else SLUICE_KAFKA_BROKERS and SLUICE_CLICKHOUSE_URL, or the stack.
    #[arg(skip)]
    pub stack: Option<(String, String)>,
}

/// Generated requests per operation and phase unless told otherwise.
const DEFAULT_EXAMPLES: u32 = 25;

/// What the command line gives with no options (the test matrix runs it so).
impl Default for Conformance {
    fn default() -> Self {
        Self {
            gateway: None,
            query: None,
            admin_token: None,
            examples: DEFAULT_EXAMPLES,
            keep_reports: false,
            stack: None,
        }
    }
}

fn say(line: impl AsRef<str>) {
    println!("conformance: {}", line.as_ref());
}

/// The services under test.
pub(crate) struct Target {
    pub gateway: HttpEndpoint,
    pub query: HttpEndpoint,
    /// The destinations service, when [`start_services`] started one.
    pub destinations: Option<HttpEndpoint>,
    pub admin_token: String,
}

/// Whether [`start_services`] also starts the destinations service, and
/// points the query API's `/v1/webhooks` at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Webhooks {
    Without,
    /// Webhooks may point at `127.0.0.0/8`, so a test can receive them.
    Served,
}

impl Conformance {
    /// True when every run passed.
    pub fn run(&self, repo: &Path) -> anyhow::Result<bool> {
        if !Command::new(repo.join("deploy/install.sh"))
            .arg("schemathesis")
            .status()
            .is_ok_and(|status| status.success())
        {
            bail!("deploy/install.sh schemathesis failed");
        }
        let work = std::env::temp_dir().join(format!(
            "sluice-conformance-{}-{}",
            std::process::id(),
            unix_seconds()
        ));
        std::fs::create_dir_all(&work)?;
        let mut processes = Processes::default();
        processes.patience = Duration::from_secs(90);
        let outcome = self.run_in(repo, &work, &mut processes);
        processes.stop_all();
        if self.keep_reports {
            say(format!(
                "reports and service logs kept in {}",
                work.display()
            ));
        } else {
            let _ = std::fs::remove_dir_all(&work);
        }
        outcome
    }

    fn run_in(&self, repo: &Path, work: &Path, processes: &mut Processes) -> anyhow::Result<bool> {
        let target = match (&self.gateway, &self.query, &self.admin_token) {
            (Some(gateway), Some(query), Some(token)) => Target {
                gateway: HttpEndpoint::parse(gateway, "--gateway")?,
                query: HttpEndpoint::parse(query, "--query")?,
                destinations: None,
                admin_token: token.clone(),
            },
            _ => start_services(
                repo,
                work,
                processes,
                self.stack.clone(),
                RUN_NAME,
                Webhooks::Without,
            )?,
        };
        let key = create_key(&target)?;
        crate::bench::e2e::wait_for_key_at(&target.query, &key)?;
        seed_events(&target, &key)?;

        let mut summary = Vec::new();
        let mut failed = Vec::new();
        let venv = sluice_cache("SLUICE_SCHEMATHESIS_VENV", "schemathesis-venv");
        let mut schemathesis =
            |name: &str, url: String, credential: &str, paths: [&str; 2]| -> anyhow::Result<()> {
                say(format!("===== {name} ====="));
                let started = Instant::now();
                let status = Command::new(venv.join("bin/schemathesis"))
                    .env("SLUICE_CONFORMANCE_KEY", credential)
                    .env(
                        "SLUICE_CONFORMANCE_CACHE",
                        sluice_cache_dir("schemathesis-cache"),
                    )
                    .args(["--no-color", "--config-file"])
                    .arg(repo.join("deploy/conformance/schemathesis.toml"))
                    .args([
                        "run",
                        &format!("{url}/openapi.json"),
                        "--checks",
                        CHECKS,
                        "--max-examples",
                        &self.examples.to_string(),
                        "--continue-on-failure",
                        "--report",
                        "junit",
                        "--report-junit-path",
                    ])
                    .arg(work.join(format!("{name}.xml")))
                    .args(paths)
                    .status()
                    .context("cannot run schemathesis")?;
                let seconds = started.elapsed().as_secs();
                if status.success() {
                    summary.push(format!("{name}: passed in {seconds} s"));
                } else {
                    summary.push(format!("{name}: FAILED ({status}) in {seconds} s"));
                    failed.push(name.to_owned());
                }
                Ok(())
            };
        let (query, gateway, token) = (
            target.query.url(),
            target.gateway.url(),
            target.admin_token.as_str(),
        );
        // Sign-in (`/v1/auth/`) is left to query-api/tests/api/accounts.rs:
        // fuzzing it meets the per-account limit (429, which fails a run) and
        // would sign its own session out; keys and users take an admin key.
        schemathesis(
            "query-api",
            query.clone(),
            &key,
            ["--exclude-path-regex", "^/v1/(admin|auth|keys|users)(/|$)"],
        )?;
        schemathesis(
            "query-api-admin",
            query.clone(),
            token,
            ["--include-path-regex", "^/v1/admin/"],
        )?;
        schemathesis(
            "gateway",
            gateway.clone(),
            &key,
            ["--exclude-path-regex", "^/v1/admin/"],
        )?;
        // The real SDKs against the same services and key, before the admin
        // run may revoke the key.
        say("===== sdks (sluice-dev sdk-check) =====");
        let started = Instant::now();
        let sdks = SdkCheck {
            gateway: gateway.clone(),
            query,
            key: key.clone(),
        };
        let passed = sdks.run(repo).unwrap_or_else(|error| {
            eprintln!("sdk-check: error: {error:#}");
            false
        });
        let seconds = started.elapsed().as_secs();
        schemathesis(
            "gateway-admin",
            gateway,
            token,
            ["--include-path-regex", "^/v1/admin/"],
        )?;
        // Last: it may rotate or revoke keys of the project. With the admin
        // token (and the project header of schemathesis.toml): a key of its
        // own could be rotated or revoked by the run itself.
        schemathesis(
            "query-api-manage",
            target.query.url(),
            token,
            ["--include-path-regex", "^/v1/(keys|users)(/|$)"],
        )?;
        if passed {
            summary.insert(3, format!("sdks: passed in {seconds} s"));
        } else {
            summary.insert(3, format!("sdks: FAILED in {seconds} s"));
            failed.insert(3, "sdks".into());
        }
        for line in &summary {
            say(line);
        }
        if failed.is_empty() {
            say("both services conform to their OpenAPI documents, and the SDKs' events arrive");
            Ok(true)
        } else {
            say(format!(
                "failed: {} (each failure above has a curl command that reproduces it)",
                failed.join(" ")
            ));
            Ok(false)
        }
    }
}

/// A free port on [`HOST`] (the kernel's choice).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((HOST, 0))?.local_addr()?.port())
}

/// Builds and starts the gateway, a processor (so the query API has
/// events to answer with), with `webhooks` the destinations service, and
/// the query API on free ports, with topics, database and consumer groups
/// of their own, named after `run`.
pub(crate) fn start_services(
    repo: &Path,
    work: &Path,
    processes: &mut Processes,
    stack: Option<(String, String)>,
    run: &str,
    webhooks: Webhooks,
) -> anyhow::Result<Target> {
    let (brokers, clickhouse) = match stack {
        Some((brokers, clickhouse)) => (Some(brokers), Some(clickhouse)),
        None => (
            std::env::var("SLUICE_KAFKA_BROKERS").ok(),
            std::env::var("SLUICE_CLICKHOUSE_URL").ok(),
        ),
    };
    let (brokers, clickhouse) = match (brokers, clickhouse) {
        (Some(brokers), Some(clickhouse)) => (brokers, clickhouse),
        (brokers, clickhouse) => {
            let settings = StackSettings::from_env(repo)?;
            Stack::new(settings.clone()).up(&[Component::Clickhouse, Component::Kafka])?;
            (
                brokers.unwrap_or_else(|| settings.kafka_brokers()),
                clickhouse.unwrap_or_else(|| settings.clickhouse_url()),
            )
        }
    };
    say("building the services");
    let mut binaries = vec![
        "sluice-ingest-gateway",
        "sluice-stream-processor",
        "sluice-query-api",
    ];
    if webhooks == Webhooks::Served {
        binaries.push("sluice-destinations");
    }
    let built = Command::new("cargo")
        .args(["build", "--quiet"])
        .args(binaries.iter().flat_map(|binary| ["--bin", binary]))
        .current_dir(repo)
        .status()
        .context("cannot run cargo")?;
    if !built.success() {
        bail!("building the services failed; the errors are above");
    }
    let bin_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo.join("target"), PathBuf::from)
        .join("debug");
    let (gateway_port, processor_port, query_port) = (free_port()?, free_port()?, free_port()?);
    let admin_token = format!(
        "conformance-admin-token-{}{}",
        std::process::id(),
        unix_seconds() % 100_000
    );
    let log_level = std::env::var("SLUICE_LOG").unwrap_or_else(|_| "warn".into());
    let common = vec![
        ("SLUICE_KAFKA_BROKERS", brokers),
        ("SLUICE_CLICKHOUSE_URL", clickhouse),
        ("SLUICE_CLICKHOUSE_DATABASE", format!("sluice_{run}")),
        ("SLUICE_KAFKA_EVENTS_TOPIC", format!("sluice.{run}.events")),
        ("SLUICE_KAFKA_DLQ_TOPIC", format!("sluice.{run}.dlq")),
        ("SLUICE_KAFKA_KEYS_TOPIC", format!("sluice.{run}.keys")),
        ("SLUICE_KAFKA_ACCESS_TOPIC", format!("sluice.{run}.access")),
        // Sessions on, so sign-in and the user endpoints are exercised for real.
        (
            "SLUICE_SESSION_SECRET",
            format!("conformance-session-secret-{run}-0123456789abcdef"),
        ),
        ("SLUICE_KAFKA_LIVE_TOPIC", format!("sluice.{run}.live")),
        ("SLUICE_KAFKA_PARTITIONS", "1".into()),
        ("SLUICE_CONSUMER_GROUP", format!("sluice-{run}")),
        ("SLUICE_LOG", log_level),
    ];
    // `extra` overrides `common`.
    let launch = |binary: &str, log: &str, port: u16, extra: Vec<(&'static str, String)>| {
        let mut env = common.clone();
        env.retain(|(name, _)| extra.iter().all(|(other, _)| other != name));
        env.push(("SLUICE_LISTEN", format!("{HOST}:{port}")));
        env.extend(extra);
        ServiceLaunch {
            binary: bin_dir.join(binary),
            log: work.join(log),
            port,
            port_option: "a free port",
            env,
        }
    };
    processes.service(&launch(
        "sluice-ingest-gateway",
        "gateway.log",
        gateway_port,
        vec![
            ("SLUICE_ADMIN_TOKEN", admin_token.clone()),
            ("SLUICE_RATE_LIMIT_FAILED_AUTH_PER_MINUTE", "1000000".into()),
        ],
    ))?;
    processes.service(&launch(
        "sluice-stream-processor",
        "processor.log",
        processor_port,
        Vec::new(),
    ))?;
    let mut query_env = vec![
        ("SLUICE_ADMIN_TOKEN", admin_token.clone()),
        ("SLUICE_PROCESSOR_GROUP", format!("sluice-{run}")),
        (
            "SLUICE_STATUS_PEERS",
            format!(
                "gateway=http://{HOST}:{gateway_port},processor=http://{HOST}:{processor_port}"
            ),
        ),
    ];
    let destinations = match webhooks {
        Webhooks::Without => None,
        Webhooks::Served => {
            let port = free_port()?;
            processes.service(&launch(
                "sluice-destinations",
                "destinations.log",
                port,
                vec![
                    ("SLUICE_ADMIN_TOKEN", admin_token.clone()),
                    (
                        "SLUICE_KAFKA_WEBHOOKS_TOPIC",
                        format!("sluice.{run}.webhooks"),
                    ),
                    (
                        "SLUICE_KAFKA_RETRY_TOPIC",
                        format!("sluice.{run}.deliveries.retry"),
                    ),
                    (
                        "SLUICE_KAFKA_DEAD_LETTER_TOPIC",
                        format!("sluice.{run}.deliveries.dlq"),
                    ),
                    // Not the processor's group: each reads every event.
                    (
                        "SLUICE_CONSUMER_GROUP",
                        format!("sluice-{run}-destinations"),
                    ),
                    ("SLUICE_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8".into()),
                ],
            ))?;
            query_env.push(("SLUICE_DESTINATIONS_URL", format!("http://{HOST}:{port}")));
            Some(HttpEndpoint {
                host: HOST.into(),
                port,
            })
        }
    };
    processes.service(&launch(
        "sluice-query-api",
        "query-api.log",
        query_port,
        query_env,
    ))?;
    let target = Target {
        gateway: HttpEndpoint {
            host: HOST.into(),
            port: gateway_port,
        },
        query: HttpEndpoint {
            host: HOST.into(),
            port: query_port,
        },
        destinations,
        admin_token,
    };
    let destinations = target
        .destinations
        .as_ref()
        .map(|endpoint| format!(", destinations {}", endpoint.url()))
        .unwrap_or_default();
    say(format!(
        "gateway {}, query API {}{destinations} (topics and database of {run})",
        target.gateway.url(),
        target.query.url()
    ));
    Ok(target)
}

/// A fresh key of both scopes for this run; the admin run comes last, since
/// it may revoke any key it lists, this one included.
pub(crate) fn create_key(target: &Target) -> anyhow::Result<String> {
    let authorization = format!("Bearer {}", target.admin_token);
    let body = r#"{"project_id":"conformance","scopes":["ingest","read"],"label":"sluice-dev conformance"}"#;
    let (_, answer) = target
        .gateway
        .call(
            "POST",
            "/v1/admin/keys",
            &[
                ("Authorization", &authorization),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .ok_or_else(|| {
            anyhow::anyhow!(
                "cannot reach the gateway's admin API at {}",
                target.gateway.url()
            )
        })?;
    serde_json::from_str::<Value>(&answer)
        .ok()
        .and_then(|value| value.get("key")?.as_str().map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("the gateway refused to create a key: {answer}"))
}

/// Events of every shape (absent, null and present fields), so the query
/// API answers with rows that the response schemas are checked against.
pub fn seed_batch(tag: &str, now_ms: u64) -> String {
    let earlier = now_ms - 120_000;
    format!(
        r#"{{"events": [
  {{"type": "page_view", "tags": ["{tag}"]}},
  {{"type": "click", "tags": ["{tag}", "b"], "user_id": "u1", "session_id": "s1", "source": "web",
   "duration_ms": 12.5, "status": 200, "timestamp": {earlier}, "properties": {{"plan": "pro", "n": 2, "deep": {{"a": [1, true, null]}}}}}},
  {{"type": "purchase", "tags": ["{tag}"], "user_id": null, "status": "=cmd", "duration_ms": 0, "properties": null}},
  {{"type": "click", "tags": ["{tag}"], "user_id": "u2", "source": "ios", "duration_ms": 99, "status": "500", "event_id": "{tag}-4"}}
]}}"#
    )
}

fn seed_events(target: &Target, key: &str) -> anyhow::Result<()> {
    let tag = format!(
        "conformance-{}-{}",
        std::process::id(),
        unix_seconds() % 100_000
    );
    let authorization = format!("Bearer {key}");
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Content-Type", "application/json"),
    ];
    let sent = target.gateway.call(
        "POST",
        "/v1/events/batch",
        &headers,
        &seed_batch(&tag, unix_seconds() * 1000),
    );
    if !sent
        .as_ref()
        .is_some_and(|(status, _)| (200..300).contains(status))
    {
        bail!("the gateway refused the seed events: {sent:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = format!("/v1/events?tag={tag}");
    loop {
        let answer = target.query.call("GET", &path, &headers[..1], "");
        if answer.is_some_and(|(status, body)| status == 200 && body.contains(&format!("{tag}-4")))
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the seed events are not readable after 30 s (is a processor running?)");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        conformance: Conformance,
    }

    #[test]
    fn running_services_are_named_all_three_together() {
        assert!(Cli::try_parse_from(["c", "--gateway", "http://127.0.0.1:1"]).is_err());
        assert!(Cli::try_parse_from(["c", "--examples", "0"]).is_err());
        let cli = Cli::try_parse_from([
            "c",
            "--gateway",
            "http://h:1",
            "--query",
            "http://h:2",
            "--admin-token",
            "t",
        ])
        .unwrap();
        assert_eq!(cli.conformance.examples, 25);
        assert_eq!(cli.conformance.query.as_deref(), Some("http://h:2"));
    }

    #[test]
    fn the_default_is_what_the_command_line_gives() {
        let cli = Cli::try_parse_from(["c"]).unwrap();
        let default = Conformance::default();
        assert_eq!(default.examples, cli.conformance.examples);
        assert!(default.examples >= 1);
        assert_eq!(
            (default.gateway, default.keep_reports),
            (cli.conformance.gateway, cli.conformance.keep_reports)
        );
    }

    #[test]
    fn the_seed_batch_is_json_with_every_shape() {
        let batch: Value = serde_json::from_str(&seed_batch("t", 1_000_000)).unwrap();
        let events = batch["events"].as_array().unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[1]["timestamp"], 880_000);
        assert!(events[2]["user_id"].is_null());
        assert_eq!(events[3]["event_id"], "t-4");
    }
}
