//! `sluice-dev`: the project's own tool. `sluice-dev stack …` drives the
//! local stack (what `deploy/stack.sh` runs).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_devstack::bench::all::{AllBench, with_quick_defaults};
use sluice_devstack::bench::destinations::DestinationsBench;
use sluice_devstack::bench::e2e::E2eBench;
use sluice_devstack::bench::gateway::GatewayBench;
use sluice_devstack::bench::k6::K6Run;
use sluice_devstack::bench::sweep::{E2eSweep, GatewaySweep};
use sluice_devstack::bench::tls::TlsBench;
use sluice_devstack::browser_check::BrowserCheck;
use sluice_devstack::conformance::Conformance;
use sluice_devstack::local::LocalPipeline;
use sluice_devstack::sdk_check::SdkCheck;
use sluice_devstack::test_matrix::{Engine, TestRun};
use sluice_devstack::{
    Cluster, ClusterSettings, Component, Member, Stack, StackSettings, repo_root,
};

/// Sluice's development tool.
#[derive(Debug, Parser)]
#[command(name = "sluice-dev")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The local stack: the broker (tansu), ClickHouse and, for tests, the
    /// chdb fixture, as plain background processes bound to 127.0.0.1, with
    /// their state in SLUICE_STACK_DIR (default <repo>/.sluice). Ports:
    /// SLUICE_KAFKA_PORT [9092], SLUICE_CLICKHOUSE_HTTP_PORT [8123],
    /// SLUICE_CLICKHOUSE_TCP_PORT [9000], SLUICE_CHDB_HTTP_PORT [8124];
    /// SLUICE_STACK_TIMEOUT [30] seconds to get ready; SLUICE_TANSU_BIN and
    /// SLUICE_CLICKHOUSE_SERVER_BIN override the binaries;
    /// SLUICE_CHDB_VENV [~/.cache/sluice/chdb-venv] the fixture's Python.
    Stack {
        #[command(subcommand)]
        action: StackAction,
    },
    /// A replicated, sharded ClickHouse cluster on this machine: one
    /// ZooKeeper and three ClickHouse servers (cluster `sluice`: shard 1 on
    /// node1 and node2, shard 2 on node3) as plain background processes on
    /// 127.0.0.1, with their state in SLUICE_CLUSTER_DIR (default
    /// <repo>/.sluice/cluster). Ports: SLUICE_CLUSTER_ZOOKEEPER_PORT
    /// [12181]; node N listens on SLUICE_CLUSTER_HTTP_PORT [18131],
    /// SLUICE_CLUSTER_TCP_PORT [19131] and SLUICE_CLUSTER_INTERSERVER_PORT
    /// [19141] plus N - 1; SLUICE_CLUSTER_TIMEOUT [60] seconds to get ready.
    /// Needs deploy/install.sh zookeeper.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// The whole pipeline on this machine: `up` installs what is missing,
    /// builds the services (release), starts the stack and the three
    /// services, waits until each is ready and creates a dev API key
    /// (SLUICE_LOCAL_API_KEY [sluice-dev-key] of SLUICE_LOCAL_PROJECT [demo],
    /// scopes ingest and read; SLUICE_LOCAL_ADMIN_TOKEN
    /// [sluice-dev-admin-token] is the admin token); `down` stops it all,
    /// keeping the data; `status` shows what runs. Ports:
    /// SLUICE_GATEWAY_PORT [8080], SLUICE_QUERY_PORT [8081],
    /// SLUICE_PROCESSOR_PORT [8082], and the stack's.
    Local {
        #[command(subcommand)]
        action: LocalAction,
    },
    /// Every test of the workspace against the real stack, once per
    /// ClickHouse engine (clickhouse-18: Debian's 18.16; chdb: the current
    /// engine behind the test fixture), after the Kubernetes manifests, the
    /// Prometheus rules and the OpenAPI conformance check. Installs what is
    /// missing and starts the stack first. With SLUICE_TEST_CLICKHOUSE_URL
    /// set, one run against it (SLUICE_TEST_CLICKHOUSE_ENGINE names it).
    Test {
        /// clickhouse-18, chdb or both [SLUICE_TEST_ENGINES, else both].
        #[arg(long, env = "SLUICE_TEST_ENGINES", default_value = "both")]
        engine: String,
        /// Leave the OpenAPI conformance check and the browser step out
        /// (the summary says so).
        #[arg(long)]
        no_conformance: bool,
        /// Passed to the test runner, e.g. -E 'test(end_to_end)'.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        runner_args: Vec<String>,
    },
    /// The benchmarks of BENCHMARKS.md on private brokers, services and
    /// ClickHouse (never the stack's ports): `quick` checks every stage in
    /// a few minutes; results and logs under .sluice/bench/.
    Bench {
        #[command(subcommand)]
        stage: BenchStage,
    },
    /// The gateway and the query API against their OpenAPI documents
    /// (schemathesis), then real Segment, RudderStack and Jitsu SDKs
    /// against the gateway. Without URLs it starts its own services on free
    /// ports, on SLUICE_KAFKA_BROKERS and SLUICE_CLICKHOUSE_URL or the stack
    /// (SLUICE_SCHEMATHESIS_VENV [~/.cache/sluice/schemathesis-venv]).
    /// Exits 0 only when every run passed.
    Conformance(Conformance),
    /// Real third-party SDKs against a running gateway, their events read
    /// back through the query API (default: the local pipeline's).
    SdkCheck(SdkCheck),
    /// /docs of the gateway and the query API, and the dashboard, in
    /// headless chromium (playwright-core): "Try it out" with a key, keys,
    /// users, webhooks to a local receiver, no console errors; screenshots
    /// to docs/screenshots. Starts its own services like `conformance`,
    /// plus destinations (needs `deploy/install.sh browser`).
    Browser(BrowserCheck),
}

#[derive(Debug, Subcommand)]
enum BenchStage {
    /// Every stage at a small scale, in a few minutes: `bench all` with
    /// --runs 1 --gateway-duration 3 --proc-events 200000 --e2e-rate 2000
    /// --e2e-duration 4 --seed-events 200000 --query-reps 5 unless given
    /// (tables under .sluice/bench/ unless --results-dir).
    #[command(args_override_self = true)]
    Quick(Box<AllBench>),
    /// Every stage (ingest, processor, e2e, query): one table,
    /// load-tests/results/bench-all.{md,csv}, median, min and max of --runs.
    All(Box<AllBench>),
    /// The gateway's ingest against a bare rdkafka producer, same broker, same run.
    Gateway(Box<GatewayBench>),
    /// End-to-end freshness (gateway ack to visible in the query API) and the exact count.
    E2e(Box<E2eBench>),
    /// Webhook deliveries to a local receiver: deliveries/s, latency from
    /// the send to the receipt, the service's CPU per delivery.
    Destinations(Box<DestinationsBench>),
    /// `bench gateway` over batch sizes, partitions and event sizes, with plots.
    SweepGateway(GatewaySweep),
    /// `bench e2e` at stepped rates until one fails, with a plot.
    SweepE2e(E2eSweep),
    /// One k6 suite (smoke, steady, spike, soak, query-mix) with the real k6.
    K6(K6Run),
    /// What TLS and SASL to the broker (and HTTPS to ClickHouse) cost:
    /// plaintext against SASL_SSL, alternating, as ratios.
    Tls(Box<TlsBench>),
}

#[derive(Debug, Subcommand)]
enum LocalAction {
    /// Install, build and start everything (running services are kept).
    Up,
    /// Stop the three services and the stack (data is kept).
    Down,
    /// Show what runs; exits 0 only when everything does.
    Status,
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Start what is not running and check the cluster formed (idempotent).
    Up,
    /// Stop every member (SIGTERM, SIGKILL after 10 s), keeping data.
    Down {
        /// Also delete the members' data and logs.
        #[arg(long)]
        wipe: bool,
    },
    /// State, pid and address of each member; exits 0 only when all are up.
    Status,
    /// Start one member: zookeeper, node1, node2 or node3.
    Start { member: String },
    /// Stop one member (SIGTERM, SIGKILL after 10 s).
    Stop { member: String },
    /// Kill one member with SIGKILL, as a crash would.
    Kill { member: String },
}

#[derive(Debug, Subcommand)]
enum StackAction {
    /// Start (idempotent; safe to run concurrently). Default: kafka and clickhouse.
    Up { components: Vec<String> },
    /// Stop (SIGTERM, SIGKILL after 10 s), keeping data. Default: all three.
    Down {
        components: Vec<String>,
        /// Also delete the components' data and logs.
        #[arg(long)]
        wipe: bool,
    },
    /// Down then up, keeping data.
    Restart { components: Vec<String> },
    /// State, pid and URL; exits 0 only when all are up.
    Status { components: Vec<String> },
    /// Export lines for the Sluice services' environment variables.
    Env,
}

/// COMPONENT words: kafka (tansu, broker), clickhouse (ch), chdb, all.
fn components(words: &[String], default: &[Component]) -> anyhow::Result<Vec<Component>> {
    if words.is_empty() {
        return Ok(default.to_vec());
    }
    let mut chosen = Vec::new();
    for word in words {
        let Some(parsed) = Component::parse(word) else {
            anyhow::bail!("unknown component: {word} (kafka, clickhouse, chdb or all)");
        };
        chosen.extend(parsed);
    }
    Ok(chosen)
}

fn member(word: &str) -> anyhow::Result<Member> {
    Member::parse(word)
        .ok_or_else(|| anyhow::anyhow!("unknown member: {word} (zookeeper, node1, node2, node3)"))
}

fn run_cluster(action: ClusterAction) -> anyhow::Result<bool> {
    let cluster = Cluster::new(ClusterSettings::from_env(&repo_root())?);
    match action {
        ClusterAction::Up => cluster.up()?,
        ClusterAction::Down { wipe } => cluster.down(wipe)?,
        ClusterAction::Status => return Ok(cluster.status()),
        ClusterAction::Start { member: word } => cluster.start(member(&word)?)?,
        ClusterAction::Stop { member: word } => cluster.stop(member(&word)?)?,
        ClusterAction::Kill { member: word } => cluster.kill(member(&word)?)?,
    }
    Ok(true)
}

fn run_bench(stage: BenchStage) -> anyhow::Result<bool> {
    let repo = repo_root();
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let command = format!("sluice-dev {command}");
    match stage {
        BenchStage::Quick(bench) => bench.run(&repo, true, &command),
        BenchStage::All(bench) => bench.run(&repo, false, &command),
        BenchStage::Gateway(bench) => bench.run(&repo).map(|_| true),
        BenchStage::E2e(bench) => bench.run(&repo),
        BenchStage::Destinations(bench) => bench.run(&repo, &command).map(|()| true),
        BenchStage::SweepGateway(sweep) => sweep.run(&repo).map(|()| true),
        BenchStage::SweepE2e(sweep) => sweep.run(&repo).map(|()| true),
        BenchStage::K6(k6) => k6.run(&repo),
        BenchStage::Tls(bench) => bench.run(&repo, &command).map(|()| true),
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let settings = StackSettings::from_env(&repo_root())?;
    let action = match cli.command {
        Command::Bench { stage } => return run_bench(stage),
        Command::Conformance(conformance) => return conformance.run(&repo_root()),
        Command::SdkCheck(check) => return check.run(&repo_root()),
        Command::Browser(check) => return check.run(&repo_root()),
        Command::Stack { action } => action,
        Command::Cluster { action } => return run_cluster(action),
        Command::Local { action } => {
            let local = LocalPipeline::from_env(settings)?;
            match action {
                LocalAction::Up => local.up()?,
                LocalAction::Down => local.down()?,
                LocalAction::Status => return Ok(local.status()),
            }
            return Ok(true);
        }
        Command::Test {
            engine,
            no_conformance,
            runner_args,
        } => {
            let run = TestRun {
                engines: Engine::parse_choice(&engine)?,
                conformance: !no_conformance,
                runner_args,
            };
            return run.run(&settings);
        }
    };
    let stack = Stack::new(settings);
    let usual = [Component::Clickhouse, Component::Kafka];
    // The fixture runs only for tests, but `down` leaves nothing behind.
    let every = [Component::Clickhouse, Component::Kafka, Component::Chdb];
    match action {
        StackAction::Up { components: words } => stack.up(&components(&words, &usual)?)?,
        StackAction::Down {
            components: words,
            wipe,
        } => stack.down(&components(&words, &every)?, wipe)?,
        StackAction::Restart { components: words } => {
            stack.restart(&components(&words, &usual)?)?;
        }
        StackAction::Status { components: words } => {
            return Ok(stack.status(&components(&words, &usual)?));
        }
        StackAction::Env => print!("{}", stack.env()),
    }
    Ok(true)
}

fn main() -> ExitCode {
    let args = with_quick_defaults(std::env::args().collect());
    match run(Cli::parse_from(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("sluice-dev: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
