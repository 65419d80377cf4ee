//! `sluice-dev local`: the whole pipeline on this machine, no Docker, for a
//! person trying Sluice (`deploy/local.sh`, a wrapper of this): installs
//! what is missing, builds the services in release (tansu's first build runs
//! beside it), starts the stack and the four services in the background,
//! waits until each is ready, creates a dev API key through the admin API
//! and prints what to try.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::components::Component;
use crate::probe::{http_get, port_open, post_admin_key, post_as_admin};
use crate::process::{Launch, PidFile, is_alive, launch, stop};
use crate::settings::{HOST, StackSettings};
use crate::stack::Stack;

/// How long a service may take to be ready.
const READY_PATIENCE: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Gateway,
    Processor,
    QueryApi,
    Destinations,
}

impl Service {
    pub const ALL: [Self; 4] = [
        Self::Gateway,
        Self::Processor,
        Self::QueryApi,
        Self::Destinations,
    ];

    pub fn binary(self) -> &'static str {
        match self {
            Self::Gateway => "sluice-ingest-gateway",
            Self::Processor => "sluice-stream-processor",
            Self::QueryApi => "sluice-query-api",
            Self::Destinations => "sluice-destinations",
        }
    }

    fn port_variable(self) -> &'static str {
        match self {
            Self::Gateway => "SLUICE_GATEWAY_PORT",
            Self::Processor => "SLUICE_PROCESSOR_PORT",
            Self::QueryApi => "SLUICE_QUERY_PORT",
            Self::Destinations => "SLUICE_DESTINATIONS_PORT",
        }
    }
}

/// The local pipeline's settings, from `SLUICE_LOCAL_*` and the ports'
/// variables over defaults.
#[derive(Debug, Clone)]
pub struct LocalPipeline {
    pub stack: StackSettings,
    pub api_key: String,
    pub project: String,
    pub admin_token: String,
    /// Signs users' sessions; every service gets the same.
    pub session_secret: String,
    /// The first user of the dashboard, a global admin.
    pub admin_email: String,
    pub admin_password: String,
    pub gateway_port: u16,
    pub processor_port: u16,
    pub query_port: u16,
    pub destinations_port: u16,
    /// Where the release binaries are built.
    pub bin_dir: PathBuf,
}

fn say(line: impl AsRef<str>) {
    println!("local: {}", line.as_ref());
}

fn variable(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn port(name: &str, default: u16) -> anyhow::Result<u16> {
    let text = variable(name, &default.to_string());
    text.trim()
        .parse()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| anyhow::anyhow!("{name} must be a port (1 to 65535), got '{text}'"))
}

impl LocalPipeline {
    pub fn from_env(stack: StackSettings) -> anyhow::Result<Self> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| stack.repo.join("target"), PathBuf::from);
        Ok(Self {
            api_key: variable("SLUICE_LOCAL_API_KEY", "sluice-dev-key"),
            project: variable("SLUICE_LOCAL_PROJECT", "demo"),
            admin_token: variable("SLUICE_LOCAL_ADMIN_TOKEN", "sluice-dev-admin-token"),
            session_secret: variable(
                "SLUICE_LOCAL_SESSION_SECRET",
                "sluice-dev-session-secret-not-for-production",
            ),
            admin_email: variable("SLUICE_LOCAL_ADMIN_EMAIL", "admin@sluice.local"),
            admin_password: variable("SLUICE_LOCAL_ADMIN_PASSWORD", "sluice-dev-password"),
            gateway_port: port("SLUICE_GATEWAY_PORT", 8080)?,
            processor_port: port("SLUICE_PROCESSOR_PORT", 8082)?,
            query_port: port("SLUICE_QUERY_PORT", 8081)?,
            destinations_port: port("SLUICE_DESTINATIONS_PORT", 8083)?,
            bin_dir: std::path::absolute(target)?.join("release"),
            stack,
        })
    }

    fn port(&self, service: Service) -> u16 {
        match service {
            Service::Gateway => self.gateway_port,
            Service::Processor => self.processor_port,
            Service::QueryApi => self.query_port,
            Service::Destinations => self.destinations_port,
        }
    }

    fn pid_file(&self, service: Service) -> PidFile {
        PidFile(self.stack.dir.join(format!("run/{}.pid", service.binary())))
    }

    fn log_file(&self, service: Service) -> PathBuf {
        self.stack
            .dir
            .join(format!("logs/{}.log", service.binary()))
    }

    fn install(&self, what: &str) -> Command {
        let mut command = Command::new(self.stack.repo.join("deploy/install.sh"));
        command.arg(what).current_dir(&self.stack.repo);
        command
    }

    pub fn up(&self) -> anyhow::Result<()> {
        for sub in ["run", "logs"] {
            std::fs::create_dir_all(self.stack.dir.join(sub))?;
        }
        if !self.install("apt").status()?.success() {
            bail!("deploy/install.sh apt failed");
        }
        // tansu's first build (about 20 minutes on 2 cores) runs beside the
        // services' build instead of before it.
        let tansu_log = self.stack.dir.join("logs/install-tansu.log");
        let tansu = self.background_install("tansu", &tansu_log)?;
        // Release builds: the pipeline a person tries runs as fast as the one
        // the benchmarks measure.
        say("building the services, release (the first build takes several minutes)");
        let built = Command::new("cargo")
            .args(["build", "--release", "--bins", "--quiet"])
            .current_dir(&self.stack.repo)
            .status()?
            .success();
        let installed = wait_for(tansu)?;
        if !built {
            bail!("the build failed; its errors are above");
        }
        let install_log = std::fs::read_to_string(&tansu_log).unwrap_or_default();
        if !installed {
            eprintln!("{install_log}");
            bail!(
                "installing tansu failed; its log is above ({})",
                tansu_log.display()
            );
        }
        print!("{install_log}");
        Stack::new(self.stack.clone()).up(&[Component::Clickhouse, Component::Kafka])?;
        for service in Service::ALL {
            self.start(service)?;
        }
        for service in Service::ALL {
            self.wait_ready(service)?;
        }
        self.create_dev_key()?;
        self.create_admin_user()?;
        println!("{}", self.welcome());
        Ok(())
    }

    fn background_install(&self, what: &str, log: &std::path::Path) -> anyhow::Result<Child> {
        let file = std::fs::File::create(log)?;
        self.install(what)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot run deploy/install.sh {what}"))
    }

    fn start(&self, service: Service) -> anyhow::Result<()> {
        let name = service.binary();
        if let Some(pid) = self.pid_file(service).running(&self.stack.dir) {
            say(format!("{name} already running (pid {pid})"));
            return Ok(());
        }
        let port = self.port(service);
        if port_open(port) {
            bail!(
                "port {port} for {name} is taken by another process; choose another with {}=PORT",
                service.port_variable()
            );
        }
        // Every setting has a SLUICE_* variable (`{name} --help`). tansu
        // 0.6.0 breaks on idempotent producers after a restart
        // (docs/failure-modes.md), so the local stack runs without.
        let mut env = vec![
            ("SLUICE_LISTEN", format!("{HOST}:{port}")),
            ("SLUICE_ADMIN_TOKEN", self.admin_token.clone()),
            ("SLUICE_SESSION_SECRET", self.session_secret.clone()),
            (
                "SLUICE_KAFKA_IDEMPOTENCE",
                variable("SLUICE_KAFKA_IDEMPOTENCE", "false"),
            ),
            (
                "SLUICE_KAFKA_BROKERS",
                variable("SLUICE_KAFKA_BROKERS", &self.stack.kafka_brokers()),
            ),
            (
                "SLUICE_CLICKHOUSE_URL",
                variable("SLUICE_CLICKHOUSE_URL", &self.stack.clickhouse_url()),
            ),
        ];
        // Webhooks of the local pipeline may point at a receiver on this machine.
        if service == Service::Destinations {
            env.push((
                "SLUICE_ALLOW_PRIVATE_TARGETS",
                variable("SLUICE_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8,::1/128"),
            ));
        }
        // The query API's /v1/admin/status shows the other two's readiness.
        if service == Service::QueryApi {
            env.push((
                "SLUICE_STATUS_PEERS",
                format!(
                    "gateway=http://{HOST}:{},processor=http://{HOST}:{}",
                    self.gateway_port, self.processor_port
                ),
            ));
            // The dashboard manages webhooks through the query API.
            env.push((
                "SLUICE_DESTINATIONS_URL",
                format!("http://{HOST}:{}", self.destinations_port),
            ));
        }
        let started = launch(
            &Launch {
                program: self.bin_dir.join(name),
                args: Vec::new(),
                env_remove: Vec::new(),
                env,
                workdir: self.stack.dir.clone(),
            },
            &self.log_file(service),
            &self.pid_file(service),
        )?;
        say(format!(
            "{name} started (pid {started}), log {}",
            self.log_file(service).display()
        ));
        Ok(())
    }

    fn wait_ready(&self, service: Service) -> anyhow::Result<()> {
        let (name, port) = (service.binary(), self.port(service));
        let deadline = Instant::now() + READY_PATIENCE;
        loop {
            let ready = http_get(port, "/health/ready", Duration::from_secs(2))
                .is_some_and(|(status, _)| status == 200);
            if ready {
                say(format!("{name} ready on http://{HOST}:{port}"));
                return Ok(());
            }
            let log = self.log_file(service);
            if self.pid_file(service).running(&self.stack.dir).is_none() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("{}", lines[lines.len().saturating_sub(20)..].join("\n"));
                bail!("{name} exited; its log is above");
            }
            if Instant::now() >= deadline {
                bail!("{name} not ready after 90 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The dev key, through the admin API as an operator would; an existing
    /// key is kept.
    fn create_dev_key(&self) -> anyhow::Result<()> {
        let body = format!(
            r#"{{"project_id":"{}","scopes":["ingest","read"],"key":"{}","label":"local dev key"}}"#,
            self.project, self.api_key
        );
        let answer = post_admin_key(self.gateway_port, &self.admin_token, &body)
            .ok_or_else(|| anyhow::anyhow!("cannot reach the gateway's admin API"))?;
        if answer.contains("\"key_id\"") {
            say(format!("dev key created for project {}", self.project));
        } else if answer.contains("already exists") {
            say("dev key already exists");
        } else {
            bail!("the gateway refused the dev key: {answer}");
        }
        Ok(())
    }

    /// The dashboard's first user, a global admin; an existing one is kept.
    fn create_admin_user(&self) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "email": self.admin_email,
            "password": self.admin_password,
            "global_admin": true,
            "roles": [{"project_id": self.project, "role": "admin"}],
        })
        .to_string();
        let answer = post_as_admin(self.query_port, "/v1/admin/users", &self.admin_token, &body)
            .ok_or_else(|| anyhow::anyhow!("cannot reach the query API's admin API"))?;
        if answer.contains("\"user_id\"") {
            say(format!("dashboard user {} created", self.admin_email));
        } else if answer.contains("exists") {
            say(format!(
                "dashboard user {} already exists",
                self.admin_email
            ));
        } else {
            bail!("the query API refused the dashboard user: {answer}");
        }
        Ok(())
    }

    fn welcome(&self) -> String {
        let (key, gateway, query) = (&self.api_key, self.gateway_port, self.query_port);
        format!(
            r#"
Sluice is running.
  ingest gateway    http://{HOST}:{gateway}   (POST /v1/events)
  query API         http://{HOST}:{query}   (GET /v1/events, GET /v1/status)
  stream processor  http://{HOST}:{processor}   (/health/ready, /metrics)
  destinations      http://{HOST}:{destinations}   (/v1/webhooks with the admin token; docs/destinations.md)
  API key           {key} (project {project}, scopes ingest and read)
  admin token       {token} (POST/GET /v1/admin/keys, GET /v1/admin/status on the query API)
  dashboard         http://{HOST}:{query}/   (sign in as {email}, password {password})

Send an event:
  curl -s -X POST http://{HOST}:{gateway}/v1/events \
    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \
    -d '{{"type":"page_view","user_id":"u1","properties":{{"path":"/"}}}}'

Read it back (visible within about a second: the processor batches for up to 250 ms):
  curl -s -H 'Authorization: Bearer {key}' 'http://{HOST}:{query}/v1/events?type=page_view'

Is the data late? curl -s -H 'Authorization: Bearer {key}' http://{HOST}:{query}/v1/status

Stop everything: deploy/local.sh down"#,
            processor = self.processor_port,
            destinations = self.destinations_port,
            project = self.project,
            token = self.admin_token,
            email = self.admin_email,
            password = self.admin_password,
        )
    }

    pub fn down(&self) -> anyhow::Result<()> {
        for service in Service::ALL {
            let pid_file = self.pid_file(service);
            if let Some(pid) = pid_file.running(&self.stack.dir) {
                stop(pid, Duration::from_secs(10))?;
                say(format!("{} stopped", service.binary()));
            }
            pid_file.remove();
        }
        Stack::new(self.stack.clone()).down(
            &[Component::Clickhouse, Component::Kafka, Component::Chdb],
            false,
        )
    }

    /// True when the services and the stack all run.
    pub fn status(&self) -> bool {
        let mut all = true;
        for service in Service::ALL {
            let name = service.binary();
            match self.pid_file(service).running(&self.stack.dir) {
                Some(pid) if is_alive(pid) => say(format!(
                    "{name} running (pid {pid}) on http://{HOST}:{}",
                    self.port(service)
                )),
                _ => {
                    say(format!("{name} stopped"));
                    all = false;
                }
            }
        }
        Stack::new(self.stack.clone()).status(&[Component::Clickhouse, Component::Kafka]) && all
    }
}

fn wait_for(mut child: Child) -> anyhow::Result<bool> {
    Ok(child.wait()?.success())
}
