//! The ClickHouse client and idempotent schema creation.

use std::time::Duration;

use anyhow::{Context, bail};
use sluice_schemas::ddl::Database;
use tokio_util::sync::CancellationToken;

use crate::settings::ClickhouseSettings;

/// A client for Sluice's database.
///
/// Schema validation is off: ClickHouse 18.16 does not report column types the
/// way the crate's validation expects.
pub fn client(settings: &ClickhouseSettings) -> anyhow::Result<(clickhouse::Client, Database)> {
    let database = Database::new(&settings.database)?;
    let client = server_client(settings).with_database(database.name());
    Ok((client, database))
}

/// A client not bound to a database, for DDL that may create it.
fn server_client(settings: &ClickhouseSettings) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(&settings.url)
        .with_user(&settings.user)
        .with_password(&settings.password)
        .with_validation(false)
}

/// Creates the database and tables that are missing, retrying while the server
/// is unreachable, until `shutdown` or `deadline`. Returns the server version.
pub async fn ensure_schema(
    settings: &ClickhouseSettings,
    deadline: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<String> {
    let database = Database::new(&settings.database)?;
    let client = server_client(settings);
    let give_up = tokio::time::Instant::now() + deadline;
    let version = loop {
        match client.query("SELECT version()").fetch_one::<String>().await {
            Ok(version) => break version,
            Err(error) if tokio::time::Instant::now() < give_up => {
                tracing::warn!(cause = %error, url = %settings.url, "ClickHouse not reachable; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => bail!("shut down while waiting for ClickHouse"),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("ClickHouse at {} is not reachable", settings.url));
            }
        }
    };
    for statement in database.create_statements() {
        client
            .query(&statement)
            .execute()
            .await
            .with_context(|| format!("ClickHouse refused: {statement}"))?;
    }
    tracing::info!(version = %version, database = %database.name(), "ClickHouse schema ready");
    Ok(version)
}
