//! A broker of one test's own, for tests that stop and restart it (the shared
//! one must stay up for the tests running beside them).

use std::path::PathBuf;
use std::process::Command;

/// A tansu (sqlite engine) started by `deploy/stack.sh` on a free port, with
/// its state in a temporary directory; stopped and wiped on drop.
pub struct PrivateBroker {
    pub port: u16,
    dir: PathBuf,
}

impl PrivateBroker {
    /// # Panics
    /// When the broker cannot be started: the test needs it.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("sluice-broker-{}", uuid::Uuid::new_v4().simple()));
        let broker = Self { port, dir };
        broker.stack(&["up", "kafka"]);
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log file (`deploy/stack.sh` keeps it with the data).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("logs/tansu.log")
    }

    /// Stops the broker process; its data stays.
    pub fn stop(&self) {
        self.stack(&["down", "kafka"]);
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) {
        self.stack(&["up", "kafka"]);
    }

    /// Loses everything, as a broker whose disk was replaced: stops it,
    /// deletes its data and starts it empty on the same port.
    pub fn wipe(&self) {
        self.stack(&["down", "kafka", "--wipe"]);
        self.stack(&["up", "kafka"]);
    }

    fn stack(&self, args: &[&str]) {
        let script = crate::stack::repo_root().join("deploy/stack.sh");
        let output = Command::new("bash")
            .arg(&script)
            .args(args)
            .env("SLUICE_STACK_DIR", &self.dir)
            .env("SLUICE_KAFKA_PORT", self.port.to_string())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
        assert!(
            output.status.success(),
            "deploy/stack.sh {args:?} for a private broker on port {} failed:\n{}\n{}",
            self.port,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let script = crate::stack::repo_root().join("deploy/stack.sh");
        let _ = Command::new("bash")
            .arg(script)
            .args(["down", "kafka", "--wipe"])
            .env("SLUICE_STACK_DIR", &self.dir)
            .env("SLUICE_KAFKA_PORT", self.port.to_string())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
