//! A broker of one test's own, for tests that stop and restart it (the shared
//! one must stay up for the tests running beside them).

use std::path::PathBuf;

use sluice_devstack::{Component, Stack, StackSettings};

/// A tansu (sqlite engine) on a free port, started as the local stack starts
/// its broker (`sluice_devstack`), with its state in a temporary directory;
/// stopped and wiped on drop.
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
        broker.restart();
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log file (kept with the data).
    pub fn log_path(&self) -> PathBuf {
        Component::Kafka.log_file(&self.stack().settings)
    }

    /// Stops the broker process; its data stays.
    pub fn stop(&self) {
        self.expect("stop", self.stack().down(&[Component::Kafka], false));
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) {
        self.expect("start", self.stack().up(&[Component::Kafka]));
    }

    /// Loses everything, as a broker whose disk was replaced: stops it,
    /// deletes its data and starts it empty on the same port.
    pub fn wipe(&self) {
        self.expect("wipe", self.stack().down(&[Component::Kafka], true));
        self.restart();
    }

    fn stack(&self) -> Stack {
        Stack::new(StackSettings::private(&self.dir, self.port))
    }

    fn expect(&self, what: &str, done: anyhow::Result<()>) {
        if let Err(error) = done {
            panic!(
                "cannot {what} the private broker on port {}: {error:#}",
                self.port
            );
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.stack().down(&[Component::Kafka], true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
