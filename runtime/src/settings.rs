//! Typed settings, shared by the services, and the loader that layers them.
//!
//! Every setting is a `clap` argument with a long flag and a `SLUICE_*`
//! environment variable, so `--help` documents all of them. A TOML file named
//! by `--config` or `SLUICE_CONFIG` supplies values between the built-in
//! defaults and the environment: `[kafka] brokers = "..."` sets
//! `--kafka-brokers`. Unknown keys in the file are errors, not silently ignored.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Command, FromArgMatches, Parser, ValueEnum};

pub use crate::kafka_security::KafkaSecurity;
use crate::secret::Secret;

/// The broker and the topics.
#[derive(Debug, Clone, Args)]
pub struct KafkaSettings {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(
        long = "kafka-brokers",
        env = "SLUICE_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,

    /// Topic that carries accepted events (Avro values).
    #[arg(
        long = "kafka-events-topic",
        env = "SLUICE_KAFKA_EVENTS_TOPIC",
        default_value = "sluice.events"
    )]
    pub events_topic: String,

    /// Dead-letter topic for values the processor cannot read; headers say why.
    #[arg(
        long = "kafka-dlq-topic",
        env = "SLUICE_KAFKA_DLQ_TOPIC",
        default_value = "sluice.events.dlq"
    )]
    pub dlq_topic: String,

    /// Topic of live window updates (JSON, see `sluice_schemas::rollup::live`),
    /// which the query API pushes to WebSocket clients; empty disables them.
    #[arg(
        long = "kafka-live-topic",
        env = "SLUICE_KAFKA_LIVE_TOPIC",
        default_value = "sluice.live"
    )]
    pub live_topic: String,

    /// Topic that holds the API keys (hashed); every service reads it at
    /// startup and tails it. Created with one partition, compacted.
    #[arg(
        long = "kafka-keys-topic",
        env = "SLUICE_KAFKA_KEYS_TOPIC",
        default_value = "sluice.keys"
    )]
    pub keys_topic: String,

    /// Topic that holds users, their sessions and keys' last use; every
    /// service reads it at startup and tails it. One partition, compacted.
    #[arg(
        long = "kafka-access-topic",
        env = "SLUICE_KAFKA_ACCESS_TOPIC",
        default_value = "sluice.access"
    )]
    pub access_topic: String,

    /// Partitions given to topics that Sluice creates (existing topics are left alone).
    #[arg(
        long = "kafka-partitions",
        env = "SLUICE_KAFKA_PARTITIONS",
        default_value_t = 4
    )]
    pub partitions: i32,

    /// Replication factor of topics that Sluice creates.
    #[arg(
        long = "kafka-replication-factor",
        env = "SLUICE_KAFKA_REPLICATION_FACTOR",
        default_value_t = 1
    )]
    pub replication_factor: i32,

    /// Idempotent producers (`true` or `false`): the broker drops a producer's
    /// own retried copies and keeps its order. Turn off for a broker that
    /// mishandles it (tansu 0.6.0 with sqlite breaks when an idempotent
    /// producer reconnects after a broker restart: docs/failure-modes.md);
    /// acknowledged still means stored, and the processor counts a retried
    /// copy once by its event_id.
    #[arg(
        long = "kafka-idempotence",
        env = "SLUICE_KAFKA_IDEMPOTENCE",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub idempotence: bool,

    /// TLS and SASL towards the broker.
    #[command(flatten)]
    pub security: KafkaSecurity,

    /// Extra librdkafka properties, comma-separated key=value; they win over
    /// Sluice's own settings.
    #[arg(
        long = "kafka-properties",
        env = "SLUICE_KAFKA_PROPERTIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub properties: Vec<String>,
}

/// The ClickHouse server, and who Sluice is there.
#[derive(Debug, Clone, Args)]
pub struct ClickhouseSettings {
    /// ClickHouse HTTP endpoint: `http://HOST:8123`, or `https://HOST:8443`
    /// (ClickHouse Cloud), which verifies the server's certificate against
    /// the system's CA roots or --clickhouse-ca-file.
    #[arg(
        long = "clickhouse-url",
        env = "SLUICE_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    pub url: String,

    /// Database that holds Sluice's tables; the processor creates it when
    /// missing, the query API waits for it.
    #[arg(
        long = "clickhouse-database",
        env = "SLUICE_CLICKHOUSE_DATABASE",
        default_value = "sluice"
    )]
    pub database: String,

    /// ClickHouse user: for the processor one that may create Sluice's
    /// tables and insert, for the query API a read-only one
    /// (docs/clickhouse-users.md).
    #[arg(
        long = "clickhouse-user",
        env = "SLUICE_CLICKHOUSE_USER",
        default_value = "default"
    )]
    pub user: String,

    /// ClickHouse password. Prefer the environment or
    /// --clickhouse-password-file: a flag's value shows in `ps`.
    #[arg(
        long = "clickhouse-password",
        env = "SLUICE_CLICKHOUSE_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,

    /// File whose first line is the ClickHouse password (a mounted secret).
    #[arg(
        long = "clickhouse-password-file",
        env = "SLUICE_CLICKHOUSE_PASSWORD_FILE"
    )]
    pub password_file: Option<PathBuf>,

    /// PEM file of the CA(s) that sign the server's certificate, for an
    /// https URL; without it, the system's CA roots.
    #[arg(long = "clickhouse-ca-file", env = "SLUICE_CLICKHOUSE_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// A ClickHouse cluster (a `remote_servers` name) to run on: tables are
    /// created `ON CLUSTER`, replicated and sharded by Kafka partition, and
    /// read through Distributed tables (docs/scaling.md). Empty: one server.
    #[arg(
        long = "clickhouse-cluster",
        env = "SLUICE_CLICKHOUSE_CLUSTER",
        default_value = ""
    )]
    pub cluster: String,
}

/// What every HTTP API of Sluice shares: the bootstrap admin token and a
/// time limit.
#[derive(Debug, Clone, Args)]
pub struct ApiSettings {
    /// Bootstrap admin token (at least 16 characters): accepted as
    /// `Authorization: Bearer TOKEN` by the key admin endpoints, to create the
    /// first keys. Empty disables it; keys with the `admin` scope work either way.
    #[arg(
        long = "admin-token",
        env = "SLUICE_ADMIN_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub admin_token: String,

    /// Secret that signs users' session tokens (at least 32 bytes; every
    /// instance of every service needs the same one). Unset: no user sessions,
    /// keys only.
    #[arg(
        long = "session-secret",
        env = "SLUICE_SESSION_SECRET",
        hide_env_values = true
    )]
    pub session_secret: Option<Secret>,

    /// File whose first line is the session secret (instead of --session-secret).
    #[arg(long = "session-secret-file", env = "SLUICE_SESSION_SECRET_FILE")]
    pub session_secret_file: Option<PathBuf>,

    /// The session secret before a rotation: tokens it signed are still
    /// accepted (nothing new is signed with it). Drop it once they have
    /// expired (15 minutes; refresh tokens do not depend on it).
    #[arg(
        long = "session-secret-previous",
        env = "SLUICE_SESSION_SECRET_PREVIOUS",
        hide_env_values = true
    )]
    pub session_secret_previous: Option<Secret>,

    /// Time limit for one HTTP request, in milliseconds.
    #[arg(
        long = "request-timeout-ms",
        env = "SLUICE_REQUEST_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub request_timeout_ms: u64,
}

impl ApiSettings {
    /// The previous session secret, when one is given (empty counts as none).
    pub fn session_secret_previous(&self) -> Option<Secret> {
        self.session_secret_previous
            .clone()
            .filter(|secret| !secret.is_empty())
    }

    /// The session secret, from the value or its file.
    pub fn session_secret(&self) -> anyhow::Result<Option<Secret>> {
        crate::secret::optional_secret_from(
            self.session_secret.as_ref(),
            self.session_secret_file.as_deref(),
            "--session-secret",
        )
    }

    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.request_timeout_ms)
    }
}

/// Log output.
#[derive(Debug, Clone, Args)]
pub struct TelemetrySettings {
    /// Log line format.
    #[arg(
        long = "log-format",
        env = "SLUICE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info,sluice_ingest_gateway=debug`.
    #[arg(long = "log", env = "SLUICE_LOG", default_value = "info")]
    pub log_filter: String,

    /// OTLP/HTTP collector that spans are exported to, protobuf bodies POSTed
    /// to `ENDPOINT/v1/traces`, e.g. `http://127.0.0.1:4318`. Sluice's own
    /// spans at info and above are sent, named by service (the binary's
    /// name), and a W3C `traceparent` is carried from the HTTP request through
    /// Kafka to the processor's spans. Empty (the default): no export and no
    /// propagation.
    #[arg(
        long = "otlp-endpoint",
        env = "SLUICE_OTLP_ENDPOINT",
        default_value = ""
    )]
    pub otlp_endpoint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// How a service stops.
#[derive(Debug, Clone, Args)]
pub struct LifecycleSettings {
    /// After SIGINT or SIGTERM, how long the service may drain (finish
    /// requests, flush what it holds, commit) before it exits anyway, in
    /// milliseconds. A second signal exits at once.
    #[arg(
        long = "shutdown-timeout-ms",
        env = "SLUICE_SHUTDOWN_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub shutdown_timeout_ms: u64,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        defaults()
    }
}

impl LifecycleSettings {
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// How long HTTP requests in flight may finish after the signal before
    /// their connections are closed: half the drain, leaving the other half
    /// for what the service does after serving (the gateway's producer
    /// flush, the processor's last batch).
    pub fn http_drain(&self) -> std::time::Duration {
        self.shutdown_timeout() / 2
    }
}

/// The `--config` flag; the loader reads it before anything else.
#[derive(Debug, Clone, Args)]
pub struct ConfigFile {
    /// TOML file of settings (`[kafka] brokers = "..."` sets --kafka-brokers);
    /// the environment and flags override it.
    #[arg(long = "config", env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// What every service's process has besides its own settings: telemetry,
/// the shutdown deadline and the config file.
#[derive(Debug, Clone, Args)]
pub struct ProcessSettings {
    #[command(flatten, next_help_heading = "Telemetry")]
    pub telemetry: TelemetrySettings,

    #[command(flatten)]
    pub lifecycle: LifecycleSettings,

    #[command(flatten)]
    pub config_file: ConfigFile,
}

/// Parses the process's arguments into `T`, layering defaults < config file <
/// environment < flags.
pub fn load<T: Parser>() -> anyhow::Result<T> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let file = config_path(&args).or_else(|| std::env::var_os("SLUICE_CONFIG").map(PathBuf::from));
    let mut command = T::command();
    if let Some(path) = file {
        command = apply_config_file(command, &path)?;
    }
    let matches = command.get_matches_from(args);
    Ok(T::from_arg_matches(&matches)?)
}

/// `T`'s defaults as `--help` shows them, whatever the process's
/// environment holds: for code that builds settings as a struct literal
/// (tests), which must not depend on the shell it runs in.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command = without_environment(T::augment_args(Command::new("defaults")));
    let matches = command.get_matches_from(["defaults"]);
    T::from_arg_matches(&matches).expect("every setting has a default")
}

/// `command` with no `SLUICE_*` variable read.
pub fn without_environment(command: Command) -> Command {
    command.mut_args(|arg| arg.env(None::<&str>))
}

fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().map(|arg| arg.to_string_lossy());
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(|path| PathBuf::from(path.as_ref()));
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// Turns every key of the TOML file into the default value of its flag.
pub fn apply_config_file(mut command: Command, path: &Path) -> anyhow::Result<Command> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    let mut settings = Vec::new();
    flatten("", &table, &mut settings)?;
    for (key, value) in settings {
        let flag = key.replace(['.', '_'], "-");
        let Some(id) = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(flag.as_str()) && flag != "config")
            .map(|arg| arg.get_id().clone())
        else {
            bail!(
                "unknown setting `{key}` in {}; see --help for the settings",
                path.display()
            );
        };
        command = command.mut_arg(id, |arg| arg.default_value(value));
    }
    Ok(command)
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let text = match value {
            toml::Value::Table(inner) => {
                flatten(&key, inner, out)?;
                continue;
            }
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            toml::Value::Datetime(at) => at.to_string(),
        };
        out.push((key, text));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    #[derive(Debug, Parser)]
    struct Demo {
        #[command(flatten)]
        kafka: KafkaSettings,
        #[command(flatten)]
        file: ConfigFile,
    }

    fn write_config(text: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(text)
    }

    /// A file that removes itself, without pulling a crate in for it.
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn with(text: &str) -> Self {
                let path = std::env::temp_dir().join(format!(
                    "sluice-settings-{}-{:?}.toml",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::write(&path, text).unwrap();
                Self(path)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn file_values_sit_between_defaults_and_flags() {
        let file = write_config("[kafka]\nbrokers = \"b1:9092\"\npartitions = 8\n");
        // Whatever SLUICE_KAFKA_BROKERS the shell holds.
        let command = apply_config_file(without_environment(Demo::command()), &file.0).unwrap();
        let from_file =
            Demo::from_arg_matches(&command.clone().get_matches_from(["demo"])).unwrap();
        assert_eq!(from_file.kafka.brokers, "b1:9092");
        assert_eq!(from_file.kafka.partitions, 8);
        assert_eq!(from_file.kafka.events_topic, "sluice.events");

        let matches = command.get_matches_from(["demo", "--kafka-brokers", "flag:1"]);
        let from_flag = Demo::from_arg_matches(&matches).unwrap();
        assert_eq!(from_flag.kafka.brokers, "flag:1");
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let file = write_config("[kafka]\nbrokerz = \"x\"\n");
        let error = apply_config_file(Demo::command(), &file.0).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("unknown setting `kafka.brokerz`")
        );
    }

    #[test]
    fn finds_the_config_flag_in_both_spellings() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_path(&args(&["x", "--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_path(&args(&["x", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(config_path(&args(&["x"])), None);
    }
}
