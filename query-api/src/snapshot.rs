//! Reading raw events without paying for `FINAL` where it changes nothing.
//!
//! `FINAL` collapses copies of an event (replays, retries) that sit in
//! different parts, or in one part that no merge has gone over yet. It costs
//! a merge at read time, up to twenty times the plain read on 18.16. A day
//! partition made of a single part that is itself the product of a merge
//! (`level > 0`) holds no copies: such days are read plainly, the others with
//! `FINAL`. Both halves name their days by event-time ranges (the clean
//! parts' first and last times, and what lies between), because 18.16 prunes
//! the parts a `FINAL` read merges by ranges of the partition column, not by
//! a list of partitions.
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

/// The day partitions of `events` that need no `FINAL`: the name of their
/// single part by its first event time, and its last event time (Unix
/// seconds, both inclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    clean: BTreeMap<u32, (String, u32)>,
}

#[derive(Debug, Row, Deserialize)]
struct CleanPart {
    part: String,
    first: u32,
    last: u32,
}

impl Snapshot {
    /// A snapshot with no clean day: `FINAL` everywhere.
    pub fn all_final() -> Self {
        Self::default()
    }

    pub async fn take(client: &clickhouse::Client) -> Result<Self> {
        let parts = client
            .query(
                "SELECT any(name) AS part, toUInt32(min(min_time)) AS first,
                        toUInt32(max(max_time)) AS last
                 FROM system.parts
                 WHERE database = currentDatabase() AND table = 'events' AND active
                 GROUP BY partition HAVING count() = 1 AND min(level) > 0",
            )
            .fetch_all::<CleanPart>()
            .await?;
        Ok(Self {
            clean: parts
                .into_iter()
                .map(|p| (p.first, (p.part, p.last)))
                .collect(),
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
        // The clean parts' time ranges, and what lies before, between and
        // after them; they never overlap, each being one day.
        let mut clean = Sql::new("(");
        let mut rest = Sql::new("(timestamp < toDateTime(?)");
        let mut first = true;
        for (start, (_, end)) in &self.clean {
            let (start, end) = (Bound::Int(i64::from(*start)), Bound::Int(i64::from(*end)));
            let or = if first { "" } else { " OR " };
            clean.push(
                &format!("{or}timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)"),
                [start.clone(), end.clone()],
            );
            if first {
                rest.binds.push(start);
            } else {
                rest.push(" AND timestamp < toDateTime(?))", [start]);
            }
            rest.push(" OR (timestamp > toDateTime(?)", [end]);
            first = false;
        }
        clean.push(")", []);
        rest.push("))", []);
        for (index, (table, days)) in [("events", clean), ("events FINAL", rest)]
            .into_iter()
            .enumerate()
        {
            let lead = if index == 0 { " FROM (" } else { " UNION ALL" };
            sql.push(
                &format!("{lead} SELECT {columns} FROM {table} WHERE {}", days.text),
                days.binds,
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
    read_consistent_with::<T, T>(client, build, |row| row).await
}

/// Like [`read_consistent`] for rows that borrow from the cursor: `keep`
/// makes what is kept of each.
pub async fn read_consistent_with<T, U>(
    client: &clickhouse::Client,
    build: impl Fn(&Snapshot) -> Sql,
    keep: impl Fn(T::Value<'_>) -> U,
) -> Result<Vec<U>>
where
    T: clickhouse::RowRead,
{
    let before = Snapshot::take(client).await?;
    let rows = fetch_kept::<T, U>(client, build(&before), &keep).await?;
    if before.clean.is_empty() || Snapshot::take(client).await?.covers(&before) {
        return Ok(rows);
    }
    fetch_kept::<T, U>(client, build(&Snapshot::all_final()), &keep).await
}

async fn fetch_kept<T, U>(
    client: &clickhouse::Client,
    sql: Sql,
    keep: &impl Fn(T::Value<'_>) -> U,
) -> Result<Vec<U>>
where
    T: clickhouse::RowRead,
{
    let mut cursor = sql.query(client).fetch::<T>()?;
    let mut kept = Vec::new();
    while let Some(row) = cursor.next().await? {
        kept.push(keep(row));
    }
    Ok(kept)
}

impl Snapshot {
    /// Whether every clean day of `earlier` still has the same single part.
    fn covers(&self, earlier: &Self) -> bool {
        earlier
            .clean
            .iter()
            .all(|(first, part)| self.clean.get(first) == Some(part))
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
            clean: [(100, ("a".into(), 199)), (300, ("b".into(), 399))].into(),
        };
        let split = snapshot.from_events("type", &conditions);
        assert_eq!(
            split.text,
            " FROM ( SELECT type FROM events WHERE (timestamp >= toDateTime(?) AND timestamp <= toDateTime(?) \
             OR timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)) AND project_id = ? \
             UNION ALL SELECT type FROM events FINAL WHERE (timestamp < toDateTime(?) \
             OR (timestamp > toDateTime(?) AND timestamp < toDateTime(?)) \
             OR (timestamp > toDateTime(?))) AND project_id = ?) WHERE 1"
        );
        let bound: Vec<Bound> = [100, 199, 300, 399].into_iter().map(Bound::Int).collect();
        assert_eq!(split.binds[..4], bound[..]);
        let rest: Vec<Bound> = [100, 199, 300, 399].into_iter().map(Bound::Int).collect();
        assert_eq!(split.binds[5..9], rest[..]);
        let later = Snapshot {
            clean: [(100, ("a".into(), 199)), (300, ("c".into(), 399))].into(),
        };
        assert!(snapshot.covers(&snapshot));
        assert!(!later.covers(&snapshot), "a new part replaced b");
        assert!(snapshot.covers(&Snapshot::all_final()));
    }
}
