//! Seeded, realistic events in Sluice's HTTP shape, padded to a target size.
//!
//! Every event is a JSON object with the public fields (`event_id`, `type`,
//! `timestamp`, `user_id`, `session_id`, `source`, `duration_ms`, `status`,
//! `tags`, `properties`). The same seed always gives the same events, so two
//! runs (or the HTTP and Kafka modes of one run) send the same data.
//!
//! Each `event_id` ends in [`SEQ_DIGITS`] hex digits. Payloads are built once,
//! before the timed part, and [`Template::stamp`] rewrites those digits with a
//! fresh sequence number on every send: ids stay unique however often the
//! pre-built payloads are reused, at the cost of one copy per send.
//!
//! With [`EventSpec::stamp_send_time`] every event also carries the property
//! [`SENT_US_PROPERTY`], [`SENT_US_DIGITS`] decimal digits that
//! [`Template::stamp_sent`] sets to the send time (Unix µs), so a receiver
//! downstream can measure the latency from the send.

use serde_json::{Map, Value, json};
use sluice_schemas::time_format::format_rfc3339_ms;

/// Hex digits of the per-send sequence number at the end of every `event_id`.
pub const SEQ_DIGITS: usize = 16;

/// The property that carries the send time, when stamped.
pub const SENT_US_PROPERTY: &str = "sent_us";

/// Decimal digits of the send time in Unix microseconds (up to year 2286).
pub const SENT_US_DIGITS: usize = 16;

/// splitmix64: small, fast and stable across versions, so a seed means the
/// same events forever (a library RNG may change its stream between releases).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Picks from `(item, weight)` pairs in proportion to the weights.
    pub fn weighted<'a>(&mut self, items: &[(&'a str, u32)]) -> &'a str {
        let total: u32 = items.iter().map(|(_, weight)| weight).sum();
        let mut roll = self.below(u64::from(total)) as u32;
        for (item, weight) in items {
            if roll < *weight {
                return item;
            }
            roll -= weight;
        }
        items[items.len() - 1].0
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const TYPES: &[(&str, u32)] = &[
    ("page_view", 40),
    ("click", 22),
    ("search", 10),
    ("api_call", 12),
    ("add_to_cart", 5),
    ("error", 5),
    ("purchase", 2),
    ("signup", 2),
    ("logout", 2),
];
const SOURCES: &[(&str, u32)] = &[("web", 55), ("ios", 18), ("android", 17), ("server", 10)];
const STATUSES: &[(&str, u32)] = &[
    ("200", 80),
    ("201", 4),
    ("204", 3),
    ("304", 4),
    ("400", 3),
    ("401", 1),
    ("404", 3),
    ("500", 1),
    ("503", 1),
];
const PATHS: &[&str] = &[
    "/",
    "/pricing",
    "/docs/start",
    "/blog/launch",
    "/products/42",
    "/cart",
    "/checkout",
    "/account",
    "/search",
];
const TAGS: &[&str] = &["beta", "mobile", "new", "vip", "ab:b"];
const COUNTRIES: &[&str] = &["DE", "US", "FR", "GB", "JP", "BR", "IN", "NL"];

/// How to make events.
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub seed: u64,
    /// Target size of one event as compact JSON, in bytes.
    pub event_bytes: usize,
    /// Distinct users; sessions are a few per user.
    pub users: u64,
    /// Event times are spread over the `spread_ms` before `now_ms`.
    pub now_ms: i64,
    pub spread_ms: i64,
    /// Give every event the [`SENT_US_PROPERTY`] placeholder.
    pub stamp_send_time: bool,
}

/// Makes the `index`-th event of the seed's stream as a JSON object of
/// `spec.event_bytes` bytes (or the smallest it can be, if the target is below that).
pub fn make_event(spec: &EventSpec, index: u64) -> Value {
    let mut rng = Rng::new(spec.seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
    let event_type = rng.weighted(TYPES);
    // Squaring a uniform draw skews activity towards low user numbers, as real
    // traffic is skewed towards a few heavy users.
    let user = (rng.unit().powi(2) * spec.users as f64) as u64;
    let session = rng.below(4);
    let source = rng.weighted(SOURCES);
    let status = rng.weighted(STATUSES);
    let timestamp = spec.now_ms - rng.below(spec.spread_ms.max(1) as u64) as i64;
    // Roughly log-normal: most calls are fast, a few are slow.
    let duration_ms = ((rng.unit() * 6.0).exp() * 10.0).round() / 10.0;
    let tag_count = rng.below(3) as usize;
    let tags: Vec<&str> = (0..tag_count).map(|_| rng.pick(TAGS)).collect();

    let mut properties = Map::new();
    properties.insert("path".into(), rng.pick(PATHS).into());
    properties.insert("country".into(), rng.pick(COUNTRIES).into());
    if event_type == "purchase" || event_type == "add_to_cart" {
        properties.insert("cents".into(), rng.below(50_000).into());
    }
    if spec.stamp_send_time {
        properties.insert(SENT_US_PROPERTY.into(), "0".repeat(SENT_US_DIGITS).into());
    }
    properties.insert("pad".into(), "".into());

    let mut event = json!({
        "event_id": event_id(spec.seed, index),
        "type": event_type,
        "timestamp": format_rfc3339_ms(timestamp),
        "user_id": format!("u{user}"),
        "session_id": format!("s{user}-{session}"),
        "source": source,
        "duration_ms": duration_ms,
        "status": status,
        "tags": tags,
        "properties": properties,
    });
    let size = serde_json::to_vec(&event).map_or(0, |bytes| bytes.len());
    let pad = spec.event_bytes.saturating_sub(size);
    event["properties"]["pad"] = Value::String(padding(&mut rng, pad));
    event
}

/// The id of the `index`-th event: a seed prefix and a fixed-width hex
/// sequence, so that [`Template::stamp`] can rewrite the sequence in place.
pub fn event_id(seed: u64, index: u64) -> String {
    format!(
        "lg-{:08x}-{index:0width$x}",
        seed as u32,
        width = SEQ_DIGITS
    )
}

/// ASCII letters that need no JSON escaping, so the size is exact.
fn padding(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// A pre-built payload plus where the sequence digits of each event id sit in it.
#[derive(Debug, Clone)]
pub struct Template {
    pub bytes: Vec<u8>,
    /// Start of each id's [`SEQ_DIGITS`] digits, one per event, in event order.
    pub seq_offsets: Vec<usize>,
    /// Start of each send time's [`SENT_US_DIGITS`] digits (none unless stamped).
    pub sent_offsets: Vec<usize>,
}

impl Template {
    /// Finds the ids in `bytes` (in order) and remembers where their digits sit.
    ///
    /// Panics if an id is missing: the payload was not built from these ids.
    pub fn new(bytes: Vec<u8>, ids: &[String]) -> Self {
        let mut seq_offsets = Vec::with_capacity(ids.len());
        let mut from = 0;
        for id in ids {
            let at = find(&bytes[from..], id.as_bytes())
                .unwrap_or_else(|| panic!("event id {id} is not in the payload"))
                + from;
            seq_offsets.push(at + id.len() - SEQ_DIGITS);
            from = at + id.len();
        }
        let needle = format!(r#""{SENT_US_PROPERTY}":""#);
        let mut sent_offsets = Vec::new();
        let mut from = 0;
        while let Some(at) = find(&bytes[from..], needle.as_bytes()) {
            let digits = from + at + needle.len();
            sent_offsets.push(digits);
            from = digits + SENT_US_DIGITS;
        }
        Self {
            bytes,
            seq_offsets,
            sent_offsets,
        }
    }

    /// A copy whose events carry the sequence numbers `first_seq`, `first_seq + 1`, ...
    pub fn stamp(&self, first_seq: u64) -> Vec<u8> {
        let mut out = self.bytes.clone();
        for (i, &offset) in self.seq_offsets.iter().enumerate() {
            write_hex(&mut out[offset..offset + SEQ_DIGITS], first_seq + i as u64);
        }
        out
    }

    /// Whether the events carry a send time to stamp.
    pub fn has_send_time(&self) -> bool {
        !self.sent_offsets.is_empty()
    }

    /// [`Self::stamp`], and every event's send time set to `sent_us`.
    pub fn stamp_sent(&self, first_seq: u64, sent_us: u64) -> Vec<u8> {
        let mut out = self.stamp(first_seq);
        for &offset in &self.sent_offsets {
            write_decimal(&mut out[offset..offset + SENT_US_DIGITS], sent_us);
        }
        out
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn write_hex(out: &mut [u8], mut value: u64) {
    const HEX: &[u8] = b"0123456789abcdef";
    for byte in out.iter_mut().rev() {
        *byte = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

fn write_decimal(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(event_bytes: usize) -> EventSpec {
        EventSpec {
            seed: 7,
            event_bytes,
            users: 10_000,
            now_ms: 1_700_000_000_000,
            spread_ms: 60_000,
            stamp_send_time: false,
        }
    }

    #[test]
    fn events_have_exactly_the_target_size() {
        for target in [300, 512, 1024] {
            for index in 0..200 {
                let event = make_event(&spec(target), index);
                assert_eq!(serde_json::to_vec(&event).unwrap().len(), target);
            }
        }
    }

    #[test]
    fn a_target_below_the_minimum_gives_the_smallest_event() {
        let event = make_event(&spec(10), 3);
        assert_eq!(event["properties"]["pad"], "");
    }

    #[test]
    fn the_same_seed_gives_the_same_events() {
        assert_eq!(make_event(&spec(300), 5), make_event(&spec(300), 5));
        assert_ne!(make_event(&spec(300), 5), make_event(&spec(300), 6));
    }

    #[test]
    fn events_pass_the_gateway_validation() {
        let origin = sluice_schemas::Origin {
            project_id: Some("bench"),
            received_at_ms: 1_700_000_000_000,
            client_ip: None,
            user_agent: None,
            fallback_event_id: sluice_schemas::FallbackId::Given("x".into()),
        };
        for index in 0..100 {
            let event = make_event(&spec(300), index);
            let parsed = sluice_schemas::validate::parse_event(
                &event,
                origin.clone(),
                &sluice_schemas::Limits::default(),
            );
            assert!(parsed.is_ok(), "{event}: {parsed:?}");
        }
    }

    #[test]
    fn events_spread_over_types_users_and_statuses() {
        let events: Vec<Value> = (0..2000).map(|i| make_event(&spec(300), i)).collect();
        let distinct = |field: &str| {
            let mut values: Vec<String> = events.iter().map(|e| e[field].to_string()).collect();
            values.sort();
            values.dedup();
            values.len()
        };
        assert_eq!(distinct("type"), TYPES.len());
        assert_eq!(distinct("status"), STATUSES.len());
        assert!(distinct("user_id") > 500);
        assert!(distinct("session_id") > distinct("user_id"));
    }

    #[test]
    fn stamping_rewrites_every_id_and_nothing_else() {
        let ids: Vec<String> = (0..3).map(|i| event_id(7, i)).collect();
        let body = format!(r#"{{"events":["{}","{}","{}"]}}"#, ids[0], ids[1], ids[2]);
        let template = Template::new(body.clone().into_bytes(), &ids);
        let stamped = String::from_utf8(template.stamp(0x1234)).unwrap();
        let expected = body
            .replace(&ids[0], &event_id(7, 0x1234))
            .replace(&ids[1], &event_id(7, 0x1235))
            .replace(&ids[2], &event_id(7, 0x1236));
        assert_eq!(stamped, expected);
    }

    #[test]
    fn send_times_are_stamped_in_place_keeping_the_size() {
        let stamped_spec = EventSpec {
            stamp_send_time: true,
            ..spec(512)
        };
        let event = make_event(&stamped_spec, 4);
        let bytes = serde_json::to_vec(&event).unwrap();
        assert_eq!(bytes.len(), 512);
        let template = Template::new(bytes, &[event_id(7, 4)]);
        assert!(template.has_send_time());
        let stamped: Value =
            serde_json::from_slice(&template.stamp_sent(9, 1_700_000_000_123_456)).unwrap();
        assert_eq!(stamped["properties"][SENT_US_PROPERTY], "1700000000123456");
        assert_eq!(stamped["event_id"], event_id(7, 9));
        let plain = Template::new(
            serde_json::to_vec(&make_event(&spec(300), 4)).unwrap(),
            &[event_id(7, 4)],
        );
        assert!(!plain.has_send_time());
    }
}
