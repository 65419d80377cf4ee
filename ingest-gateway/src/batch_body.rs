//! The two batch bodies, `{"events": [...]}` and Segment's `{"batch": [...]}`,
//! read so that memory follows the batch limit, not the body: at most
//! `--max-batch-events` events are kept, the rest only read and counted
//! (a batch over the limit is refused by its count alone).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use sluice_schemas::validate::RawEvent;

use crate::body::{BoundedList, KeepAtMost};

/// `{"events": [...]}`: each kept event already split into its fields, so
/// that its text is read once.
pub struct NativeBatch<'a> {
    pub events: BoundedList<RawEvent<'a>>,
}

/// Reads a [`NativeBatch`], keeping at most `.0` events.
pub struct NativeBatchReader(pub usize);

impl<'de> DeserializeSeed<'de> for NativeBatchReader {
    type Value = NativeBatch<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NativeBatchReader {
    type Value = NativeBatch<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object {"events": [...]}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut events = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "events" {
                return Err(de::Error::unknown_field(&key, &["events"]));
            }
            let list = map.next_value_seed(KeepAtMost::new(self.0))?;
            set_once(&mut events, list, "events")?;
        }
        let events = events.ok_or_else(|| de::Error::missing_field("events"))?;
        Ok(NativeBatch { events })
    }
}

/// Segment's batch body, as its server SDKs send it.
pub struct SegmentBatch<'a> {
    pub batch: BoundedList<&'a RawValue>,
    pub context: Option<Value>,
    pub sent_at: Option<Value>,
    pub write_key: Option<String>,
}

/// Reads a [`SegmentBatch`], keeping at most `.0` messages. Fields other
/// than these four are ignored, as Segment's own API does.
pub struct SegmentBatchReader(pub usize);

impl<'de> DeserializeSeed<'de> for SegmentBatchReader {
    type Value = SegmentBatch<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SegmentBatchReader {
    type Value = SegmentBatch<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object {"batch": [...]}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut batch, mut context, mut sent_at, mut write_key) = (None, None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "batch" => {
                    let list = map.next_value_seed(KeepAtMost::new(self.0))?;
                    set_once(&mut batch, list, "batch")?;
                }
                "context" => set_once(&mut context, map.next_value()?, "context")?,
                "sentAt" => set_once(&mut sent_at, map.next_value()?, "sentAt")?,
                "writeKey" => set_once(&mut write_key, map.next_value()?, "writeKey")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(SegmentBatch {
            batch: batch.ok_or_else(|| de::Error::missing_field("batch"))?,
            context: context.flatten(),
            sent_at: sent_at.flatten(),
            write_key: write_key.flatten(),
        })
    }
}

/// Sets a field met for the first time; a second one is an error, as serde's
/// derived readers have it.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::body::parse_json_object_with;

    #[test]
    fn a_native_batch_keeps_at_most_its_limit_and_counts_every_event() {
        let body = json!({"events": [{"type": "a"}, 7, {}, {"type": "b"}]}).to_string();
        let batch = parse_json_object_with(body.as_bytes(), NativeBatchReader(2)).unwrap();
        assert_eq!((batch.events.kept.len(), batch.events.len), (2, 4));
        for refused in [
            r#"{"evnts": []}"#,
            r#"{}"#,
            r#"{"events": [], "events": []}"#,
            r#"{"events": {}}"#,
            r#"{"events": [1, 2, }"#,
        ] {
            assert!(
                parse_json_object_with(refused.as_bytes(), NativeBatchReader(10)).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_segment_batch_reads_its_four_fields_and_ignores_the_rest() {
        let body = json!({
            "batch": [{"type": "track"}, {"type": "identify"}, {"type": "page"}],
            "context": {"library": {"name": "analytics-node"}},
            "sentAt": "2024-05-01T12:00:00.000Z",
            "writeKey": "wk",
            "integrations": {"All": true},
            "context2": null,
        })
        .to_string();
        let batch = parse_json_object_with(body.as_bytes(), SegmentBatchReader(2)).unwrap();
        assert_eq!((batch.batch.kept.len(), batch.batch.len), (2, 3));
        assert_eq!(batch.context.unwrap()["library"]["name"], "analytics-node");
        assert_eq!(batch.sent_at.unwrap(), "2024-05-01T12:00:00.000Z");
        assert_eq!(batch.write_key.as_deref(), Some("wk"));
        let nulls = r#"{"batch": [], "context": null, "sentAt": null, "writeKey": null}"#;
        let batch = parse_json_object_with(nulls.as_bytes(), SegmentBatchReader(2)).unwrap();
        assert!(batch.context.is_none() && batch.sent_at.is_none() && batch.write_key.is_none());
        for refused in [r#"{"context": {}}"#, r#"{"batch": [], "batch": []}"#] {
            assert!(parse_json_object_with(refused.as_bytes(), SegmentBatchReader(2)).is_err());
        }
    }
}
