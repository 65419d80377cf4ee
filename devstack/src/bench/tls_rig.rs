//! What `bench tls` runs during its rounds: a throwaway CA and server
//! certificate, the plaintext broker, the SASL_SSL broker (a SCRAM user
//! made before authentication is turned on) behind stunnel4, and a
//! private ClickHouse with HTTP and HTTPS (its config from
//! [`crate::clickhouse_config`], as every ClickHouse the project starts).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::processes::{Broker, Processes};
use super::tls_settings::{SCRAM_USER, TAG, TlsBench};
use super::{HttpEndpoint, log};
use crate::certificates::Certificates;
use crate::clickhouse_config::{Https, ServerConfig, User};
use crate::probe::port_open;
use crate::settings::HOST;

/// Certificates and the SCRAM password of one run.
pub(super) struct Secrets {
    pub(super) ca: PathBuf,
    pub(super) certificate: PathBuf,
    pub(super) key: PathBuf,
    pub(super) password_file: PathBuf,
}

/// What runs during the rounds.
pub(super) struct Rig {
    pub(super) processes: Processes,
    pub(super) plain_tansu: u32,
    pub(super) secure_tansu: u32,
    pub(super) stunnel: u32,
    pub(super) clickhouse_pid: Option<u32>,
    pub(super) clickhouse: Option<HttpEndpoint>,
    pub(super) secrets: Secrets,
}

impl TlsBench {
    pub(super) fn start_brokers(
        &self,
        secrets: Secrets,
        work: &Path,
        out: &Path,
    ) -> anyhow::Result<Rig> {
        let mut processes = Processes::default();
        log(
            TAG,
            format!("plaintext broker: tansu (sqlite) on {}", self.plain_port),
        );
        let broker = |port, advertised, dir: &str, extra| Broker {
            port,
            advertised,
            storage: "sqlite://tansu.db",
            workdir: work.join(dir),
            extra,
            port_option: "--plain-port",
        };
        std::fs::create_dir_all(work.join("plain-broker"))?;
        std::fs::create_dir_all(work.join("secure-broker"))?;
        let plain_tansu = processes.tansu_with(
            &broker(self.plain_port, self.plain_port, "plain-broker", &[]),
            &out.join("tansu-plain.log"),
        )?;
        log(
            TAG,
            format!(
                "SASL_SSL broker: SCRAM user, then tansu --authentication on {} behind stunnel on {}",
                self.secure_broker_port, self.tls_port
            ),
        );
        // Users are made through the Kafka protocol, which needs a broker
        // without authentication; then the same data is served with it.
        let secure = self.secure_broker_port;
        let setup = processes.tansu_with(
            &Broker {
                port_option: "--secure-broker-port",
                ..broker(secure, secure, "secure-broker", &[])
            },
            &out.join("tansu-secure-setup.log"),
        )?;
        let password = std::fs::read_to_string(&secrets.password_file)?;
        let user_log = std::fs::File::create(out.join("tansu-user.log"))?;
        let made = Command::new("tansu")
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://{HOST}:{secure}"),
                "--mechanism",
                "scram512",
                SCRAM_USER,
                password.trim(),
            ])
            .stdout(user_log.try_clone()?)
            .stderr(user_log)
            .status()?;
        if !made.success() {
            bail!(
                "tansu user create failed; see {}",
                out.join("tansu-user.log").display()
            );
        }
        processes.stop(setup);
        let secure_tansu = processes.tansu_with(
            &Broker {
                port_option: "--secure-broker-port",
                ..broker(
                    secure,
                    self.tls_port,
                    "secure-broker",
                    &["--authentication"],
                )
            },
            &out.join("tansu-secure.log"),
        )?;
        super::processes::ensure_free(self.tls_port, "--tls-port")?;
        let config = work.join("stunnel.conf");
        std::fs::write(
            &config,
            format!(
                "foreground = yes\npid =\nsyslog = no\noutput = {}\n\n[kafka]\naccept = {HOST}:{}\nconnect = {HOST}:{secure}\ncert = {}\nkey = {}\n",
                out.join("stunnel.log").display(),
                self.tls_port,
                secrets.certificate.display(),
                secrets.key.display()
            ),
        )?;
        let launch = crate::process::Launch {
            program: "stunnel4".into(),
            args: vec![config.display().to_string()],
            env_remove: Vec::new(),
            env: Vec::new(),
            workdir: work.to_path_buf(),
        };
        let stunnel = processes.spawn(&launch, &out.join("stunnel.stdout.log"), false)?;
        let tls_port = self.tls_port;
        processes.wait_until("stunnel4", stunnel, &out.join("stunnel.log"), || {
            port_open(tls_port)
        })?;
        // What a client negotiates with it (for the record).
        let session = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("{HOST}:{tls_port}"),
                "-CAfile",
            ])
            .arg(&secrets.ca)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        let negotiated: String = String::from_utf8_lossy(&session.stdout)
            .lines()
            .filter(|line| {
                ["New", "Protocol", "    Cipher", "Verify return code"]
                    .iter()
                    .any(|p| line.starts_with(p))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(out.join("tls-session.txt"), negotiated)?;
        Ok(Rig {
            processes,
            plain_tansu,
            secure_tansu,
            stunnel,
            clickhouse_pid: None,
            clickhouse: None,
            secrets,
        })
    }

    pub(super) fn start_clickhouse(
        &self,
        rig: &mut Rig,
        work: &Path,
        out: &Path,
    ) -> anyhow::Result<()> {
        let [http, https, tcp] = [0, 1, 2].map(|i| self.clickhouse_ports[i]);
        for port in [http, https, tcp] {
            super::processes::ensure_free(port, "--clickhouse-ports")?;
        }
        let config = ServerConfig {
            dir: work.join("clickhouse"),
            http_port: Some(http),
            https: Some(Https {
                port: https,
                certificate: rig.secrets.certificate.clone(),
                key: rig.secrets.key.clone(),
            }),
            tcp_port: tcp,
            cache_bytes: 64 << 20,
            users: vec![User::open_default()],
            replication: None,
        };
        log(
            TAG,
            format!("private ClickHouse: HTTP {http}, HTTPS {https}"),
        );
        let (pid, endpoint) = rig
            .processes
            .clickhouse(&config, &out.join("clickhouse.stderr.log"))?;
        let log_file = config.error_log();
        let ca = rig.secrets.ca.clone();
        rig.processes
            .wait_until("clickhouse-server (https)", pid, &log_file, || {
                Command::new("curl")
                    .args(["-sf", "-o", "/dev/null", "--cacert"])
                    .arg(&ca)
                    .arg(format!("https://localhost:{https}/ping"))
                    .status()
                    .is_ok_and(|s| s.success())
            })?;
        rig.clickhouse_pid = Some(pid);
        rig.clickhouse = Some(endpoint);
        Ok(())
    }
}

/// A throwaway CA, a server certificate for localhost and 127.0.0.1, and a
/// random SCRAM password in a file.
pub(super) fn certificates(work: &Path, out: &Path) -> anyhow::Result<Secrets> {
    let dir = work.join("tls");
    let made = Certificates::make(&dir, "Sluice bench CA").with_context(|| {
        format!(
            "certificates for the TLS benchmark (logs in {})",
            out.display()
        )
    })?;
    let random = Command::new("openssl")
        .args(["rand", "-hex", "12"])
        .output()
        .context("cannot run openssl rand")?;
    let password_file = dir.join("password");
    let password = String::from_utf8_lossy(&random.stdout);
    std::fs::write(&password_file, format!("pw-{}", password.trim()))?;
    Ok(Secrets {
        ca: made.ca_file,
        certificate: made.certificate_file,
        key: made.key_file,
        password_file,
    })
}
