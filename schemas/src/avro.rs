//! Avro single-object encoding of [`Event`], the value format of the events topic.
//!
//! A value is `C3 01`, the schema's 8-byte CRC-64-AVRO (Rabin) fingerprint in
//! little-endian order, then the Avro binary body. Any Avro library can read it
//! with `avro/event.avsc`; no schema registry is involved. The codec is written
//! by hand for this one schema because it sits on the hot path of both the
//! gateway and the processor; the tests check it against the reference
//! `apache-avro` implementation.

use std::sync::LazyLock;

use thiserror::Error;

use crate::event::{Event, EventOf};

/// The writer schema, as shipped to users.
pub const EVENT_SCHEMA_JSON: &str = include_str!("../avro/event.avsc");

/// The Parsing Canonical Form of [`EVENT_SCHEMA_JSON`]; its fingerprint names
/// the schema inside every value.
pub const EVENT_SCHEMA_CANONICAL: &str = concat!(
    r#"{"name":"dev.sluice.Event","type":"record","fields":["#,
    r#"{"name":"event_id","type":"string"},"#,
    r#"{"name":"project_id","type":"string"},"#,
    r#"{"name":"type","type":"string"},"#,
    r#"{"name":"timestamp","type":"long"},"#,
    r#"{"name":"received_at","type":"long"},"#,
    r#"{"name":"user_id","type":["null","string"]},"#,
    r#"{"name":"session_id","type":["null","string"]},"#,
    r#"{"name":"source","type":["null","string"]},"#,
    r#"{"name":"duration_ms","type":["null","double"]},"#,
    r#"{"name":"status","type":["null","string"]},"#,
    r#"{"name":"tags","type":{"type":"array","items":"string"}},"#,
    r#"{"name":"properties","type":"string"},"#,
    r#"{"name":"client_ip","type":["null","string"]},"#,
    r#"{"name":"user_agent","type":["null","string"]}]}"#
);

/// CRC-64-AVRO fingerprint of the event schema.
pub const EVENT_SCHEMA_FINGERPRINT: u64 = rabin_fingerprint(EVENT_SCHEMA_CANONICAL.as_bytes());

/// The fingerprint that the Rust `apache-avro` crate (0.21) computes for the
/// same schema: it keeps `{"type":"long"}` for logical types where the
/// specification's canonical form has `"long"`. Accepted on read so that
/// producers using that crate are not sent to the dead-letter topic.
pub static EVENT_SCHEMA_FINGERPRINT_AVRO_RS: LazyLock<u64> =
    LazyLock::new(|| rabin_fingerprint(avro_rs_canonical_form().as_bytes()));

fn avro_rs_canonical_form() -> String {
    EVENT_SCHEMA_CANONICAL.replace(r#""type":"long"}"#, r#""type":{"type":"long"}}"#)
}

/// The two marker bytes that open every single-object encoded value.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];

const HEADER_LEN: usize = 10;

/// Why a topic value could not be read as an event.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AvroError {
    #[error("not Avro single-object encoding (no C3 01 marker and 8-byte fingerprint)")]
    NotSingleObject,
    #[error(
        "unknown Avro schema fingerprint {0:#018x}; expected the dev.sluice.Event schema's {EVENT_SCHEMA_FINGERPRINT:#018x}"
    )]
    UnknownSchema(u64),
    #[error(
        "the Avro schema fingerprint is written big-endian; single-object encoding puts it little-endian (bytes {:02x?})",
        EVENT_SCHEMA_FINGERPRINT.to_le_bytes()
    )]
    BigEndianFingerprint,
    #[error("value ends inside field `{0}`")]
    Truncated(&'static str),
    #[error("field `{field}`: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("{0} bytes left over after the record")]
    TrailingBytes(usize),
}

/// Encodes an event as a single-object Avro value.
pub fn encode_event<S: AsRef<str>>(event: &EventOf<S>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 64 + event.properties.as_ref().len());
    encode_event_into(event, &mut out);
    out
}

/// Appends an event's single-object Avro value to `out` (one buffer can
/// hold a whole request's values).
pub fn encode_event_into<S: AsRef<str>>(event: &EventOf<S>, out: &mut Vec<u8>) {
    out.extend_from_slice(&SINGLE_OBJECT_MARKER);
    out.extend_from_slice(&EVENT_SCHEMA_FINGERPRINT.to_le_bytes());
    let mut body = Writer(out);
    body.string(text(&event.event_id));
    body.string(text(&event.project_id));
    body.string(text(&event.event_type));
    body.long(event.timestamp_ms);
    body.long(event.received_at_ms);
    body.optional_string(optional(&event.user_id));
    body.optional_string(optional(&event.session_id));
    body.optional_string(optional(&event.source));
    match event.duration_ms {
        None => body.long(0),
        Some(ms) => {
            body.long(1);
            body.0.extend_from_slice(&ms.to_le_bytes());
        }
    }
    body.optional_string(optional(&event.status));
    if !event.tags.is_empty() {
        body.long(event.tags.len() as i64);
        for tag in &event.tags {
            body.string(text(tag));
        }
    }
    body.long(0);
    body.string(text(&event.properties));
    body.optional_string(optional(&event.client_ip));
    body.optional_string(optional(&event.user_agent));
}

fn text<S: AsRef<str>>(field: &S) -> &str {
    field.as_ref()
}

fn optional<S: AsRef<str>>(field: &Option<S>) -> Option<&str> {
    field.as_ref().map(AsRef::as_ref)
}

/// Tells whether a topic value claims to be single-object Avro (as opposed to JSON).
pub fn is_single_object(value: &[u8]) -> bool {
    value.starts_with(&SINGLE_OBJECT_MARKER)
}

/// Decodes a single-object Avro value written with the event schema.
pub fn decode_event(value: &[u8]) -> Result<Event, AvroError> {
    if value.len() < HEADER_LEN || !is_single_object(value) {
        return Err(AvroError::NotSingleObject);
    }
    let mut fingerprint = [0u8; 8];
    fingerprint.copy_from_slice(&value[2..HEADER_LEN]);
    let fingerprint = u64::from_le_bytes(fingerprint);
    if fingerprint != EVENT_SCHEMA_FINGERPRINT && fingerprint != *EVENT_SCHEMA_FINGERPRINT_AVRO_RS {
        // An easy slip with libraries that print the fingerprint as hex.
        if fingerprint.swap_bytes() == EVENT_SCHEMA_FINGERPRINT {
            return Err(AvroError::BigEndianFingerprint);
        }
        return Err(AvroError::UnknownSchema(fingerprint));
    }
    let mut body = Reader {
        bytes: &value[HEADER_LEN..],
    };
    let event = Event {
        event_id: body.string("event_id")?,
        project_id: body.string("project_id")?,
        event_type: body.string("type")?,
        timestamp_ms: body.long("timestamp")?,
        received_at_ms: body.long("received_at")?,
        user_id: body.optional_string("user_id")?,
        session_id: body.optional_string("session_id")?,
        source: body.optional_string("source")?,
        duration_ms: body.optional_double("duration_ms")?,
        status: body.optional_string("status")?,
        tags: body.string_array("tags")?,
        properties: body.string("properties")?,
        client_ip: body.optional_string("client_ip")?,
        user_agent: body.optional_string("user_agent")?,
    };
    match body.bytes.len() {
        0 => Ok(event),
        left => Err(AvroError::TrailingBytes(left)),
    }
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    /// Zig-zag variable-length encoding, as Avro writes `int` and `long`.
    fn long(&mut self, value: i64) {
        let mut n = ((value << 1) ^ (value >> 63)) as u64;
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn string(&mut self, text: &str) {
        self.long(text.len() as i64);
        self.0.extend_from_slice(text.as_bytes());
    }

    fn optional_string(&mut self, text: Option<&str>) {
        match text {
            None => self.long(0),
            Some(text) => {
                self.long(1);
                self.string(text);
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn long(&mut self, field: &'static str) -> Result<i64, AvroError> {
        let mut n: u64 = 0;
        for (index, byte) in self.bytes.iter().enumerate().take(10) {
            n |= u64::from(byte & 0x7F) << (7 * index);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[index + 1..];
                return Ok(((n >> 1) as i64) ^ -((n & 1) as i64));
            }
        }
        if self.bytes.len() < 10 {
            Err(AvroError::Truncated(field))
        } else {
            Err(AvroError::Invalid {
                field,
                reason: "variable-length integer longer than 10 bytes",
            })
        }
    }

    fn take(&mut self, field: &'static str, len: usize) -> Result<&[u8], AvroError> {
        if len > self.bytes.len() {
            return Err(AvroError::Truncated(field));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn string(&mut self, field: &'static str) -> Result<String, AvroError> {
        let len = usize::try_from(self.long(field)?).map_err(|_| AvroError::Invalid {
            field,
            reason: "negative string length",
        })?;
        let bytes = self.take(field, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| AvroError::Invalid {
            field,
            reason: "string is not valid UTF-8",
        })
    }

    fn union_branch(&mut self, field: &'static str) -> Result<bool, AvroError> {
        match self.long(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(AvroError::Invalid {
                field,
                reason: "union branch must be 0 (null) or 1",
            }),
        }
    }

    fn optional_string(&mut self, field: &'static str) -> Result<Option<String>, AvroError> {
        if self.union_branch(field)? {
            self.string(field).map(Some)
        } else {
            Ok(None)
        }
    }

    fn optional_double(&mut self, field: &'static str) -> Result<Option<f64>, AvroError> {
        if !self.union_branch(field)? {
            return Ok(None);
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(field, 8)?);
        Ok(Some(f64::from_le_bytes(bytes)))
    }

    fn string_array(&mut self, field: &'static str) -> Result<Vec<String>, AvroError> {
        let mut items = Vec::new();
        loop {
            let mut count = self.long(field)?;
            if count == 0 {
                return Ok(items);
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                count = count.checked_neg().ok_or(AvroError::Invalid {
                    field,
                    reason: "array block count out of range",
                })?;
                self.long(field)?;
            }
            // Each item takes at least one byte, which bounds what a hostile count can allocate.
            if count as u64 > self.bytes.len() as u64 {
                return Err(AvroError::Truncated(field));
            }
            items.reserve(count as usize);
            for _ in 0..count {
                items.push(self.string(field)?);
            }
        }
    }
}

/// CRC-64-AVRO, the fingerprint the Avro specification defines for single-object encoding.
pub const fn rabin_fingerprint(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut bit = 0;
        while bit < 8 {
            fp = (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)));
            bit += 1;
        }
        table[i] = fp;
        i += 1;
    }
    let mut fp = EMPTY;
    let mut at = 0;
    while at < bytes.len() {
        fp = (fp >> 8) ^ table[((fp ^ bytes[at] as u64) & 0xff) as usize];
        at += 1;
    }
    fp
}

#[cfg(test)]
mod tests {
    use apache_avro::rabin::Rabin;
    use apache_avro::types::Value as AvroValue;
    use apache_avro::{Schema, from_avro_datum, to_avro_datum};

    use super::*;

    fn sample() -> Event {
        Event {
            event_id: "0190c4a8-7d1e-7000-8000-000000000001".into(),
            project_id: "acme".into(),
            event_type: "page_view".into(),
            timestamp_ms: 1_700_000_000_123,
            received_at_ms: 1_700_000_000_456,
            user_id: Some("user-ü".into()),
            session_id: None,
            source: Some("web".into()),
            duration_ms: Some(12.75),
            status: Some("200".into()),
            tags: vec!["a".into(), "b".into()],
            properties: r#"{"path":"/"}"#.into(),
            client_ip: Some("192.0.2.1".into()),
            user_agent: None,
        }
    }

    fn schema() -> Schema {
        Schema::parse_str(EVENT_SCHEMA_JSON).unwrap()
    }

    #[test]
    fn canonical_form_and_fingerprint_match_the_reference_implementation() {
        let schema = schema();
        // apache-avro keeps logical types' primitive in object form; the
        // specification (and Java's SchemaNormalization) reduce it to a name.
        let spec_form = schema
            .canonical_form()
            .replace(r#"{"type":"long"}"#, r#""long""#);
        assert_eq!(spec_form, EVENT_SCHEMA_CANONICAL);
        assert_eq!(schema.canonical_form(), avro_rs_canonical_form());
        let reference = schema.fingerprint::<Rabin>().bytes;
        assert_eq!(reference, (*EVENT_SCHEMA_FINGERPRINT_AVRO_RS).to_le_bytes());
        let plain = Schema::parse_str(EVENT_SCHEMA_CANONICAL).unwrap();
        assert_eq!(
            plain.fingerprint::<Rabin>().bytes,
            EVENT_SCHEMA_FINGERPRINT.to_le_bytes()
        );
    }

    #[test]
    fn accepts_the_apache_avro_crate_fingerprint() {
        let mut encoded = encode_event(&sample());
        encoded[2..HEADER_LEN].copy_from_slice(&(*EVENT_SCHEMA_FINGERPRINT_AVRO_RS).to_le_bytes());
        assert_eq!(decode_event(&encoded).unwrap(), sample());
    }

    #[test]
    fn round_trips() {
        let event = sample();
        assert_eq!(decode_event(&encode_event(&event)).unwrap(), event);
        let bare = Event {
            tags: vec![],
            duration_ms: None,
            user_id: None,
            ..sample()
        };
        assert_eq!(decode_event(&encode_event(&bare)).unwrap(), bare);
    }

    #[test]
    fn reference_implementation_reads_what_we_write_and_vice_versa() {
        let schema = schema();
        let encoded = encode_event(&sample());
        let mut body = &encoded[HEADER_LEN..];
        let value = from_avro_datum(&schema, &mut body, None).unwrap();
        let AvroValue::Record(fields) = &value else {
            panic!("not a record: {value:?}")
        };
        assert_eq!(
            fields[2],
            ("type".into(), AvroValue::String("page_view".into()))
        );
        assert_eq!(
            fields[3],
            (
                "timestamp".into(),
                AvroValue::TimestampMillis(1_700_000_000_123)
            )
        );

        let written = to_avro_datum(&schema, value).unwrap();
        let mut framed = encoded[..HEADER_LEN].to_vec();
        framed.extend_from_slice(&written);
        assert_eq!(decode_event(&framed).unwrap(), sample());
    }

    #[test]
    fn rejects_hostile_values_without_panicking() {
        let encoded = encode_event(&sample());
        assert_eq!(
            decode_event(b"{\"type\":1}"),
            Err(AvroError::NotSingleObject)
        );
        for cut in HEADER_LEN..encoded.len() {
            assert!(decode_event(&encoded[..cut]).is_err(), "cut at {cut}");
        }
        let mut other_schema = encoded.clone();
        other_schema[2] ^= 0xFF;
        assert!(matches!(
            decode_event(&other_schema),
            Err(AvroError::UnknownSchema(_))
        ));
        // As README's "Writing to Kafka directly" gives it.
        assert_eq!(
            EVENT_SCHEMA_FINGERPRINT.to_le_bytes(),
            [0x6c, 0x67, 0x3b, 0x5f, 0x4a, 0x50, 0xd0, 0xb8]
        );
        let mut big_endian = encoded.clone();
        big_endian[2..HEADER_LEN].reverse();
        let error = decode_event(&big_endian).unwrap_err();
        assert_eq!(error, AvroError::BigEndianFingerprint);
        assert!(error.to_string().contains("little-endian"), "{error}");
        let mut trailing = encoded.clone();
        trailing.push(0);
        assert_eq!(decode_event(&trailing), Err(AvroError::TrailingBytes(1)));

        // A string claiming a huge length must not allocate it.
        let mut huge = encoded[..HEADER_LEN].to_vec();
        huge.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]);
        assert_eq!(decode_event(&huge), Err(AvroError::Truncated("event_id")));
    }

    #[test]
    fn zigzag_matches_the_specification() {
        let mut out = Vec::new();
        let mut writer = Writer(&mut out);
        for value in [0, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            writer.long(value);
        }
        let mut reader = Reader { bytes: &out };
        for value in [0, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            assert_eq!(reader.long("n").unwrap(), value);
        }
        assert_eq!(&out[..5], &[0x00, 0x01, 0x02, 0x7F, 0x80]);
    }
}
