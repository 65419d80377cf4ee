//! Pre-built payloads for both modes, made before the timed part.

use anyhow::anyhow;
use serde_json::{Value, json};
use sluice_schemas::avro::encode_event;
use sluice_schemas::time_format::now_ms;
use sluice_schemas::validate::parse_event;
use sluice_schemas::{Limits, Origin};

use crate::events::{EventSpec, Template, event_id, make_event};
use crate::kafka::RecordTemplate;

/// How the HTTP body wraps its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyShape {
    /// `{"events":[...]}` for `POST /v1/events/batch`.
    Batch,
    /// One event object for `POST /v1/events`.
    Single,
}

/// Request bodies of `batch` events each, at least `distinct_events` events in
/// all. Returns the bodies and the mean size of one event as JSON.
pub fn http_bodies(
    spec: &EventSpec,
    batch: usize,
    shape: BodyShape,
    distinct_events: usize,
) -> (Vec<Template>, f64) {
    let requests = distinct_events.div_ceil(batch).max(1);
    let mut event_bytes = 0usize;
    let bodies = (0..requests)
        .map(|request| {
            let first = (request * batch) as u64;
            let indexes = first..first + batch as u64;
            let events: Vec<Value> = indexes.clone().map(|i| make_event(spec, i)).collect();
            event_bytes += events.iter().map(|e| e.to_string().len()).sum::<usize>();
            let ids: Vec<String> = indexes.map(|i| event_id(spec.seed, i)).collect();
            let body = match shape {
                BodyShape::Batch => json!({ "events": events }),
                BodyShape::Single => events.into_iter().next().unwrap_or_default(),
            };
            Template::new(body.to_string().into_bytes(), &ids)
        })
        .collect();
    (bodies, event_bytes as f64 / (requests * batch) as f64)
}

/// What the gateway adds to every event of the benchmark.
#[derive(Debug, Clone)]
pub struct GatewayOrigin {
    /// The project of the benchmark's API key.
    pub project_id: String,
    pub client_ip: String,
    pub user_agent: String,
}

/// The records the gateway would produce for the same events: validated and
/// enriched as the gateway does, Avro-encoded, keyed by the partition key.
/// Returns them with the mean key and value sizes.
pub fn kafka_records(
    spec: &EventSpec,
    origin: &GatewayOrigin,
    distinct_events: usize,
) -> anyhow::Result<(Vec<RecordTemplate>, f64, f64)> {
    let limits = Limits::default();
    let received_at_ms = now_ms();
    let count = distinct_events.max(1);
    let mut records = Vec::with_capacity(count);
    let (mut key_bytes, mut value_bytes) = (0usize, 0usize);
    for index in 0..count as u64 {
        let json = make_event(spec, index);
        let event = parse_event(
            &json,
            Origin {
                project_id: Some(&origin.project_id),
                received_at_ms,
                client_ip: Some(&origin.client_ip),
                user_agent: Some(&origin.user_agent),
                fallback_event_id: sluice_schemas::FallbackId::Given(String::new()),
            },
            &limits,
        )
        .map_err(|errors| anyhow!("generated event {index} is invalid: {errors:?}"))?;
        let key = event.partition_key().into_bytes();
        let value = encode_event(&event);
        key_bytes += key.len();
        value_bytes += value.len();
        let ids = [event.event_id];
        records.push(RecordTemplate {
            key: Template::new(key, &ids),
            value: Template::new(value, &ids),
        });
    }
    Ok((
        records,
        key_bytes as f64 / count as f64,
        value_bytes as f64 / count as f64,
    ))
}

#[cfg(test)]
mod tests {
    use sluice_schemas::avro::decode_event;

    use super::*;

    fn spec() -> EventSpec {
        EventSpec {
            seed: 1,
            event_bytes: 300,
            users: 1000,
            now_ms: now_ms(),
            spread_ms: 60_000,
            stamp_send_time: false,
        }
    }

    #[test]
    fn batch_bodies_hold_batch_events_with_stampable_ids() {
        let (bodies, event_bytes) = http_bodies(&spec(), 10, BodyShape::Batch, 25);
        assert_eq!(bodies.len(), 3);
        assert_eq!(event_bytes, 300.0);
        let body: Value = serde_json::from_slice(&bodies[1].stamp(500)).unwrap();
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.len(), 10);
        assert_eq!(events[0]["event_id"], event_id(1, 500));
        assert_eq!(events[9]["event_id"], event_id(1, 509));
    }

    #[test]
    fn single_bodies_are_one_event() {
        let (bodies, _) = http_bodies(&spec(), 1, BodyShape::Single, 2);
        let body: Value = serde_json::from_slice(&bodies[1].stamp(9)).unwrap();
        assert_eq!(body["event_id"], event_id(1, 9));
        assert_eq!(body.to_string().len(), 300);
    }

    #[test]
    fn records_decode_with_the_stamped_id_and_key() {
        let origin = GatewayOrigin {
            project_id: "bench".into(),
            client_ip: "127.0.0.1".into(),
            user_agent: "sluice-loadgen".into(),
        };
        let (records, key_bytes, _) = kafka_records(&spec(), &origin, 3).unwrap();
        let event = decode_event(&records[2].value.stamp(77)).unwrap();
        assert_eq!(event.event_id, event_id(1, 77));
        assert_eq!(event.project_id, "bench");
        assert_eq!(records[2].key.stamp(77), event.partition_key().into_bytes());
        assert_eq!(key_bytes as usize, event.partition_key().len());
    }

    #[test]
    fn records_carry_a_stampable_send_time_when_asked() {
        let origin = GatewayOrigin {
            project_id: "bench".into(),
            client_ip: "127.0.0.1".into(),
            user_agent: "sluice-loadgen".into(),
        };
        let spec = EventSpec {
            stamp_send_time: true,
            ..spec()
        };
        let (records, _, _) = kafka_records(&spec, &origin, 2).unwrap();
        let event = decode_event(&records[1].value.stamp_sent(5, 1_700_000_000_000_001)).unwrap();
        let properties: Value = serde_json::from_str(event.properties.as_ref()).unwrap();
        assert_eq!(properties["sent_us"], "1700000000000001");
        assert_eq!(event.event_id, event_id(1, 5));
    }
}
