//! A private ClickHouse 18.16 (Debian's `clickhouse-server`) that speaks
//! only HTTPS, with a certificate from a throwaway CA and two users with
//! passwords: a writer that may create tables and insert, and a reader whose
//! profile is `readonly = 1`, as docs/clickhouse-users.md tells users to set
//! them up. Both may use only the `sluice` database.
//!
//! Whatever engine the shared stack runs (chdb speaks plain HTTP only), this
//! is a real server of its own, started for one test and stopped when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        for sub in ["data", "tmp", "user_files", "format_schemas", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).expect("a temporary directory");
        }
        let certificates = TestCertificates::make(&dir);
        let (https_port, tcp_port) = (free_port(), free_port());
        let writer_password = format!("writer-{}", uuid::Uuid::new_v4().simple());
        let reader_password = format!("reader-{}", uuid::Uuid::new_v4().simple());
        std::fs::write(
            dir.join("config.xml"),
            config_xml(&dir, &certificates, https_port, tcp_port),
        )
        .expect("config.xml");
        std::fs::write(
            dir.join("users.xml"),
            users_xml(&writer_password, &reader_password),
        )
        .expect("users.xml");
        let mut server = Command::new(server_binary())
            .arg(format!(
                "--config-file={}",
                dir.join("config.xml").display()
            ))
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

fn server_binary() -> PathBuf {
    if let Some(given) = std::env::var_os("SLUICE_CLICKHOUSE_SERVER_BIN") {
        return given.into();
    }
    let debian = PathBuf::from("/usr/sbin/clickhouse-server");
    if debian.exists() {
        debian
    } else {
        PathBuf::from("clickhouse-server")
    }
}

/// HTTPS only (no plain `http_port`): ClickHouse 18.16 takes TLS settings
/// from `<openSSL><server>`; no client certificates, no DH parameters file
/// (ECDHE needs none, and a missing one stops the server).
fn config_xml(
    dir: &Path,
    certificates: &TestCertificates,
    https_port: u16,
    tcp_port: u16,
) -> String {
    let dir = dir.display();
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{dir}/logs/clickhouse-server.log</log>
        <errorlog>{dir}/logs/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <https_port>{https_port}</https_port>
    <tcp_port>{tcp_port}</tcp_port>
    <openSSL>
        <server>
            <certificateFile>{certificate}</certificateFile>
            <privateKeyFile>{key}</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
"#,
        certificate = certificates.certificate_file.display(),
        key = certificates.key_file.display(),
    )
}

/// The users of docs/clickhouse-users.md; `default` gets a password nobody
/// knows, so only the two Sluice users get in.
fn users_xml(writer_password: &str, reader_password: &str) -> String {
    let user = |name: &str, password: &str, profile: &str| {
        format!(
            "        <{name}>
            <password>{password}</password>
            <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
            <profile>{profile}</profile>
            <quota>default</quota>
            <allow_databases><database>{DATABASE}</database></allow_databases>
        </{name}>\n"
        )
    };
    let nobody_knows = uuid::Uuid::new_v4().simple().to_string();
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <profiles>
        <default><load_balancing>random</load_balancing></default>
        <readonly><readonly>1</readonly></readonly>
    </profiles>
    <users>
{default}{writer}{reader}    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"#,
        default = user("default", &nobody_knows, "default"),
        writer = user(WRITER, writer_password, "default"),
        reader = user(READER, reader_password, "readonly"),
    )
}
