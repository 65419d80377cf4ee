//! Reading raw events and rollups without paying for `FINAL` where it
//! changes nothing.
//!
//! `FINAL` collapses copies of a row (replays, retries) that sit in
//! different parts, or in one part that no merge has gone over yet. It costs
//! a merge at read time, up to twenty times the plain read on 18.16. A day
//! partition made of a single part that is itself the product of a merge
//! (`level > 0`) holds no copies: such days are read plainly, the others with
//! `FINAL`. For rollups a single part of any level is clean: one insert of
//! the processor never holds two rows with one key (a window row is keyed by
//! the offset of its first event, and emitted once), so copies only ever
//! come from separate inserts. Both halves name their days by event-time ranges (the clean
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

/// A day-partitioned table whose copies `FINAL` collapses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    /// The `DateTime` column the days are partitioned by.
    pub time_column: &'static str,
    /// The lowest level at which a day's single part holds no copies.
    pub clean_level: u32,
}

pub const EVENTS: Table = Table {
    name: "events",
    time_column: "timestamp",
    clean_level: 1,
};

pub const ROLLUPS: Table = Table {
    name: "rollups",
    time_column: "minute",
    clean_level: 0,
};

/// Like `rollups`: one insert never holds two rows with one key.
pub const PROPERTY_ROLLUPS: Table = Table {
    name: "property_rollups",
    ..ROLLUPS
};

/// The day partitions of a table that need no `FINAL`: the name of their
/// single part by its first time, and its last time (Unix seconds, both
/// inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    table: Table,
    clean: BTreeMap<u32, (String, u32)>,
}

#[derive(Debug, Row, Deserialize)]
struct CleanPart {
    part: String,
    first: u32,
    last: u32,
}

impl Snapshot {
    /// A snapshot of `events` with no clean day: `FINAL` everywhere.
    pub fn all_final() -> Self {
        Self::all_final_of(EVENTS)
    }

    pub fn all_final_of(table: Table) -> Self {
        Self {
            table,
            clean: BTreeMap::new(),
        }
    }

    pub async fn take(client: &clickhouse::Client, table: Table) -> Result<Self> {
        let parts = client
            .query(
                "SELECT any(name) AS part, toUInt32(min(min_time)) AS first,
                        toUInt32(max(max_time)) AS last
                 FROM system.parts
                 WHERE database = currentDatabase() AND table = ? AND active
                 GROUP BY partition HAVING count() = 1 AND min(level) >= ?",
            )
            .bind(table.name)
            .bind(table.clean_level)
            .fetch_all::<CleanPart>()
            .await?;
        Ok(Self {
            table,
            clean: parts
                .into_iter()
                .map(|p| (p.first, (p.part, p.last)))
                .collect(),
        })
    }

    /// `FROM <table> WHERE conditions`, where `conditions` (starting with
    /// ` AND`) restrict the rows and `columns` are what the outer query uses.
    pub fn from(&self, columns: &str, conditions: &Sql) -> Sql {
        let Table {
            name, time_column, ..
        } = self.table;
        let mut sql = Sql::default();
        if self.clean.is_empty() {
            sql.push(&format!(" FROM {name} FINAL WHERE 1"), []);
            sql.push(&conditions.text, conditions.binds.iter().cloned());
            return sql;
        }
        // The clean parts' time ranges, and what lies before, between and
        // after them; they never overlap, each being one day.
        let mut clean = Sql::new("(");
        let mut rest = Sql::new(&format!("({time_column} < toDateTime(?)"));
        let mut first = true;
        for (start, (_, end)) in &self.clean {
            let (start, end) = (Bound::Int(i64::from(*start)), Bound::Int(i64::from(*end)));
            let or = if first { "" } else { " OR " };
            clean.push(
                &format!("{or}{time_column} >= toDateTime(?) AND {time_column} <= toDateTime(?)"),
                [start.clone(), end.clone()],
            );
            if first {
                rest.binds.push(start);
            } else {
                rest.push(&format!(" AND {time_column} < toDateTime(?))"), [start]);
            }
            rest.push(&format!(" OR ({time_column} > toDateTime(?)"), [end]);
            first = false;
        }
        clean.push(")", []);
        rest.push("))", []);
        let merged = format!("{name} FINAL");
        for (index, (table, days)) in [(name, clean), (merged.as_str(), rest)]
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

/// Runs the query that `build` makes for a snapshot of `table`, and makes
/// sure the answer is one `FINAL` everywhere would give (see the module
/// docs).
pub async fn read_consistent<T>(
    client: &clickhouse::Client,
    table: Table,
    build: impl Fn(&Snapshot) -> Sql,
) -> Result<Vec<T>>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    read_consistent_with::<T, T>(client, table, build, |row| row).await
}

/// Like [`read_consistent`] for rows that borrow from the cursor: `keep`
/// makes what is kept of each.
pub async fn read_consistent_with<T, U>(
    client: &clickhouse::Client,
    table: Table,
    build: impl Fn(&Snapshot) -> Sql,
    keep: impl Fn(T::Value<'_>) -> U,
) -> Result<Vec<U>>
where
    T: clickhouse::RowRead,
{
    fold_consistent::<T, Vec<U>>(client, table, build, |kept, row| {
        kept.push(keep(row));
        Ok(())
    })
    .await
}

/// Folds the rows of the query that `build` makes into a fresh `A::default()`
/// with `add`, as [`read_consistent`] reads them: when the snapshot did not
/// hold, the fold is dropped and done again over a read with `FINAL`.
pub async fn fold_consistent<T, A>(
    client: &clickhouse::Client,
    table: Table,
    build: impl Fn(&Snapshot) -> Sql,
    mut add: impl FnMut(&mut A, T::Value<'_>) -> Result<()>,
) -> Result<A>
where
    T: clickhouse::RowRead,
    A: Default,
{
    let before = Snapshot::take(client, table).await?;
    let folded = fold::<T, A>(client, build(&before), &mut add).await?;
    if before.clean.is_empty() || Snapshot::take(client, table).await?.covers(&before) {
        return Ok(folded);
    }
    fold::<T, A>(client, build(&Snapshot::all_final_of(table)), &mut add).await
}

async fn fold<T, A>(
    client: &clickhouse::Client,
    sql: Sql,
    add: &mut impl FnMut(&mut A, T::Value<'_>) -> Result<()>,
) -> Result<A>
where
    T: clickhouse::RowRead,
    A: Default,
{
    let mut cursor = sql.query(client).fetch::<T>()?;
    let mut folded = A::default();
    while let Some(row) = cursor.next().await? {
        add(&mut folded, row)?;
    }
    Ok(folded)
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
        let plain = Snapshot::all_final().from("type", &conditions);
        assert_eq!(plain.text, " FROM events FINAL WHERE 1 AND project_id = ?");
        let snapshot = Snapshot {
            table: EVENTS,
            clean: [(100, ("a".into(), 199)), (300, ("b".into(), 399))].into(),
        };
        let split = snapshot.from("type", &conditions);
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
            table: EVENTS,
            clean: [(100, ("a".into(), 199)), (300, ("c".into(), 399))].into(),
        };
        assert!(snapshot.covers(&snapshot));
        assert!(!later.covers(&snapshot), "a new part replaced b");
        assert!(snapshot.covers(&Snapshot::all_final()));
    }
}
