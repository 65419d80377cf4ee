//! How Sluice's Kafka clients encrypt and authenticate: typed settings for
//! TLS and SASL beside the `--kafka-properties` passthrough. Secrets come
//! from a file or the environment (a flag value shows in `ps`), are never
//! printed (`Debug` says `[redacted]`, `--help` hides the environment's
//! value), and every file is read once at startup, so a missing or
//! unreadable one stops the service with the setting named.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rdkafka::ClientConfig;

pub use crate::secret::Secret;
use crate::secret::{read_text, secret_from};

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum SecurityProtocol {
    /// No TLS, no SASL (a local broker).
    #[default]
    #[value(name = "plaintext")]
    Plaintext,
    /// TLS; with a client certificate and key, mutual TLS.
    #[value(name = "ssl")]
    Ssl,
    /// SASL without TLS.
    #[value(name = "sasl_plaintext")]
    SaslPlaintext,
    /// SASL over TLS (Confluent Cloud, MSK with SCRAM, Redpanda Cloud, Aiven).
    #[value(name = "sasl_ssl")]
    SaslSsl,
}

impl SecurityProtocol {
    fn librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// librdkafka's `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaslMechanism {
    /// User name and password in the clear (over TLS): Confluent Cloud.
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    /// MSK, Redpanda, Aiven.
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
    /// OAuth 2 client credentials (OIDC), fetched and refreshed by librdkafka.
    #[value(name = "OAUTHBEARER")]
    Oauthbearer,
}

impl SaslMechanism {
    fn librdkafka(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::Oauthbearer => "OAUTHBEARER",
        }
    }
}

/// TLS and SASL towards the broker.
#[derive(Debug, Clone, Default, Args)]
pub struct KafkaSecurity {
    /// How clients talk to the broker: plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(
        long = "kafka-security-protocol",
        env = "SLUICE_KAFKA_SECURITY_PROTOCOL",
        value_enum,
        ignore_case = true,
        default_value_t
    )]
    pub protocol: SecurityProtocol,

    /// SASL mechanism (with sasl_*): PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    #[arg(
        long = "kafka-sasl-mechanism",
        env = "SLUICE_KAFKA_SASL_MECHANISM",
        value_enum,
        ignore_case = true
    )]
    pub sasl_mechanism: Option<SaslMechanism>,

    /// SASL user name (PLAIN, SCRAM).
    #[arg(long = "kafka-sasl-username", env = "SLUICE_KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,

    /// SASL password (PLAIN, SCRAM). Prefer the environment or
    /// --kafka-sasl-password-file: a flag's value shows in `ps`.
    #[arg(
        long = "kafka-sasl-password",
        env = "SLUICE_KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<Secret>,

    /// File whose first line is the SASL password (a mounted Secret).
    #[arg(
        long = "kafka-sasl-password-file",
        env = "SLUICE_KAFKA_SASL_PASSWORD_FILE"
    )]
    pub sasl_password_file: Option<PathBuf>,

    /// OAUTHBEARER: the OIDC token endpoint (client-credentials grant).
    #[arg(long = "kafka-oauth-token-url", env = "SLUICE_KAFKA_OAUTH_TOKEN_URL")]
    pub oauth_token_url: Option<String>,

    /// OAUTHBEARER: the OAuth client id.
    #[arg(long = "kafka-oauth-client-id", env = "SLUICE_KAFKA_OAUTH_CLIENT_ID")]
    pub oauth_client_id: Option<String>,

    /// OAUTHBEARER: the OAuth client secret. Prefer the environment or
    /// --kafka-oauth-client-secret-file.
    #[arg(
        long = "kafka-oauth-client-secret",
        env = "SLUICE_KAFKA_OAUTH_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub oauth_client_secret: Option<Secret>,

    /// OAUTHBEARER: file whose first line is the OAuth client secret.
    #[arg(
        long = "kafka-oauth-client-secret-file",
        env = "SLUICE_KAFKA_OAUTH_CLIENT_SECRET_FILE"
    )]
    pub oauth_client_secret_file: Option<PathBuf>,

    /// OAUTHBEARER: the scope to ask for (optional).
    #[arg(long = "kafka-oauth-scope", env = "SLUICE_KAFKA_OAUTH_SCOPE")]
    pub oauth_scope: Option<String>,

    /// OAUTHBEARER: SASL extensions, comma-separated `key=value`, e.g.
    /// Confluent Cloud's `logicalCluster=lkc-1,identityPoolId=pool-2`.
    #[arg(long = "kafka-oauth-extensions", env = "SLUICE_KAFKA_OAUTH_EXTENSIONS")]
    pub oauth_extensions: Option<String>,

    /// PEM file of the CA(s) that signed the broker's certificate (with ssl
    /// or sasl_ssl); the system's roots when not given.
    #[arg(long = "kafka-ssl-ca-file", env = "SLUICE_KAFKA_SSL_CA_FILE")]
    pub ssl_ca_file: Option<PathBuf>,

    /// PEM file of the client certificate, for mutual TLS.
    #[arg(
        long = "kafka-ssl-certificate-file",
        env = "SLUICE_KAFKA_SSL_CERTIFICATE_FILE"
    )]
    pub ssl_certificate_file: Option<PathBuf>,

    /// PEM file of the client certificate's private key, for mutual TLS.
    #[arg(long = "kafka-ssl-key-file", env = "SLUICE_KAFKA_SSL_KEY_FILE")]
    pub ssl_key_file: Option<PathBuf>,
}

impl KafkaSecurity {
    /// Sets librdkafka's properties for these settings on `config`, reading
    /// every file named. An inconsistent or unreadable setting is an error
    /// that names it.
    pub fn apply(&self, config: &mut ClientConfig) -> anyhow::Result<()> {
        let protocol = self.protocol;
        config.set("security.protocol", protocol.librdkafka());
        if protocol.uses_tls() {
            if let Some(ca) = &self.ssl_ca_file {
                config.set("ssl.ca.location", readable(ca, "--kafka-ssl-ca-file")?);
            }
            match (&self.ssl_certificate_file, &self.ssl_key_file) {
                (Some(certificate), Some(key)) => {
                    config.set(
                        "ssl.certificate.pem",
                        read_text(certificate, "--kafka-ssl-certificate-file")?,
                    );
                    config.set("ssl.key.pem", read_text(key, "--kafka-ssl-key-file")?);
                }
                (None, None) => {}
                _ => bail!(
                    "mutual TLS needs both --kafka-ssl-certificate-file and --kafka-ssl-key-file"
                ),
            }
        } else if self.ssl_ca_file.is_some() || self.ssl_certificate_file.is_some() {
            bail!(
                "--kafka-ssl-* files are set but --kafka-security-protocol is {}; use ssl or sasl_ssl",
                protocol.librdkafka()
            );
        }
        if !protocol.uses_sasl() {
            if self.sasl_mechanism.is_some() {
                bail!(
                    "--kafka-sasl-mechanism is set but --kafka-security-protocol is {}; use sasl_plaintext or sasl_ssl",
                    protocol.librdkafka()
                );
            }
            return Ok(());
        }
        let Some(mechanism) = self.sasl_mechanism else {
            bail!(
                "--kafka-security-protocol {} needs --kafka-sasl-mechanism",
                protocol.librdkafka()
            );
        };
        config.set("sasl.mechanism", mechanism.librdkafka());
        if mechanism == SaslMechanism::Oauthbearer {
            let token_url = self
                .oauth_token_url
                .as_deref()
                .context("--kafka-sasl-mechanism OAUTHBEARER needs --kafka-oauth-token-url")?;
            let client_id = self
                .oauth_client_id
                .as_deref()
                .context("--kafka-sasl-mechanism OAUTHBEARER needs --kafka-oauth-client-id")?;
            let secret = secret_from(
                self.oauth_client_secret.as_ref(),
                self.oauth_client_secret_file.as_deref(),
                "--kafka-oauth-client-secret (or SLUICE_KAFKA_OAUTH_CLIENT_SECRET, or --kafka-oauth-client-secret-file)",
            )?;
            config
                .set("sasl.oauthbearer.method", "oidc")
                .set("sasl.oauthbearer.token.endpoint.url", token_url)
                .set("sasl.oauthbearer.client.id", client_id)
                .set("sasl.oauthbearer.client.secret", secret.expose());
            if let Some(scope) = &self.oauth_scope {
                config.set("sasl.oauthbearer.scope", scope);
            }
            if let Some(extensions) = &self.oauth_extensions {
                let malformed = extensions
                    .split(',')
                    .find(|pair| pair.split_once('=').is_none_or(|(key, _)| key.is_empty()));
                if let Some(pair) = malformed {
                    bail!("--kafka-oauth-extensions: {pair:?} is not key=value");
                }
                config.set("sasl.oauthbearer.extensions", extensions);
            }
        } else {
            let username = self.sasl_username.as_deref().with_context(|| {
                format!(
                    "--kafka-sasl-mechanism {} needs --kafka-sasl-username",
                    mechanism.librdkafka()
                )
            })?;
            let password = secret_from(
                self.sasl_password.as_ref(),
                self.sasl_password_file.as_deref(),
                "--kafka-sasl-password (or SLUICE_KAFKA_SASL_PASSWORD, or --kafka-sasl-password-file)",
            )?;
            config
                .set("sasl.username", username)
                .set("sasl.password", password.expose());
        }
        Ok(())
    }
}

/// The path as text, once it is known to be a readable file.
fn readable(path: &Path, setting: &str) -> anyhow::Result<String> {
    read_text(path, setting)?;
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{setting}: {} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(security: &KafkaSecurity) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new();
        security.apply(&mut config)?;
        Ok(config)
    }

    fn error(security: &KafkaSecurity) -> String {
        format!("{:#}", applied(security).unwrap_err())
    }

    #[test]
    fn values_read_as_librdkafka_spells_them_in_either_case() {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            security: KafkaSecurity,
        }
        let parsed = Flags::try_parse_from([
            "sluice",
            "--kafka-security-protocol",
            "SASL_SSL",
            "--kafka-sasl-mechanism",
            "scram-sha-512",
        ])
        .unwrap();
        assert_eq!(parsed.security.protocol, SecurityProtocol::SaslSsl);
        assert_eq!(
            parsed.security.sasl_mechanism,
            Some(SaslMechanism::ScramSha512)
        );
        let parsed =
            Flags::try_parse_from(["sluice", "--kafka-security-protocol", "sasl_plaintext"])
                .unwrap();
        assert_eq!(parsed.security.protocol, SecurityProtocol::SaslPlaintext);
    }

    #[test]
    fn oauth_extensions_pass_whole_and_malformed_ones_are_named() {
        let dir = std::env::temp_dir().join(format!("sluice-oauth-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "client-secret\n").unwrap();
        let oauth = KafkaSecurity {
            protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::Oauthbearer),
            oauth_token_url: Some("https://idp.example.com/token".into()),
            oauth_client_id: Some("sluice".into()),
            oauth_client_secret_file: Some(secret),
            oauth_extensions: Some("logicalCluster=lkc-1,identityPoolId=pool-2".into()),
            ..KafkaSecurity::default()
        };
        let config = applied(&oauth).unwrap();
        assert_eq!(
            config.get("sasl.oauthbearer.extensions"),
            Some("logicalCluster=lkc-1,identityPoolId=pool-2")
        );
        assert_eq!(config.get("sasl.oauthbearer.method"), Some("oidc"));
        let malformed = KafkaSecurity {
            oauth_extensions: Some("logicalCluster=lkc-1,oops".into()),
            ..oauth
        };
        assert!(error(&malformed).contains("\"oops\" is not key=value"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn plaintext_sets_only_the_protocol() {
        let config = applied(&KafkaSecurity::default()).unwrap();
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
        assert_eq!(config.get("sasl.mechanism"), None);
    }

    #[test]
    fn scram_over_tls_reads_the_password_file_and_never_prints_it() {
        let dir = std::env::temp_dir().join(format!("sluice-sec-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let password = dir.join("password");
        std::fs::write(&password, "s3cret-value\n").unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let security = KafkaSecurity {
            protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            sasl_username: Some("sluice".into()),
            sasl_password_file: Some(password),
            ssl_ca_file: Some(ca.clone()),
            ..KafkaSecurity::default()
        };
        let config = applied(&security).unwrap();
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("sluice"));
        assert_eq!(config.get("sasl.password"), Some("s3cret-value"));
        assert_eq!(config.get("ssl.ca.location"), ca.to_str());
        let direct = KafkaSecurity {
            sasl_password: Some(Secret::new("s3cret-value")),
            sasl_password_file: None,
            ..security
        };
        assert!(!format!("{direct:?}").contains("s3cret"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn each_missing_or_inconsistent_setting_is_named() {
        let sasl = KafkaSecurity {
            protocol: SecurityProtocol::SaslSsl,
            ..KafkaSecurity::default()
        };
        assert!(error(&sasl).contains("needs --kafka-sasl-mechanism"));
        let scram = KafkaSecurity {
            sasl_mechanism: Some(SaslMechanism::ScramSha256),
            ..sasl.clone()
        };
        assert!(error(&scram).contains("needs --kafka-sasl-username"));
        let no_password = KafkaSecurity {
            sasl_username: Some("u".into()),
            ..scram
        };
        assert!(error(&no_password).contains("--kafka-sasl-password"));
        let missing_file = KafkaSecurity {
            sasl_password_file: Some("/nonexistent/password".into()),
            ..no_password
        };
        let message = error(&missing_file);
        assert!(
            message.contains("cannot read /nonexistent/password"),
            "{message}"
        );
        let oauth = KafkaSecurity {
            sasl_mechanism: Some(SaslMechanism::Oauthbearer),
            ..sasl
        };
        assert!(error(&oauth).contains("needs --kafka-oauth-token-url"));
        let half_mtls = KafkaSecurity {
            protocol: SecurityProtocol::Ssl,
            ssl_key_file: Some("/k".into()),
            ..KafkaSecurity::default()
        };
        assert!(error(&half_mtls).contains("needs both --kafka-ssl-certificate-file"));
        let stray = KafkaSecurity {
            sasl_mechanism: Some(SaslMechanism::Plain),
            ..KafkaSecurity::default()
        };
        assert!(error(&stray).contains("--kafka-security-protocol is plaintext"));
    }
}
