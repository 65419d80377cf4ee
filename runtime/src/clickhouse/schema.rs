//! Sluice's database and tables on the server: the processor creates them
//! ([`ensure_schema`]), the query API, whose user may only read, waits for
//! them ([`await_schema`]). Both first ask the server its version, which
//! decides the SQL ([`ServerFeatures`]).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use sluice_schemas::clickhouse_features::ServerFeatures;
use sluice_schemas::ddl::QUERIED_TABLES;
use tokio_util::sync::CancellationToken;

use super::connection::Connection;
use super::failure::{Failure, judge};
use crate::ops::Patience;

/// How long one attempt to reach the server may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Creates the database and tables that are missing, after waiting for the
/// server as `patience` says, or until `shutdown`. Returns what the server
/// can do. A setting that is wrong (the user, the password, the
/// certificate) is an error at once.
pub async fn ensure_schema(
    connection: &Connection,
    patience: Patience,
    shutdown: &CancellationToken,
) -> anyhow::Result<ServerFeatures> {
    let features = server_features(connection, &patience, shutdown).await?;
    if let Some(cluster) = connection.cluster() {
        refuse_cluster_on_shared_storage(features, cluster.name(), connection.shown_url())?;
    }
    // Retention is a later issue: until then events are kept forever.
    let database = connection.database();
    let statements = match connection.cluster() {
        Some(cluster) => database.create_cluster_statements(cluster, features, None),
        None => database.create_statements(features, None),
    };
    for statement in statements {
        connection
            .server()
            .query(&statement)
            .execute()
            .await
            .map_err(|error| match judge(&error, connection) {
                Failure::Misconfigured(message) => anyhow!(message),
                Failure::Unavailable(_) => anyhow!(
                    "ClickHouse refused {statement:?}: {error}; the processor's \
                     --clickhouse-user ('{user}') must be allowed to create Sluice's database \
                     and tables (docs/clickhouse-users.md)",
                    user = connection.user()
                ),
            })?;
    }
    patience.succeeded();
    tracing::info!(?features, database = %connection.database().name(), "ClickHouse schema ready");
    Ok(features)
}

/// Waits, as `patience` says, until the server answers and holds the tables
/// the query API reads; creates nothing. Returns what the server can do.
pub async fn await_schema(
    connection: &Connection,
    patience: Patience,
    shutdown: &CancellationToken,
) -> anyhow::Result<ServerFeatures> {
    let features = server_features(connection, &patience, shutdown).await?;
    let database = connection.database().name();
    let started = Instant::now();
    loop {
        let tables = connection
            .server()
            .query("SELECT name FROM system.tables WHERE database = ?")
            .bind(database)
            .fetch_all::<String>();
        let cause = match tokio::time::timeout(ATTEMPT_TIMEOUT, tables).await {
            Ok(Ok(tables)) => {
                let missing: Vec<&str> = QUERIED_TABLES
                    .into_iter()
                    .filter(|table| !tables.iter().any(|found| found == table))
                    .collect();
                if missing.is_empty() {
                    patience.succeeded();
                    tracing::info!(?features, %database, "ClickHouse schema found");
                    return Ok(features);
                }
                format!(
                    "ClickHouse at {url} has no table {tables} in database {database} \
                     (--clickhouse-database) yet: the stream processor creates them, or \
                     --clickhouse-user ('{user}') may not see them",
                    url = connection.shown_url(),
                    tables = missing.join(", "),
                    user = connection.user(),
                )
            }
            Ok(Err(error)) => match judge(&error, connection) {
                Failure::Misconfigured(message) => bail!(message),
                Failure::Unavailable(cause) => cause,
            },
            Err(_) => no_answer(connection),
        };
        wait_after_failure(&patience, started, cause, shutdown).await?;
    }
}

/// The server's version, once it answers, as [`ServerFeatures`].
async fn server_features(
    connection: &Connection,
    patience: &Patience,
    shutdown: &CancellationToken,
) -> anyhow::Result<ServerFeatures> {
    let started = Instant::now();
    let version = loop {
        let version = connection
            .server()
            .query("SELECT version()")
            .fetch_one::<String>();
        let cause = match tokio::time::timeout(ATTEMPT_TIMEOUT, version).await {
            Ok(Ok(version)) => break version,
            Ok(Err(error)) => match judge(&error, connection) {
                Failure::Misconfigured(message) => bail!(message),
                Failure::Unavailable(cause) => cause,
            },
            Err(_) => no_answer(connection),
        };
        wait_after_failure(patience, started, cause, shutdown).await?;
    };
    let (mut features, invalid) = ServerFeatures::detect(&version);
    if let Some(error) = invalid {
        tracing::warn!(cause = %error, "unknown ClickHouse version; using the SQL subset every server accepts");
    }
    // Only current servers can be ClickHouse Cloud (18.16 has no
    // system.table_engines to ask).
    if features.ttl {
        features.shared_merge_tree = has_shared_merge_tree(connection).await;
    }
    tracing::info!(%version, url = %connection.shown_url(), shared_merge_tree = features.shared_merge_tree, "ClickHouse answers");
    Ok(features)
}

/// Whether the server lists the SharedMergeTree engine (ClickHouse Cloud).
/// A server that cannot say is taken for one without it.
async fn has_shared_merge_tree(connection: &Connection) -> bool {
    let asked = connection
        .server()
        .query("SELECT count() FROM system.table_engines WHERE name = 'SharedMergeTree'")
        .fetch_one::<u64>();
    match tokio::time::timeout(ATTEMPT_TIMEOUT, asked).await {
        Ok(Ok(count)) => count > 0,
        Ok(Err(error)) => {
            tracing::warn!(cause = %error, "cannot list the server's table engines; taking it for one without SharedMergeTree");
            false
        }
        Err(_) => false,
    }
}

/// `--clickhouse-cluster` names a sharded cluster of Replicated tables; a
/// server with SharedMergeTree (ClickHouse Cloud) shares one storage among
/// its replicas and replicates DDL itself, so the Distributed tables and
/// `ON CLUSTER` statements that cluster mode creates would only add a hop.
/// Said at startup rather than created wrongly.
fn refuse_cluster_on_shared_storage(
    features: ServerFeatures,
    cluster: &str,
    url: &str,
) -> anyhow::Result<()> {
    if features.shared_merge_tree {
        bail!(
            "--clickhouse-cluster is '{cluster}', but ClickHouse at {url} has SharedMergeTree \
             (ClickHouse Cloud): its replicas share one storage and replicate DDL themselves, \
             so Sluice needs no cluster mode there; leave --clickhouse-cluster \
             (SLUICE_CLICKHOUSE_CLUSTER) empty (docs/scaling.md)"
        );
    }
    Ok(())
}

fn no_answer(connection: &Connection) -> String {
    format!(
        "ClickHouse at {} (--clickhouse-url) does not answer within {} s",
        connection.shown_url(),
        ATTEMPT_TIMEOUT.as_secs()
    )
}

/// Tells `patience` about the failure and waits to try again; the error
/// ends the wait.
async fn wait_after_failure(
    patience: &Patience,
    started: Instant,
    cause: String,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    tracing::warn!(%cause, "ClickHouse not ready; retrying");
    if let Some(error) = patience.after_failure(started, cause) {
        return Err(error);
    }
    tokio::select! {
        _ = shutdown.cancelled() => Err(anyhow!("shut down while waiting for ClickHouse")),
        _ = tokio::time::sleep(RETRY_INTERVAL) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_mode_is_refused_on_shared_storage_only() {
        let mut features = ServerFeatures::COMMON_SUBSET;
        assert!(refuse_cluster_on_shared_storage(features, "sluice", "http://ch:8123").is_ok());
        features.shared_merge_tree = true;
        let refused = refuse_cluster_on_shared_storage(
            features,
            "default",
            "https://x.clickhouse.cloud:8443",
        )
        .unwrap_err()
        .to_string();
        assert!(
            refused.starts_with("--clickhouse-cluster is 'default'"),
            "{refused}"
        );
        assert!(
            refused.contains("leave --clickhouse-cluster (SLUICE_CLICKHOUSE_CLUSTER) empty"),
            "{refused}"
        );
    }
}
