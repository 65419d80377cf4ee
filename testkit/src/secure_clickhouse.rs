//! A private ClickHouse 18.16 (Debian's `clickhouse-server`) that speaks
//! only HTTPS, with a certificate from a throwaway CA and two users with
//! passwords: a writer that may create tables and insert, and a reader whose
//! profile is `readonly = 1`, as docs/clickhouse-users.md tells users to set
//! them up. Both may use only the `sluice` database.
//!
//! Whatever engine the shared stack runs (chdb speaks plain HTTP only), this
//! is a real server of its own, started for one test and stopped when
//! dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_devstack::clickhouse_config::{Https, ServerConfig, User, server_binary};
use sluice_runtime::secret::Secret;
use sluice_runtime::settings::ClickhouseSettings;

use crate::certificates::TestCertificates;
use crate::processes::{free_port, wait_for_port};

/// The user the processor writes with.
pub const WRITER: &str = "sluice_writer";
/// The user the query API reads with: `readonly = 1`.
pub const READER: &str = "sluice_reader";
/// The only database the two users may use.
pub const DATABASE: &str = "sluice";
const START_PATIENCE: Duration = Duration::from_secs(60);

pub struct SecureClickhouse {
    dir: PathBuf,
    pub https_port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca_file: PathBuf,
    pub writer_password: String,
    pub reader_password: String,
    server: Child,
}

impl SecureClickhouse {
    /// # Panics
    /// When clickhouse-server or openssl is missing or the server does not
    /// start: the test needs them (`deploy/install.sh` installs them).
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sluice-secure-clickhouse-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let certificates = TestCertificates::make(&dir);
        let (https_port, tcp_port) = (free_port(), free_port());
        let writer_password = format!("writer-{}", uuid::Uuid::new_v4().simple());
        let reader_password = format!("reader-{}", uuid::Uuid::new_v4().simple());
        let config = ServerConfig {
            dir: dir.clone(),
            http_port: None,
            https: Some(Https {
                port: https_port,
                certificate: certificates.certificate_file.clone(),
                key: certificates.key_file.clone(),
            }),
            tcp_port,
            cache_bytes: 64 << 20,
            users: users(&writer_password, &reader_password),
            replication: None,
        };
        let config_file = config.write().expect("the server's config");
        let binary =
            server_binary().expect("clickhouse-server (deploy/install.sh apt installs it)");
        let mut server = Command::new(binary)
            .arg(format!("--config-file={}", config_file.display()))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("logs/stderr.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("clickhouse-server (Debian's; deploy/install.sh apt installs it)");
        wait_for_port(
            https_port,
            &mut server,
            "clickhouse-server (https)",
            START_PATIENCE,
        );
        Self {
            dir,
            https_port,
            ca_file: certificates.ca_file,
            writer_password,
            reader_password,
            server,
        }
    }

    /// [`Self::start`] off the async runtime (the set-up blocks), for
    /// async tests.
    pub async fn start_async() -> Self {
        tokio::task::spawn_blocking(Self::start)
            .await
            .expect("the secure ClickHouse's set-up")
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.https_port)
    }

    /// The processor's settings: the writer, its password from a file (a
    /// mounted secret), the test CA.
    pub fn writer(&self) -> ClickhouseSettings {
        let file = self.dir.join("writer-password");
        std::fs::write(&file, format!("{}\n", self.writer_password)).expect("password file");
        ClickhouseSettings {
            url: self.url(),
            database: DATABASE.into(),
            user: WRITER.into(),
            password: None,
            password_file: Some(file),
            ca_file: Some(self.ca_file.clone()),
            cluster: String::new(),
        }
    }

    /// The query API's settings: the read-only reader, its password given
    /// as a value (the environment), the test CA.
    pub fn reader(&self) -> ClickhouseSettings {
        ClickhouseSettings {
            url: self.url(),
            database: DATABASE.into(),
            user: READER.into(),
            password: Some(Secret::new(self.reader_password.clone())),
            password_file: None,
            ca_file: Some(self.ca_file.clone()),
            cluster: String::new(),
        }
    }

    /// The server's log, for a failing test to show.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/clickhouse-server.log")).unwrap_or_default()
    }
}

impl Drop for SecureClickhouse {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The users of docs/clickhouse-users.md; `default` gets a password nobody
/// knows, so only the two Sluice users get in.
fn users(writer_password: &str, reader_password: &str) -> Vec<User> {
    let user = |name: &str, password: &str, profile| User {
        name: name.to_owned(),
        password: password.to_owned(),
        profile,
        database: Some(DATABASE.to_owned()),
    };
    vec![
        user(
            "default",
            &uuid::Uuid::new_v4().simple().to_string(),
            "default",
        ),
        user(WRITER, writer_password, "default"),
        user(READER, reader_password, "readonly"),
    ]
}
