//! Reading raw events without paying for `FINAL` where it changes nothing.
//!
//! `FINAL` collapses copies of an event (replays, retries) that sit in
//! different parts, or in one part that no merge has gone over yet. It costs
//! a merge at read time, up to twenty times the plain read on 18.16. A day
//! partition made of a single part that is itself the product of a merge
//! (`level > 0`) holds no copies: such days are read plainly, the others with
//! `FINAL`.
//!
//! The list of parts is read before the query and again after it. Parts are
//! immutable and their names never come back, so when the clean days still
//! have the same single parts afterwards, the query saw exactly those parts;
//! otherwise ([`read_consistent`]) it runs again with `FINAL` everywhere.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::Deserialize;

use crate::error::Result;
use crate::filters::{Bound, Sql};

/// The day partitions (`YYYYMMDD`) of `events` that need no `FINAL`, with
/// the name of their single part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    clean: BTreeMap<u32, String>,
}

#[derive(Debug, Row, Deserialize)]
struct CleanPart {
    day: u32,
    part: String,
}

impl Snapshot {
    /// A snapshot with no clean day: `FINAL` everywhere.
    pub fn all_final() -> Self {
        Self::default()
    }

    pub async fn take(client: &clickhouse::Client) -> Result<Self> {
        let parts = client
            .query(
                "SELECT toUInt32(partition) AS day, any(name) AS part FROM system.parts
                 WHERE database = currentDatabase() AND table = 'events' AND active
                 GROUP BY partition HAVING count() = 1 AND min(level) > 0",
            )
            .fetch_all::<CleanPart>()
            .await?;
        Ok(Self {
            clean: parts.into_iter().map(|p| (p.day, p.part)).collect(),
        })
    }

    /// `FROM <events> WHERE conditions`, where `conditions` (starting with
    /// ` AND`) restrict the rows and `columns` are what the outer query uses.
    pub fn from_events(&self, columns: &str, conditions: &Sql) -> Sql {
        let mut sql = Sql::default();
        if self.clean.is_empty() {
            sql.push(" FROM events FINAL WHERE 1", []);
            sql.push(&conditions.text, conditions.binds.iter().cloned());
            return sql;
        }
        let days = vec!["?"; self.clean.len()].join(", ");
        let day_binds = || self.clean.keys().map(|day| Bound::Int(i64::from(*day)));
        for (index, (table, test)) in [("events", "IN"), ("events FINAL", "NOT IN")]
            .into_iter()
            .enumerate()
        {
            sql.push(
                &format!(
                    "{} SELECT {columns} FROM {table} WHERE toYYYYMMDD(timestamp) {test} ({days})",
                    if index == 0 { " FROM (" } else { " UNION ALL" }
                ),
                day_binds(),
            );
            sql.push(&conditions.text, conditions.binds.iter().cloned());
        }
        sql.push(") WHERE 1", []);
        sql
    }
}

/// Runs the query that `build` makes for a snapshot, and makes sure the
/// answer is one `FINAL` everywhere would give (see the module docs).
pub async fn read_consistent<T>(
    client: &clickhouse::Client,
    build: impl Fn(&Snapshot) -> Sql,
) -> Result<Vec<T>>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    let before = Snapshot::take(client).await?;
    let rows = build(&before).query(client).fetch_all::<T>().await?;
    if before.clean.is_empty() || Snapshot::take(client).await?.covers(&before) {
        return Ok(rows);
    }
    Ok(build(&Snapshot::all_final())
        .query(client)
        .fetch_all::<T>()
        .await?)
}

impl Snapshot {
    /// Whether every clean day of `earlier` still has the same single part.
    fn covers(&self, earlier: &Self) -> bool {
        earlier
            .clean
            .iter()
            .all(|(day, part)| self.clean.get(day) == Some(part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::text;

    #[test]
    fn clean_days_are_read_plainly_the_rest_with_final() {
        let mut conditions = Sql::default();
        conditions.push(" AND project_id = ?", [text("p")]);
        let plain = Snapshot::all_final().from_events("type", &conditions);
        assert_eq!(plain.text, " FROM events FINAL WHERE 1 AND project_id = ?");
        let snapshot = Snapshot {
            clean: [(20240101, "a".into()), (20240102, "b".into())].into(),
        };
        let split = snapshot.from_events("type", &conditions);
        assert_eq!(
            split.text,
            " FROM ( SELECT type FROM events WHERE toYYYYMMDD(timestamp) IN (?, ?) AND project_id = ? \
             UNION ALL SELECT type FROM events FINAL WHERE toYYYYMMDD(timestamp) NOT IN (?, ?) AND project_id = ?) WHERE 1"
        );
        assert_eq!(split.binds.len(), 6);
        let later = Snapshot {
            clean: [(20240101, "a".into()), (20240102, "c".into())].into(),
        };
        assert!(snapshot.covers(&snapshot));
        assert!(!later.covers(&snapshot), "a new part replaced b");
        assert!(snapshot.covers(&Snapshot::all_final()));
    }
}
