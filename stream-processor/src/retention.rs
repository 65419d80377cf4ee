//! Retention: raw events and rollups are kept for a number of days by event
//! time, by dropping whole day partitions (`ALTER TABLE … DROP PARTITION`,
//! which 18.16 and current servers share; no `TTL`, which 18.16 lacks).
//! On a cluster, the partitions of the shard-local tables on every shard,
//! dropped `ON CLUSTER`.

use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;
use sluice_schemas::ddl::{ClusterName, DAY_PARTITIONED_TABLES, Database, local_table};
use time::{Date, OffsetDateTime};
use tokio_util::sync::CancellationToken;

const CHECK_EVERY: Duration = Duration::from_secs(3_600);

#[derive(Debug, Row, Deserialize)]
struct PartitionRow {
    partition: String,
}

/// `date` as the `toYYYYMMDD` partition value.
fn day_number(date: Date) -> u32 {
    u32::try_from(date.year()).unwrap_or(0) * 10_000
        + u32::from(u8::from(date.month())) * 100
        + u32::from(date.day())
}

/// Drops the day partitions of `events` and `rollups` older than `days`
/// before `today` (so `days` whole days are always kept, plus today).
/// Returns what it dropped, as (table, YYYYMMDD).
pub async fn drop_expired(
    client: &clickhouse::Client,
    database: &Database,
    cluster: Option<&ClusterName>,
    days: u32,
    today: Date,
) -> anyhow::Result<Vec<(&'static str, u32)>> {
    let oldest_kept = day_number(today - time::Duration::days(i64::from(days)));
    let mut dropped = Vec::new();
    for table in DAY_PARTITIONED_TABLES {
        let (parts, stored, on_cluster) = match cluster {
            None => ("system.parts".to_owned(), table.to_owned(), String::new()),
            Some(cluster) => (
                format!("cluster('{}', system, parts)", cluster.name()),
                local_table(table),
                format!(" ON CLUSTER {cluster}"),
            ),
        };
        let partitions = client
            .query(&format!(
                "SELECT DISTINCT partition FROM {parts} WHERE database = ? AND table = ? AND active"
            ))
            .bind(database.name())
            .bind(&stored)
            .fetch_all::<PartitionRow>()
            .await?;
        for row in partitions {
            // Partition values are toYYYYMMDD numbers; anything else is not ours to drop.
            let Ok(day) = row.partition.parse::<u32>() else {
                continue;
            };
            if day < oldest_kept {
                client
                    .query(&format!(
                        "ALTER TABLE {database}.{stored}{on_cluster} DROP PARTITION {day}"
                    ))
                    .execute()
                    .await?;
                dropped.push((table, day));
            }
        }
    }
    Ok(dropped)
}

/// Enforces the retention now and every hour until `shutdown`.
pub async fn run(
    client: clickhouse::Client,
    database: Database,
    cluster: Option<ClusterName>,
    days: u32,
    shutdown: CancellationToken,
) {
    loop {
        let today = OffsetDateTime::now_utc().date();
        match drop_expired(&client, &database, cluster.as_ref(), days, today).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::info!(?dropped, days, "retention dropped day partitions")
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(cause = %error, "retention check failed; retrying in an hour")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}
