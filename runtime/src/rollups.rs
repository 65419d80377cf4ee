//! The ClickHouse rows of `rollups` and `property_rollups`, shared by the
//! processor (writes) and the query API (reads), and their conversion to and
//! from the rollup model.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use sluice_schemas::rollup::{Aggregate, DecodeError, Hll, QuantileSketch, WindowKey};

/// Defines a rollup row: the columns every rollup row has, then `extra`
/// dimension columns, with `new`, `key` and `aggregate`.
macro_rules! rollup_row {
    ($(#[$meta:meta])* $name:ident { $($(#[$extra_meta:meta])* $extra:ident: $extra_ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
        pub struct $name {
            pub project_id: String,
            /// Window start, Unix seconds (`DateTime`).
            pub minute: u32,
            #[serde(rename = "type")]
            pub event_type: String,
            pub source: String,
            pub status: String,
            pub kafka_partition: u32,
            pub seq: u64,
            pub count: u64,
            pub duration_count: u64,
            pub duration_sum_us: u64,
            pub duration_min: Option<f64>,
            pub duration_max: Option<f64>,
            #[serde(with = "serde_bytes")]
            pub users: Vec<u8>,
            #[serde(with = "serde_bytes")]
            pub sessions: Vec<u8>,
            #[serde(with = "serde_bytes")]
            pub durations: Vec<u8>,
            $($(#[$extra_meta])* pub $extra: $extra_ty,)*
        }

        impl $name {
            pub fn new(
                key: &WindowKey,
                aggregate: &Aggregate,
                kafka_partition: u32,
                seq: u64,
                $($extra: $extra_ty,)*
            ) -> Self {
                Self {
                    project_id: key.project_id.clone(),
                    minute: key.minute,
                    event_type: key.event_type.clone(),
                    source: key.source.clone(),
                    status: key.status.clone(),
                    kafka_partition,
                    seq,
                    count: aggregate.count,
                    duration_count: aggregate.duration_count,
                    duration_sum_us: aggregate.duration_sum_us,
                    duration_min: aggregate.duration_min,
                    duration_max: aggregate.duration_max,
                    users: aggregate.users.to_bytes(),
                    sessions: aggregate.sessions.to_bytes(),
                    durations: aggregate.durations.to_bytes(),
                    $($extra,)*
                }
            }

            pub fn key(&self) -> WindowKey {
                WindowKey {
                    project_id: self.project_id.clone(),
                    minute: self.minute,
                    event_type: self.event_type.clone(),
                    source: self.source.clone(),
                    status: self.status.clone(),
                }
            }

            /// The mergeable aggregate this row stores.
            pub fn aggregate(&self) -> Result<Aggregate, DecodeError> {
                Ok(Aggregate {
                    count: self.count,
                    duration_count: self.duration_count,
                    duration_sum_us: self.duration_sum_us,
                    duration_min: self.duration_min,
                    duration_max: self.duration_max,
                    users: Hll::from_bytes(&self.users)?,
                    sessions: Hll::from_bytes(&self.sessions)?,
                    durations: QuantileSketch::from_bytes(&self.durations)?,
                })
            }
        }
    };
}

rollup_row! {
    /// One partial aggregate of a window (see `sluice_schemas::ddl` for the
    /// table and why a window has several rows).
    RollupRow {}
}

rollup_row! {
    /// One partial aggregate of the events of a window that have one value
    /// of a rolled-up property (`property_rollups`): the same window split
    /// further by `property_value`. Events without the property have the
    /// empty value, so a window's rows for one key add up to its
    /// [`RollupRow`]s.
    PropertyRollupRow {
        property_key: String,
        /// As the raw path reads it: a string's value, other JSON as its text.
        property_value: String,
    }
}

#[cfg(test)]
mod tests {
    use sluice_schemas::rollup::Contribution;

    use super::*;

    #[test]
    fn row_round_trips_the_aggregate() {
        let key = WindowKey {
            project_id: "p".into(),
            minute: 60,
            event_type: "t".into(),
            source: "s".into(),
            status: String::new(),
        };
        let mut aggregate = Aggregate::default();
        aggregate.add(Contribution {
            user_id: Some("u"),
            session_id: Some("s"),
            duration_ms: Some(2.5),
        });
        let row = RollupRow::new(&key, &aggregate, 2, 9);
        assert_eq!(row.key(), key);
        assert_eq!(row.aggregate(), Ok(aggregate));
    }
}
