//! Helpers for the tests' own server processes (tansu, stunnel,
//! clickhouse-server) and for service binaries whose output a test reads.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `command` to its end; panics with its output if it fails.
pub fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: cannot run: {error}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until `child` listens on `port`; panics if it exits first or
/// takes more than `patience`.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str, patience: Duration) {
    let give_up = Instant::now() + patience;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening on {port}");
        }
        assert!(
            Instant::now() < give_up,
            "{what} not listening on {port} after {patience:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A service binary and everything it prints, read as it comes (a full pipe
/// would stop it).
pub struct Printing {
    child: tokio::process::Child,
    output: tokio::task::JoinHandle<String>,
}

impl Printing {
    /// Starts `command` with its output captured.
    pub fn spawn(mut command: tokio::process::Command, what: &str) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{what}: cannot start: {error}"));
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let output = tokio::spawn(async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            out.extend(err);
            String::from_utf8_lossy(&out).into_owned()
        });
        Self { child, output }
    }

    /// Sends the signal named `name` (`TERM`, `INT`) with `kill`.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the process runs").to_string();
        run(
            std::process::Command::new("kill").args([format!("-{name}"), pid]),
            "kill",
        );
    }

    /// Its exit code (`None` for a death by signal), if it exits within
    /// `timeout`.
    pub async fn exit_code_within(&mut self, timeout: std::time::Duration) -> Option<Option<i32>> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .map(|status| status.expect("reaped").code())
    }

    /// Whether it exited by itself within `timeout`, with success.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<bool> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .map(|status| status.is_ok_and(|status| status.success()))
    }

    /// Everything it printed, once it has ended (killed if it has not), and
    /// whether it succeeded.
    pub async fn end(mut self) -> (bool, String) {
        let _ = self.child.start_kill();
        let status = self.child.wait().await.unwrap();
        (status.success(), self.output.await.unwrap())
    }
}

/// Panics naming the secret's position (never the secret) if `text`, which
/// `what` produced, holds any of `secrets`.
pub fn assert_no_secret(text: &str, secrets: &[&str], what: &str) {
    for (index, secret) in secrets.iter().enumerate() {
        assert!(!secret.is_empty(), "secret {index} is empty");
        assert!(
            !text.contains(secret),
            "{what} shows secret number {index} ({} characters)",
            secret.len()
        );
    }
}

/// What a service binary's `--help` prints with `env` set (the secrets a
/// test then looks for in it).
pub fn help_text(binary: &str, env: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(binary)
        .arg("--help")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|error| panic!("{binary} --help: {error}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until the service at `base` (`http://host:port`) answers
/// `/health/ready` with 200; panics after `patience`.
pub async fn wait_until_ready(base: &str, patience: std::time::Duration) {
    let client = reqwest::Client::new();
    let url = format!("{base}/health/ready");
    crate::eventually(&format!("{base} ready"), patience, || {
        let request = client.get(&url).send();
        async move { request.await.ok().filter(|r| r.status() == 200).map(|_| ()) }
    })
    .await;
}

/// The bodies `base` answers to GETs of `paths`, with `key` if given,
/// one after the other.
pub async fn served_text(base: &str, paths: &[&str], key: Option<&str>) -> String {
    let client = reqwest::Client::new();
    let mut text = String::new();
    for path in paths {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let answer = request.send().await.expect("the service answers");
        text.push_str(&answer.text().await.expect("a body"));
    }
    text
}

/// Runs a service binary that must stop at startup (a setting that cannot
/// work), and returns what it printed; panics if it keeps running for 90 s
/// or exits with success.
pub async fn startup_failure(command: tokio::process::Command, what: &str) -> String {
    let mut running = Printing::spawn(command, what);
    assert_eq!(
        running
            .exited_within(std::time::Duration::from_secs(90))
            .await,
        Some(false),
        "{what} stops at startup"
    );
    running.end().await.1
}
