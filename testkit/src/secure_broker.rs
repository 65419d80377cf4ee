//! A broker that demands SASL/SCRAM-SHA-512, behind TLS, for one test.
//!
//! tansu 0.6.0 authenticates SCRAM users but cannot serve TLS (its `--cert`
//! and `--key` flags refuse each other, and its TLS acceptor is never used;
//! docs/failure-modes.md), so TLS comes from Debian's stunnel in front of it,
//! the way a TLS-terminating proxy fronts a broker: clients speak SASL_SSL to
//! stunnel, which relays the Kafka protocol to tansu, which advertises the
//! TLS port. The certificates are made at start by the `openssl` command from
//! a throwaway CA, for `localhost` and `127.0.0.1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_devstack::components::tansu_binary;

use sluice_runtime::kafka_security::{SaslMechanism, SecurityProtocol};
use sluice_runtime::settings::KafkaSecurity;

use crate::certificates::TestCertificates;
use crate::processes::{free_port, run, wait_for_port};

const START_PATIENCE: Duration = Duration::from_secs(30);

/// The SCRAM user every secure broker has.
pub const SCRAM_USER: &str = "sluice-test";

pub struct SecureBroker {
    dir: PathBuf,
    /// What clients connect to: the TLS relay.
    pub tls_port: u16,
    /// The CA that signed the relay's certificate (PEM).
    pub ca_file: PathBuf,
    /// The SCRAM user's password.
    pub password: String,
    tansu: Child,
    stunnel: Child,
}

impl SecureBroker {
    /// # Panics
    /// When tansu, stunnel or openssl is missing or does not start: the test
    /// needs them (`deploy/install.sh` installs them).
    pub fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("sluice-secure-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let (plain_port, tls_port) = (free_port(), free_port());
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let certificates = TestCertificates::make(&dir);

        // Users are made through the Kafka protocol, which needs a broker
        // without authentication; then the same data is served with it.
        let mut open = tansu(&dir, plain_port, plain_port, false);
        wait_for_port(plain_port, &mut open, "tansu", START_PATIENCE);
        run(
            Command::new(tansu_program()).args([
                "user",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{plain_port}"),
                "--mechanism",
                "scram512",
                SCRAM_USER,
                &password,
            ]),
            "tansu user create",
        );
        let _ = open.kill();
        let _ = open.wait();

        let mut tansu = tansu(&dir, plain_port, tls_port, true);
        wait_for_port(
            plain_port,
            &mut tansu,
            "tansu --authentication",
            START_PATIENCE,
        );
        let config = dir.join("stunnel.conf");
        std::fs::write(
            &config,
            format!(
                "foreground = yes\npid =\nsyslog = no\noutput = {log}\n\n[kafka]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{plain_port}\ncert = {cert}\nkey = {key}\n",
                log = dir.join("stunnel.log").display(),
                cert = certificates.certificate_file.display(),
                key = certificates.key_file.display(),
            ),
        )
        .expect("stunnel.conf");
        let mut stunnel = Command::new("stunnel4")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel4 (Debian's stunnel4; deploy/install.sh apt installs it)");
        wait_for_port(tls_port, &mut stunnel, "stunnel4", START_PATIENCE);
        Self {
            dir,
            tls_port,
            ca_file: certificates.ca_file,
            password,
            tansu,
            stunnel,
        }
    }

    /// [`Self::start`] off the async runtime (the set-up blocks), for
    /// async tests.
    pub async fn start_async() -> Self {
        tokio::task::spawn_blocking(Self::start)
            .await
            .expect("the secure broker's set-up")
    }

    /// The `SLUICE_*` variables a service binary needs to reach it:
    /// SASL_SSL, SCRAM-SHA-512, the test CA, and `password` through the
    /// environment.
    pub fn service_env(&self, password: &str) -> [(&'static str, String); 6] {
        [
            ("SLUICE_KAFKA_BROKERS", self.brokers()),
            ("SLUICE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl".to_owned()),
            ("SLUICE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".to_owned()),
            ("SLUICE_KAFKA_SASL_USERNAME", SCRAM_USER.to_owned()),
            ("SLUICE_KAFKA_SASL_PASSWORD", password.to_owned()),
            (
                "SLUICE_KAFKA_SSL_CA_FILE",
                self.ca_file.display().to_string(),
            ),
        ]
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }

    /// What a client needs to reach it: SASL_SSL with SCRAM-SHA-512, the
    /// password from a file, the test CA.
    pub fn client_security(&self) -> KafkaSecurity {
        KafkaSecurity {
            protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            sasl_username: Some(SCRAM_USER.into()),
            sasl_password_file: Some(self.password_file()),
            ssl_ca_file: Some(self.ca_file.clone()),
            ..KafkaSecurity::default()
        }
    }

    /// A file holding the password, as a mounted secret would.
    pub fn password_file(&self) -> PathBuf {
        let file = self.dir.join("password");
        std::fs::write(&file, format!("{}\n", self.password)).expect("password file");
        file
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        for child in [&mut self.stunnel, &mut self.tansu] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The binary the local stack runs.
fn tansu_program() -> PathBuf {
    tansu_binary().expect("tansu (deploy/install.sh tansu installs it)")
}

fn tansu(dir: &Path, port: u16, advertised: u16, authentication: bool) -> Child {
    let mut command = Command::new(tansu_program());
    command
        .current_dir(dir)
        .env_remove("SCHEMA_REGISTRY")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("NO_COLOR", "1")
        .args([
            "broker",
            "--cluster-id",
            "sluice-secure",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
            "--storage-engine",
            "sqlite://tansu.db",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join(if authentication {
                "tansu.log"
            } else {
                "tansu-setup.log"
            }))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
        );
    if authentication {
        command.arg("--authentication");
    }
    command
        .spawn()
        .expect("tansu (deploy/install.sh tansu installs it)")
}
