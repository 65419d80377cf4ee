//! The live topic's message: the current aggregate of one window in one
//! Kafka partition, for the query API's WebSocket pushes.
//!
//! The processor publishes a message per changed window at most every 250 ms,
//! and one with `"final": true` when the window closes. The key of the Kafka
//! message is the project id. Each message is a partial: the window's events
//! in one source partition. A reader keeps the latest message per
//! (window key, `kafka_partition`, `seq`) and merges their `aggregate`s
//! ([`LiveUpdate::aggregate`]) for the window's total; the numbers beside it
//! are that one partial's, for display. Late events that arrive after a
//! window closed reach ClickHouse as corrections, not this topic.
//!
//! ```json
//! {"project_id":"p1","minute_ms":1700000040000,"type":"page_view","source":"web",
//!  "status":"200","kafka_partition":3,"seq":1042,"final":false,
//!  "count":12,"users":9,"sessions":10,"duration_count":12,"duration_sum":1804.5,
//!  "duration_min":3.0,"duration_max":512.0,"duration_p50":97.6,"duration_p90":402.1,
//!  "duration_p95":470.3,"duration_p99":509.5,"aggregate":"AQwMu..."}
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::{Aggregate, DecodeError, Summary, WindowKey};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveUpdate {
    pub project_id: String,
    /// Window start, Unix milliseconds.
    pub minute_ms: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub status: String,
    /// The source partition this partial covers.
    pub kafka_partition: u32,
    /// The partial's identity within the partition (the offset of its first
    /// event), the same as the `seq` of the rollup row it becomes.
    pub seq: u64,
    /// The window is closed: this partial is complete and stored.
    #[serde(rename = "final")]
    pub is_final: bool,
    #[serde(flatten)]
    pub summary: Summary,
    /// [`Aggregate::to_bytes`] in standard base64.
    pub aggregate: String,
}

impl LiveUpdate {
    pub fn new(
        key: &WindowKey,
        aggregate: &Aggregate,
        kafka_partition: u32,
        seq: u64,
        is_final: bool,
    ) -> Self {
        Self {
            project_id: key.project_id.clone(),
            minute_ms: i64::from(key.minute) * 1000,
            event_type: key.event_type.clone(),
            source: key.source.clone(),
            status: key.status.clone(),
            kafka_partition,
            seq,
            is_final,
            summary: aggregate.summary(),
            aggregate: STANDARD.encode(aggregate.to_bytes()),
        }
    }

    pub fn key(&self) -> WindowKey {
        WindowKey {
            project_id: self.project_id.clone(),
            minute: u32::try_from(self.minute_ms / 1000).unwrap_or(0),
            event_type: self.event_type.clone(),
            source: self.source.clone(),
            status: self.status.clone(),
        }
    }

    /// The mergeable aggregate this message carries.
    pub fn aggregate(&self) -> Result<Aggregate, DecodeError> {
        let bytes = STANDARD
            .decode(&self.aggregate)
            .map_err(|_| DecodeError("aggregate is not base64"))?;
        Aggregate::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::Contribution;

    #[test]
    fn json_round_trip_keeps_the_aggregate() {
        let key = WindowKey {
            project_id: "p1".into(),
            minute: 1_700_000_040,
            event_type: "click".into(),
            source: "web".into(),
            status: "200".into(),
        };
        let mut aggregate = Aggregate::default();
        aggregate.add(Contribution {
            user_id: Some("u"),
            session_id: None,
            duration_ms: Some(12.0),
        });
        let update = LiveUpdate::new(&key, &aggregate, 3, 17, true);
        let json = serde_json::to_string(&update).unwrap();
        assert!(json.contains(r#""type":"click""#), "{json}");
        assert!(json.contains(r#""final":true"#), "{json}");
        assert!(json.contains(r#""count":1"#), "{json}");
        let back: LiveUpdate = serde_json::from_str(&json).unwrap();
        assert_eq!(back, update);
        assert_eq!(back.key(), key);
        assert_eq!(back.aggregate(), Ok(aggregate));
    }
}
