//! `up`, `down`, `restart`, `status` and `env` over the components, as
//! `deploy/stack.sh` (a wrapper of `sluice-dev stack`) and testkit run
//! them: idempotent (`up` finds a running component and checks it answers),
//! serialised by a lock in the state directory (parallel tests: the first
//! starts a component, the others find it up), refusing a port that another
//! program holds, cleaning stale pid files, and `down --wipe` deleting a
//! component's data.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::components::Component;
use crate::probe::port_open;
use crate::process::{PidFile, is_alive, launch, stop};
use crate::settings::{HOST, StackSettings};

/// How long `down` waits after SIGTERM before SIGKILL.
pub(crate) const STOP_PATIENCE: Duration = Duration::from_secs(10);

pub struct Stack {
    pub settings: StackSettings,
}

/// Progress lines, as `stack: …`.
fn say(line: impl AsRef<str>) {
    println!("stack: {}", line.as_ref());
}

impl Stack {
    pub fn new(settings: StackSettings) -> Self {
        Self { settings }
    }

    /// Starts what is not running; checks that every component answers.
    pub fn up(&self, components: &[Component]) -> anyhow::Result<()> {
        self.require(components)?;
        let _lock = self.lock()?;
        for component in components {
            self.up_one(*component)?;
        }
        Ok(())
    }

    /// Stops the components; `wipe` also deletes their data and logs.
    pub fn down(&self, components: &[Component], wipe: bool) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        for component in components {
            self.down_one(*component, wipe)?;
        }
        Ok(())
    }

    /// `down` then `up`, keeping the data.
    pub fn restart(&self, components: &[Component]) -> anyhow::Result<()> {
        self.require(components)?;
        let _lock = self.lock()?;
        for component in components {
            self.down_one(*component, false)?;
            self.up_one(*component)?;
        }
        Ok(())
    }

    /// One line per component; true when all are up and answering.
    pub fn status(&self, components: &[Component]) -> bool {
        let mut all_up = true;
        for component in components {
            let (up, line) = self.status_of(*component);
            println!("{}: {line}", component.name());
            all_up &= up;
        }
        println!("stack dir: {}", self.settings.dir.display());
        all_up
    }

    /// `export` lines for the services' settings.
    pub fn env(&self) -> String {
        format!(
            "export SLUICE_KAFKA_BROKERS={}\nexport SLUICE_CLICKHOUSE_URL={}\n\
             # the chdb test fixture, for tests only: http://{HOST}:{}\n",
            self.settings.kafka_brokers(),
            self.settings.clickhouse_url(),
            self.settings.chdb_port
        )
    }

    /// Fails early, naming every missing binary, before anything starts.
    fn require(&self, components: &[Component]) -> anyhow::Result<()> {
        let missing: Vec<String> = components
            .iter()
            .flat_map(|component| component.missing(&self.settings))
            .collect();
        if !missing.is_empty() {
            bail!(
                "missing: {}\nrun deploy/install.sh (tansu alone: deploy/install.sh tansu; \
                 packages alone: deploy/install.sh apt; chdb: deploy/install.sh chdb)",
                missing.join(", ")
            );
        }
        Ok(())
    }

    /// The stack's lock, held until the returned file is dropped.
    fn lock(&self) -> anyhow::Result<File> {
        // Long enough for another `up` to start every component from scratch.
        let patience = self.settings.ready_timeout * 2 + Duration::from_secs(60);
        lock_state_dir(&self.settings.dir, "stack", patience)
    }

    fn pid_file(&self, component: Component) -> PidFile {
        PidFile(component.pid_file(&self.settings))
    }

    fn up_one(&self, component: Component) -> anyhow::Result<()> {
        let name = component.name();
        let url = component.url(&self.settings);
        let pid_file = self.pid_file(component);
        if let Some(pid) = pid_file.running(&self.settings.dir) {
            if !component.answers(&self.settings) {
                say(format!(
                    "{name}: pid {pid} is running but not answering yet; waiting"
                ));
                self.wait_ready(component, pid)?;
            }
            let version = self.version_note(component)?;
            say(format!("{name}: already up (pid {pid}) at {url}{version}"));
            return Ok(());
        }
        if let Some(stale) = pid_file.clean_if_stale(&self.settings.dir) {
            say(format!("{name}: {stale}"));
        }
        for sub in ["run", "logs"] {
            std::fs::create_dir_all(self.settings.dir.join(sub))?;
        }
        for (port, variable) in component.ports(&self.settings) {
            self.check_port_free(component, port, variable)?;
        }
        say(format!("{name}: starting"));
        let log = component.log_file(&self.settings);
        let pid = launch(&component.launch(&self.settings)?, &log, &pid_file)?;
        self.wait_ready(component, pid)?;
        let version = self.version_note(component)?;
        say(format!(
            "{name}: up (pid {pid}) at {url}{version}; data in {}, log {}",
            component.data_dir(&self.settings).display(),
            log.display()
        ));
        Ok(())
    }

    fn version_note(&self, component: Component) -> anyhow::Result<String> {
        Ok(match (component, component.version(&self.settings)?) {
            (_, None) => String::new(),
            (Component::Chdb, Some(version)) => format!(", engine version {version}"),
            (_, Some(version)) => format!(", version {version}"),
        })
    }

    fn check_port_free(
        &self,
        component: Component,
        port: u16,
        variable: &str,
    ) -> anyhow::Result<()> {
        let name = component.name();
        let retry = format!(
            "deploy/stack.sh up {name}\n\
             (the Sluice services then need the matching address; see: deploy/stack.sh env)"
        );
        refuse_taken_port(name, port, (variable, port), &retry)
    }

    fn wait_ready(&self, component: Component, pid: u32) -> anyhow::Result<()> {
        let name = component.name();
        let deadline = Instant::now() + self.settings.ready_timeout;
        while !component.answers(&self.settings) {
            if !is_alive(pid) {
                self.pid_file(component).remove();
                bail!(
                    "{name}: the server (pid {pid}) exited during startup\n{}",
                    self.tail_logs(component)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{name}: pid {pid} is running but not answering at {} after {} s\n\
                     (if you changed its port since it started: deploy/stack.sh down {name}; \
                     deploy/stack.sh up {name})\n{}",
                    component.url(&self.settings),
                    self.settings.ready_timeout.as_secs(),
                    self.tail_logs(component)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn tail_logs(&self, component: Component) -> String {
        tail_files(&component.logs(&self.settings))
    }

    fn down_one(&self, component: Component, wipe: bool) -> anyhow::Result<()> {
        let name = component.name();
        let pid_file = self.pid_file(component);
        match pid_file.running(&self.settings.dir) {
            Some(pid) => {
                let killed = stop(pid, STOP_PATIENCE).context(name)?;
                if killed {
                    say(format!(
                        "{name}: pid {pid} did not stop within {} s of SIGTERM; sent SIGKILL",
                        STOP_PATIENCE.as_secs()
                    ));
                }
                pid_file.remove();
                say(format!("{name}: stopped (pid {pid})"));
            }
            None => {
                if let Some(stale) = pid_file.clean_if_stale(&self.settings.dir) {
                    say(format!("{name}: {stale}"));
                }
                say(format!("{name}: not running"));
            }
        }
        if wipe {
            let data = component.data_dir(&self.settings);
            remove(&data)?;
            remove(&component.log_file(&self.settings))?;
            say(format!("{name}: wiped {}", data.display()));
        }
        Ok(())
    }

    fn status_of(&self, component: Component) -> (bool, String) {
        let pid_file = self.pid_file(component);
        let url = component.url(&self.settings);
        match pid_file.running(&self.settings.dir) {
            Some(pid) if component.answers(&self.settings) => {
                (true, format!("up, pid {pid}, {url}"))
            }
            Some(pid) => (
                false,
                format!(
                    "running but NOT answering, pid {pid}, {url} (log: {})",
                    component.log_file(&self.settings).display()
                ),
            ),
            None if pid_file.0.exists() => (
                false,
                format!(
                    "down (stale pid file {}; cleaned up by the next up/down)",
                    pid_file.0.display()
                ),
            ),
            None => (false, "down".to_owned()),
        }
    }
}

/// Creates `dir` (ignoring itself in git) and takes its `<name>.lock`,
/// held until the returned file is dropped; waits up to `patience` for
/// another command holding it.
pub(crate) fn lock_state_dir(dir: &Path, name: &str, patience: Duration) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The state directory ignores itself: no repository .gitignore needed.
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        let _ = std::fs::write(ignore, "*\n");
    }
    let path = dir.join(format!("{name}.lock"));
    let file = File::options()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let deadline = Instant::now() + patience;
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                if !said {
                    println!(
                        "{name}: another {name} command is running; waiting for {}",
                        path.display()
                    );
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(TryLockError::WouldBlock) => {
                bail!(
                    "still locked after {} s: {}",
                    patience.as_secs(),
                    path.display()
                )
            }
            Err(TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
}

/// Fails when another program listens on `port`: a server would die with
/// an obscure bind error, or worse, the tests talk to the wrong server.
/// Names who holds it and `variable`, which moves it, as in `retry`.
pub(crate) fn refuse_taken_port(
    name: &str,
    port: u16,
    (variable, value): (&str, u16),
    retry: &str,
) -> anyhow::Result<()> {
    if !port_open(port) {
        return Ok(());
    }
    let who = Command::new("ss")
        .args(["-ltnpH", &format!("sport = :{port}")])
        .output()
        .ok()
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.find("users:(").map(|at| text[at..].trim().to_owned())
        })
        .map_or_else(String::new, |who| format!(": {who}"));
    let alternative = if value <= 55_535 {
        value + 10_000
    } else {
        value + 1
    };
    bail!(
        "{name}: port {port} on {HOST} is already in use by another process{who}\n\
         stop that process, or pick another port, e.g. {variable}={alternative} {retry}"
    )
}

/// The last lines of each non-empty file of `paths`.
pub(crate) fn tail_files(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path)
                .ok()
                .filter(|t| !t.is_empty())?;
            let lines: Vec<&str> = text.lines().collect();
            let last = lines[lines.len().saturating_sub(30)..].join("\n");
            Some(format!("--- last lines of {} ---\n{last}", path.display()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn remove(path: &Path) -> anyhow::Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot delete {}", path.display()))
        }
        _ => Ok(()),
    }
}
