//! The ClickHouse client and idempotent schema creation.
//!
//! [`ensure_schema`] asks the server its version once, at startup; the
//! [`ServerFeatures`] it returns decide the DDL and whether [`client`]
//! validates rows against the server's column types.

use std::time::Duration;

use anyhow::{Context, bail};
use sluice_schemas::ddl::Database;
pub use sluice_schemas::server::ServerFeatures;
use tokio_util::sync::CancellationToken;

use crate::ops::{Patience, Readiness};
use crate::settings::ClickhouseSettings;

/// A client for Sluice's database. Row structs are validated against the
/// column types where the server supports the crate's validation: a type
/// mismatch is then an error instead of silently garbled rows.
pub fn client(
    settings: &ClickhouseSettings,
    features: ServerFeatures,
) -> anyhow::Result<(clickhouse::Client, Database)> {
    let database = Database::new(&settings.database)?;
    let client = server_client(settings)
        .with_validation(features.row_validation)
        .with_database(database.name());
    Ok((client, database))
}

/// A client not bound to a database, for DDL that may create it. Validation is
/// off until the server's version says it can be on.
fn server_client(settings: &ClickhouseSettings) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(&settings.url)
        .with_user(&settings.user)
        .with_password(&settings.password)
        .with_validation(false)
}

/// Creates the database and tables that are missing, retrying while the server
/// is unreachable as `patience` says, or until `shutdown`. Returns what the
/// server can do.
pub async fn ensure_schema(
    settings: &ClickhouseSettings,
    patience: Patience,
    shutdown: &CancellationToken,
) -> anyhow::Result<ServerFeatures> {
    let database = Database::new(&settings.database)?;
    let client = server_client(settings);
    let started = std::time::Instant::now();
    let version = loop {
        match client.query("SELECT version()").fetch_one::<String>().await {
            Ok(version) => break version,
            Err(error) => {
                let url = shown_url(&settings.url);
                let cause =
                    format!("ClickHouse at {url} (--clickhouse-url) does not answer: {error}");
                if let Some(error) = patience.after_failure(started, cause) {
                    return Err(error);
                }
                tracing::warn!(cause = %error, %url, "ClickHouse not reachable; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => bail!("shut down while waiting for ClickHouse"),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    };
    let (features, invalid) = ServerFeatures::detect(&version);
    if let Some(error) = invalid {
        tracing::warn!(cause = %error, "unknown ClickHouse version; using the SQL subset every server accepts");
    }
    // Retention is a later issue: until then events are kept forever.
    for statement in database.create_statements(features, None) {
        client
            .query(&statement)
            .execute()
            .await
            .with_context(|| format!("ClickHouse refused: {statement}"))?;
    }
    patience.succeeded();
    tracing::info!(version = %version, ?features, database = %database.name(), "ClickHouse schema ready");
    Ok(features)
}

/// `url` as logs and readiness may show it: without a `user:password@`
/// part, which some users put in the URL.
pub fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}{}", &rest[authority_end..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// The readiness check that ClickHouse answers.
pub const CLICKHOUSE_CHECK: &str = "clickhouse";
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Failed probes in a row before readiness fails: one slow answer under load
/// is not an outage.
const PROBES_FAILED_TOLERATED: u32 = 2;

/// Keeps [`CLICKHOUSE_CHECK`] following whether ClickHouse answers `SELECT 1`
/// within a few seconds, until `shutdown`; the failing check names the URL
/// and the cause. A server that accepts connections but does not answer (a
/// stopped process, a full disk) fails it too.
pub async fn watch(
    client: clickhouse::Client,
    url: String,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let url = shown_url(&url);
    let mut failed = 0;
    loop {
        let probe =
            tokio::time::timeout(PROBE_TIMEOUT, client.query("SELECT 1").fetch_one::<u8>()).await;
        let cause = match probe {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        };
        match cause {
            None => {
                if failed >= PROBES_FAILED_TOLERATED {
                    tracing::info!(%url, "ClickHouse answers again");
                }
                failed = 0;
                readiness.pass(CLICKHOUSE_CHECK);
            }
            Some(cause) => {
                failed += 1;
                if failed >= PROBES_FAILED_TOLERATED {
                    tracing::warn!(%cause, %url, "ClickHouse does not answer");
                    readiness.fail(
                        CLICKHOUSE_CHECK,
                        format!("ClickHouse at {url} (--clickhouse-url) does not answer: {cause}"),
                    );
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_credentials() {
        assert_eq!(
            shown_url("https://reader:s3cret@ch.example.com:8443/?database=x"),
            "https://ch.example.com:8443/?database=x"
        );
        assert_eq!(shown_url("http://127.0.0.1:8123"), "http://127.0.0.1:8123");
        assert_eq!(shown_url("http://h/path@x"), "http://h/path@x");
    }
}
