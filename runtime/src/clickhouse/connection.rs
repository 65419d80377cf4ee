//! How Sluice reaches ClickHouse: the URL's scheme decides the transport
//! (plain HTTP, or HTTPS verified against the system's roots or a CA file),
//! and the user and password come from the settings. Everything is checked
//! and read when the connection opens, so that a wrong setting stops the
//! service at startup with the setting named.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sluice_schemas::clickhouse_features::ServerFeatures;
use sluice_schemas::ddl::{ClusterName, Database};

use super::shown_url;
use crate::secret::optional_secret_from;
use crate::settings::ClickhouseSettings;

/// What the password settings are called in errors.
pub(crate) const PASSWORD_SETTINGS: &str =
    "--clickhouse-password (or SLUICE_CLICKHOUSE_PASSWORD, or --clickhouse-password-file)";
/// The crate's own defaults for its plain-HTTP client, kept for HTTPS:
/// ClickHouse closes idle connections after 3 s.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// An opened connection: cheap to clone, all clones share one pool.
#[derive(Clone)]
pub struct Connection {
    /// Not bound to a database (DDL may create it); validation off until the
    /// server's version says it can be on.
    server: clickhouse::Client,
    database: Database,
    /// `--clickhouse-cluster`, when the tables live on a cluster.
    cluster: Option<ClusterName>,
    shown_url: String,
    user: String,
    https: bool,
}

impl Connection {
    /// Checks the settings and reads the files they name.
    pub fn open(settings: &ClickhouseSettings) -> anyhow::Result<Self> {
        let database = Database::new(&settings.database)?;
        let cluster = match settings.cluster.trim() {
            "" => None,
            name => Some(
                ClusterName::new(name)
                    .map_err(|error| anyhow::anyhow!("--clickhouse-cluster: {error}"))?,
            ),
        };
        let shown = shown_url(&settings.url);
        let scheme = scheme_of(&settings.url)?;
        let password = optional_secret_from(
            settings.password.as_ref(),
            settings.password_file.as_deref(),
            PASSWORD_SETTINGS,
        )?
        .unwrap_or_default();
        let server = match scheme {
            Scheme::Http => {
                if let Some(ca_file) = &settings.ca_file {
                    bail!(
                        "--clickhouse-ca-file ({}) is set but --clickhouse-url ({shown}) is http://; \
                         use https:// or drop the CA file",
                        ca_file.display()
                    );
                }
                clickhouse::Client::default()
            }
            Scheme::Https => {
                let tls = tls_config(settings.ca_file.as_deref())?;
                https_client(tls)
            }
        };
        let server = server
            .with_url(&settings.url)
            .with_user(&settings.user)
            .with_password(password.expose())
            .with_validation(false);
        Ok(Self {
            server,
            database,
            cluster,
            shown_url: shown,
            user: settings.user.clone(),
            https: scheme == Scheme::Https,
        })
    }

    /// A client for Sluice's database. Row structs are validated against the
    /// column types where the server supports the crate's validation: a type
    /// mismatch is then an error instead of silently garbled rows.
    ///
    /// On a cluster, inserts go to the Distributed tables synchronously
    /// (`insert_distributed_sync`): an insert returns once every shard it
    /// touches has its rows, as on one server, and fails otherwise; the
    /// sharding key (`kafka_partition`) puts every copy of a row on one
    /// shard (docs/scaling.md).
    pub fn client(&self, features: ServerFeatures) -> (clickhouse::Client, Database) {
        let mut client = self
            .server
            .clone()
            .with_validation(features.row_validation)
            .with_database(self.database.name());
        if self.cluster.is_some() {
            client = client.with_setting("insert_distributed_sync", "1");
        }
        (client, self.database.clone())
    }

    /// The cluster the tables live on, if any.
    pub fn cluster(&self) -> Option<&ClusterName> {
        self.cluster.as_ref()
    }

    /// A client not bound to a database.
    pub(crate) fn server(&self) -> &clickhouse::Client {
        &self.server
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The URL as logs and errors show it: without credentials.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn is_https(&self) -> bool {
        self.https
    }
}

fn scheme_of(url: &str) -> anyhow::Result<Scheme> {
    let shown = shown_url(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!(
            "--clickhouse-url ({shown}) is not a URL: expected http://HOST:PORT or https://HOST:PORT"
        );
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => bail!(
            "--clickhouse-url ({shown}) has the scheme {other:?}: ClickHouse's HTTP interface \
             takes http:// or https:// (the native protocol, port 9000/9440, is not used)"
        ),
    };
    if rest.split(['/', '?']).next().unwrap_or_default().is_empty() {
        bail!("--clickhouse-url ({shown}) names no host");
    }
    Ok(scheme)
}

/// TLS that trusts the CAs of `ca_file`, else the system's roots.
fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .with_context(|| {
                    format!(
                        "--clickhouse-ca-file: cannot read PEM certificates from {}",
                        path.display()
                    )
                })?;
            for certificate in certificates {
                roots.add(certificate).with_context(|| {
                    format!(
                        "--clickhouse-ca-file: {} holds a certificate that is not a CA's",
                        path.display()
                    )
                })?;
            }
            if roots.is_empty() {
                bail!(
                    "--clickhouse-ca-file: {} holds no PEM certificate",
                    path.display()
                );
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!(
                    "an https --clickhouse-url needs CA roots and the system has none \
                     (install ca-certificates) or give --clickhouse-ca-file{}",
                    found
                        .errors
                        .first()
                        .map(|error| format!(" ({error})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    // ring rather than aws-lc-rs (a long C build on every fresh machine).
    // rustls 0.23.48 deprecates it for lacking post-quantum key exchange;
    // aws-lc-rs would add that, at the cost of that build.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS towards ClickHouse")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The crate's client over HTTPS.
fn https_client(tls: rustls::ClientConfig) -> clickhouse::Client {
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    // The TLS layer wraps it: it must accept https:// URIs.
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    clickhouse::Client::with_http_client(
        HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> ClickhouseSettings {
        ClickhouseSettings {
            url: url.into(),
            database: "sluice".into(),
            user: "default".into(),
            password: None,
            password_file: None,
            ca_file: None,
            cluster: String::new(),
        }
    }

    fn error(settings: &ClickhouseSettings) -> String {
        match Connection::open(settings) {
            Ok(_) => panic!("{settings:?} opened"),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn each_bad_url_is_named_with_what_is_expected() {
        assert!(error(&settings("tcp://h:9000")).contains("scheme \"tcp\""));
        assert!(error(&settings("localhost:8123")).contains("is not a URL"));
        assert!(error(&settings("http://")).contains("names no host"));
        let message = error(&settings("clickhouse://reader:s3cret@h:9440"));
        assert!(message.contains("--clickhouse-url"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[tokio::test]
    async fn http_and_https_urls_open() {
        assert!(Connection::open(&settings("http://127.0.0.1:8123")).is_ok());
        assert!(Connection::open(&settings("HTTPS://ch.example.com:8443")).is_ok());
    }

    #[test]
    fn ca_files_are_checked_when_the_connection_opens() {
        let dir = std::env::temp_dir().join(format!("sluice-ca-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let with_ca = |url: &str, file: &str| ClickhouseSettings {
            ca_file: Some(dir.join(file)),
            ..settings(url)
        };
        assert!(
            error(&with_ca("https://h:8443", "missing.pem"))
                .contains("--clickhouse-ca-file: cannot read")
        );
        std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
        assert!(error(&with_ca("https://h:8443", "empty.pem")).contains("holds no PEM"));
        assert!(error(&with_ca("http://h:8123", "empty.pem")).contains("is http://"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_password_comes_from_the_value_or_the_file_never_both() {
        let file = std::env::temp_dir().join(format!("sluice-pw-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, "from-file\n").unwrap();
        let both = ClickhouseSettings {
            password: Some(crate::secret::Secret::new("given")),
            password_file: Some(file.clone()),
            ..settings("http://h:8123")
        };
        let message = error(&both);
        assert!(message.contains("not both"), "{message}");
        assert!(!message.contains("given") && !message.contains("from-file"));
        let missing = ClickhouseSettings {
            password_file: Some("/nonexistent/password".into()),
            ..settings("http://h:8123")
        };
        assert!(error(&missing).contains("--clickhouse-password"));
        std::fs::remove_file(file).unwrap();
    }
}
