//! The Prometheus rules of deploy/prometheus/ and the Grafana dashboard of
//! deploy/grafana/ against the real services: every metric they name is one a
//! service exports (and every recorded series the dashboard reads, one the
//! rules record), and a real Prometheus
//! (Debian's `prometheus` package, as a plain process with its own config)
//! scraping a real processor fires the not-ready alerts while its ClickHouse
//! does not answer, drops them once it is ready, and fires the down alert once
//! it is stopped.
//!
//! The rules' `for:` durations (minutes) are shortened to `for: 2s` in the
//! copy the test's Prometheus loads, which evaluates every second; the
//! expressions are the shipped ones.
//!
//! Without the prometheus binary the tests fail, naming
//! `deploy/install.sh prometheus`; they never skip.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_runtime::ops::{READY_METRIC, SERVICE_READY_METRIC};
use sluice_testkit::processes::free_port;
use sluice_testkit::{Running, StallingProxy, TestEnv, eventually};

use common::{key_of, start_gateway, start_processor, start_query_api};

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/prometheus/rules.yml"
);
const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/sluice.json");
/// What the test's copy of the rules waits instead of each `for:`.
const TEST_FOR: &str = "2s";

fn rules_text() -> String {
    std::fs::read_to_string(RULES).unwrap_or_else(|error| panic!("cannot read {RULES}: {error}"))
}

/// The value of a `key: value` line of the rules file, `key` being the
/// line's first word (after an optional `- `).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let line = line.trim_start();
    let line = line.strip_prefix("- ").unwrap_or(line);
    line.strip_prefix(key)?
        .strip_prefix(':')
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// What the rules file holds, read line by line (each rule's `expr` on
/// one line, which this checks).
#[derive(Debug, Default)]
struct Rules {
    /// Metric names the expressions read (recorded series excluded).
    metrics: BTreeSet<String>,
    /// Recorded series the expressions read (`level:metric:operations`).
    recorded_reads: BTreeSet<String>,
    /// Series the recording rules write.
    records: BTreeSet<String>,
    /// Alert names, with their annotation keys.
    alerts: BTreeMap<String, BTreeSet<String>>,
}

impl Rules {
    fn parse(text: &str) -> Self {
        let mut rules = Self::default();
        let mut alert: Option<String> = None;
        for line in text.lines() {
            if let Some(name) = field(line, "record") {
                rules.records.insert(name.to_owned());
                alert = None;
            } else if let Some(name) = field(line, "alert") {
                rules.alerts.insert(name.to_owned(), BTreeSet::new());
                alert = Some(name.to_owned());
            } else if let Some(expr) = field(line, "expr") {
                assert!(
                    !matches!(expr.chars().next(), Some('|' | '>')),
                    "{RULES}: keep each expr on its line (the test reads it so): {line}"
                );
                for name in identifiers(expr) {
                    if name.contains(':') {
                        rules.recorded_reads.insert(name);
                    } else if name.starts_with("sluice_") {
                        rules.metrics.insert(name);
                    }
                }
            } else if let Some(alert) = &alert {
                for key in ["summary", "description"] {
                    if field(line, key).is_some() {
                        rules.alerts.get_mut(alert).unwrap().insert(key.to_owned());
                    }
                }
            }
        }
        rules
    }
}

/// The metric names (`sluice_*`) and recorded series (`a:b:c`) the
/// dashboard's panels query, and how many queries it has.
fn dashboard_reads() -> (BTreeSet<String>, BTreeSet<String>, usize) {
    let text = std::fs::read_to_string(DASHBOARD)
        .unwrap_or_else(|error| panic!("cannot read {DASHBOARD}: {error}"));
    let dashboard: Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{DASHBOARD} is not JSON: {error}"));
    let mut expressions = Vec::new();
    let mut pending = vec![&dashboard];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    expressions.push(expr.clone());
                }
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    let (mut metrics, mut recorded) = (BTreeSet::new(), BTreeSet::new());
    for name in expressions.iter().flat_map(|expr| identifiers(expr)) {
        if name.contains(':') {
            recorded.insert(name);
        } else if name.starts_with("sluice_") {
            metrics.insert(name);
        }
    }
    (metrics, recorded, expressions.len())
}

/// The identifiers of a PromQL expression outside its quoted strings
/// (label values, regexes): metric names, recorded series, functions,
/// label names and keywords.
fn identifiers(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            let mut escaped = false;
            for inner in chars.by_ref() {
                if inner == c && !escaped {
                    break;
                }
                escaped = inner == '\\' && !escaped;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let mut name = String::from(c);
            while let Some(&next) = chars.peek() {
                if !(next.is_ascii_alphanumeric() || next == '_' || next == ':') {
                    break;
                }
                name.push(next);
                chars.next();
            }
            names.push(name);
        } else if c.is_ascii_digit() {
            // A number or a duration (5m, 1d): not a name.
            while chars.peek().is_some_and(char::is_ascii_alphanumeric) {
                chars.next();
            }
        }
    }
    names
}

/// The series names a `/metrics` exposition (OpenMetrics text) makes
/// Prometheus store: each sample's name, and for every declared family the
/// names its samples take (`_total` of a counter; `_bucket`, `_sum` and
/// `_count` of a histogram), whether or not it has a sample yet (a family
/// with labels has none until its first event).
fn exported_series(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                panic!("a TYPE line without a type: {line}");
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

async fn scrape(service: &Running) -> String {
    let response = reqwest::get(service.url("/metrics"))
        .await
        .expect("/metrics answers");
    assert_eq!(response.status(), 200, "/metrics of {}", service.addr);
    response.text().await.expect("/metrics body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_name_is_one_the_services_export() {
    let rules = Rules::parse(&rules_text());
    let (dashboard_metrics, dashboard_recorded, queries) = dashboard_reads();
    assert!(queries >= 20, "{DASHBOARD} read wrong: {queries} queries");
    let unrecorded: Vec<_> = dashboard_recorded.difference(&rules.records).collect();
    assert!(
        unrecorded.is_empty(),
        "{DASHBOARD} reads recorded series that {RULES} does not record: {unrecorded:?}"
    );
    assert!(
        rules.metrics.len() >= 10 && rules.alerts.len() >= 10,
        "{RULES} read wrong: {rules:?}"
    );
    for (alert, annotations) in &rules.alerts {
        assert!(
            annotations.contains("summary") && annotations.contains("description"),
            "alert {alert} of {RULES} needs a summary and a description annotation"
        );
    }
    let unrecorded: Vec<_> = rules.recorded_reads.difference(&rules.records).collect();
    assert!(
        unrecorded.is_empty(),
        "{RULES} reads recorded series no rule records: {unrecorded:?}"
    );

    let env = TestEnv::new("prom_names");
    let key = key_of(&env).await;
    let gateway = start_gateway(&env).await;
    let processor = start_processor(&env).await;
    let query = start_query_api(&env).await;
    for running in [&gateway, &processor, &query] {
        running.wait_ready().await;
    }
    // A family with labels shows nothing until its first sample: one valid
    // and one invalid event through the pipeline, a request with a wrong key
    // and a read give the per-route, per-reason, per-table and per-partition
    // ones theirs.
    let now = sluice_schemas::time_format::now_ms();
    let batch = json!({"events": [
        {"event_id": "prom-1", "type": "prom", "user_id": "u",
         "timestamp": sluice_schemas::time_format::format_rfc3339_ms(now - 1_000)},
        {"event_id": "prom-2"},
    ]});
    let client = reqwest::Client::new();
    let answer = client
        .post(gateway.url("/v1/events/batch"))
        .bearer_auth(&key)
        .json(&batch)
        .send()
        .await
        .expect("the gateway answers");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
    let refused = client
        .post(gateway.url("/v1/events/batch"))
        .bearer_auth("not-a-key-of-this-test")
        .json(&batch)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(refused.status(), 401);
    let read = client
        .get(query.url("/v1/events?type=prom&limit=1"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("the query API answers");
    assert!(read.status().is_success(), "{:?}", read.text().await);
    eventually(
        "the processor's per-table and per-partition metrics",
        Duration::from_secs(60),
        || {
            let processor = &processor;
            async move {
                let text = scrape(processor).await;
                [
                    "sluice_processor_insert_duration_seconds_bucket{",
                    "sluice_processor_watermark_delay_seconds{",
                    "sluice_processor_consumer_lag{",
                ]
                .iter()
                .all(|family| text.contains(family))
                .then_some(())
            }
        },
    )
    .await;

    let mut exported: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (service, running) in [
        ("gateway", &gateway),
        ("processor", &processor),
        ("query API", &query),
    ] {
        let exposition = scrape(running).await;
        // Readiness is on every service, with each check it registered.
        assert!(
            exposition.contains(&format!("\n{SERVICE_READY_METRIC} 1\n")),
            "{service} is ready but its /metrics does not say so:\n{exposition}"
        );
        assert!(
            exposition.contains(&format!("\n{READY_METRIC}{{check=\"kafka\"}} 1\n")),
            "{service}'s /metrics lacks its kafka check:\n{exposition}"
        );
        for name in exported_series(&exposition) {
            exported.entry(name).or_default().insert(service);
        }
    }
    for (file, named) in [(RULES, &rules.metrics), (DASHBOARD, &dashboard_metrics)] {
        let missing: Vec<_> = named
            .iter()
            .filter(|name| !exported.contains_key(*name))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics no service exports: {missing:?}\nthe services export: {:#?}",
            exported
        );
    }
    for running in [gateway, processor, query] {
        running.stop().await.expect("a clean stop");
    }
}

/// A Prometheus server of the test's own: its config, rules and data in a
/// temporary directory, listening on a free port; killed when dropped.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

/// `prometheus` on PATH, or Debian's.
fn prometheus_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("prometheus"))
        .chain([PathBuf::from("/usr/bin/prometheus")]);
    for candidate in on_path {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the prometheus binary is not installed (not on PATH, no /usr/bin/prometheus): \
         this test runs a real Prometheus; install it with `deploy/install.sh prometheus` \
         (Debian's prometheus package)"
    );
}

/// The rules with every `for:` shortened to [`TEST_FOR`]; panics if an
/// alert has none (the count would no longer prove the rewrite).
fn rules_for_the_test(text: &str) -> String {
    let mut rewritten = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| match field(line, "for") {
            Some(_) => {
                rewritten += 1;
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}for: {TEST_FOR}")
            }
            None => line.to_owned(),
        })
        .collect();
    let alerts = Rules::parse(text).alerts.len();
    assert_eq!(
        rewritten, alerts,
        "{RULES}: every alert should have a `for:` (the test shortens them)"
    );
    lines.join("\n") + "\n"
}

impl Prometheus {
    /// Starts one that scrapes `targets` (job name, address) every second and
    /// evaluates the rules every second.
    async fn start(targets: &[(&str, std::net::SocketAddr)]) -> Self {
        let binary = prometheus_binary();
        let dir = std::env::temp_dir().join(format!(
            "sluice-prometheus-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("a temporary directory");
        std::fs::write(dir.join("rules.yml"), rules_for_the_test(&rules_text()))
            .expect("write the rules");
        let scrape_configs: String = targets
            .iter()
            .map(|(job, addr)| {
                format!("  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n")
            })
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\nscrape_configs:\n{scrape_configs}",
            dir.join("rules.yml").display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write the config");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("a log file");
        let child = Command::new(&binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {}: {error}; install it with `deploy/install.sh prometheus`",
                    binary.display()
                )
            });
        let mut prometheus = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        prometheus.wait_ready().await;
        prometheus
    }

    async fn wait_ready(&mut self) {
        let give_up = Instant::now() + Duration::from_secs(60);
        let ready = format!("{}/-/ready", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}) at startup:\n{}", self.log());
            }
            if reqwest::get(&ready)
                .await
                .is_ok_and(|response| response.status().is_success())
            {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "prometheus not ready after 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `/api/v1/alerts`: the pending and firing alerts.
    async fn alerts(&self) -> Vec<Value> {
        let body: Value = reqwest::get(format!("{}/api/v1/alerts", self.url))
            .await
            .expect("prometheus answers")
            .json()
            .await
            .expect("JSON alerts");
        assert_eq!(body["status"], "success", "{body}");
        body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The firing alerts named `name` whose labels include `labels`.
    async fn firing(&self, name: &str, labels: &[(&str, &str)]) -> Vec<Value> {
        self.alerts()
            .await
            .into_iter()
            .filter(|alert| {
                alert["state"] == "firing"
                    && alert["labels"]["alertname"] == name
                    && labels
                        .iter()
                        .all(|(key, value)| alert["labels"][key] == *value)
            })
            .collect()
    }

    /// Waits until alert `name` with `labels` fires; returns it.
    async fn wait_firing(&self, name: &str, labels: &[(&str, &str)]) -> Value {
        let what = format!("alert {name} {labels:?} firing");
        let fired = tokio::time::timeout(Duration::from_secs(90), async {
            loop {
                if let Some(alert) = self.firing(name, labels).await.into_iter().next() {
                    return alert;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        match fired {
            Ok(alert) => alert,
            Err(_) => panic!(
                "timed out after 90 s waiting for {what}; alerts now: {:#?}\nprometheus log:\n{}",
                self.alerts().await,
                self.log()
            ),
        }
    }

    /// What Prometheus reads of `query` now: each series' labels and value.
    async fn query(&self, query: &str) -> Vec<Value> {
        let body: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .expect("prometheus answers")
            .json()
            .await
            .expect("JSON query result");
        assert_eq!(body["status"], "success", "{query}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn annotation<'a>(alert: &'a Value, key: &str) -> &'a str {
    alert["annotations"][key].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_fires_not_ready_while_clickhouse_is_silent_then_down_when_the_processor_stops()
{
    let mut env = TestEnv::new("prom_alerts");
    // The processor reaches ClickHouse through a proxy that passes nothing
    // yet: it starts, serves /metrics and waits, not ready.
    let proxy = StallingProxy::in_front_of(&env.clickhouse.url).await;
    proxy.stall();
    env.clickhouse.url = proxy.http_url();
    let processor = start_processor(&env).await;
    let instance = processor.addr.to_string();
    let prometheus = Prometheus::start(&[("sluice-processor", processor.addr)]).await;
    let target = [("job", "sluice-processor"), ("instance", instance.as_str())];

    let not_ready = prometheus
        .wait_firing("SluiceProcessorNotReady", &target)
        .await;
    assert_eq!(not_ready["labels"]["severity"], "critical", "{not_ready:#}");
    assert!(
        annotation(&not_ready, "summary").contains(&instance),
        "{not_ready:#}"
    );
    let check = [target[0], target[1], ("check", "clickhouse")];
    let failing = prometheus.wait_firing("SluiceNotReady", &check).await;
    assert!(
        annotation(&failing, "description").contains("'clickhouse'"),
        "{failing:#}"
    );
    let readiness = prometheus
        .query(&format!("sluice_ready{{instance=\"{instance}\"}}"))
        .await;
    assert!(
        readiness
            .iter()
            .any(|series| series["metric"]["check"] == "clickhouse" && series["value"][1] == "0"),
        "{readiness:#?}"
    );

    // ClickHouse answers: the processor gets ready and the alerts end.
    proxy.resume();
    processor.wait_ready().await;
    eventually(
        "the not-ready alerts resolved",
        Duration::from_secs(60),
        || {
            let prometheus = &prometheus;
            async move {
                let processor = prometheus.firing("SluiceProcessorNotReady", &target).await;
                let clickhouse = prometheus.firing("SluiceNotReady", &check).await;
                (processor.is_empty() && clickhouse.is_empty()).then_some(())
            }
        },
    )
    .await;
    assert!(
        prometheus
            .firing("SluiceServiceDown", &target)
            .await
            .is_empty(),
        "down while it answers"
    );

    // Stopped: Prometheus cannot scrape it, and says so.
    processor.stop().await.expect("a clean stop");
    let down = prometheus.wait_firing("SluiceServiceDown", &target).await;
    assert_eq!(down["labels"]["severity"], "critical", "{down:#}");
    assert!(
        annotation(&down, "summary").contains(&format!("sluice-processor at {instance} is down")),
        "{down:#}"
    );
}

#[test]
fn the_rules_reader_finds_names_outside_strings_and_durations() {
    let names = identifiers(
        r#"sum by (job) (rate(sluice_http_requests_total{status=~"5..", route="sluice_x"}[5m])) / job:sluice_a:rate5m > 0.05 and present_over_time(up[1d])"#,
    );
    let wanted = [
        "sum",
        "by",
        "job",
        "rate",
        "sluice_http_requests_total",
        "status",
        "route",
        "job:sluice_a:rate5m",
        "and",
        "present_over_time",
        "up",
    ];
    assert_eq!(names, wanted);
    let exported = exported_series(
        "# HELP a_total x\n# TYPE a counter\n# TYPE h histogram\n# TYPE g gauge\ng{x=\"1\"} 2\n# EOF\n",
    );
    let wanted = ["a_total", "g", "h_bucket", "h_count", "h_sum"];
    assert_eq!(exported.into_iter().collect::<Vec<_>>(), wanted);
    assert_eq!(
        rules_for_the_test("  - alert: A\n    for: 10m\n").trim_end(),
        "  - alert: A\n    for: 2s"
    );
}
