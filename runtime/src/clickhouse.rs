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
/// is unreachable, until `shutdown` or `deadline`. Returns what the server can do.
pub async fn ensure_schema(
    settings: &ClickhouseSettings,
    deadline: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<ServerFeatures> {
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
    tracing::info!(version = %version, ?features, database = %database.name(), "ClickHouse schema ready");
    Ok(features)
}
