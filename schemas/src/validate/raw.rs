//! The JSON scanner: one event split into its top-level fields as borrowed
//! raw JSON in one pass, without building a tree; strings read without a
//! copy unless they hold escapes; the kind of a raw value from its first
//! byte.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{KNOWN_FIELDS, MAX_FIELDS};

/// One event as JSON, split into its top-level fields but not read further:
/// what a batch body parses into in one pass (`Vec<RawEvent>`), so that no
/// event's text is scanned twice.
#[derive(Debug)]
pub enum RawEvent<'a> {
    /// The fields of an object, in order, each as borrowed raw JSON.
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    /// Anything but an object: refused, naming what it is.
    Other(&'static str),
}

impl RawEvent<'_> {
    /// Bytes of the event as JSON text, not counting whitespace between
    /// its top-level fields (nor fields past the most an event may have:
    /// such an event is refused anyway).
    pub fn json_len(&self) -> usize {
        match self {
            Self::Object(fields) => {
                let members: usize = fields
                    .iter()
                    .map(|(key, raw)| key.len() + raw.get().len() + 3)
                    .sum();
                // Braces, and commas between members.
                2 + members + fields.len().saturating_sub(1)
            }
            Self::Other(_) => 0,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for EventVisitor<'a> {
            type Value = RawEvent<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                // Past MAX_FIELDS the event is refused whole: later fields
                // are read (they must be valid JSON) but not kept, so a
                // hostile event of a million fields costs no memory.
                let mut fields = Vec::new();
                while let Some(Text(key)) = map.next_key()? {
                    if fields.capacity() == 0 {
                        // An event's usual fields in one allocation (`{}` needs none).
                        fields.reserve(KNOWN_FIELDS.len() + 1);
                    }
                    if fields.len() < MAX_FIELDS + 1 {
                        fields.push((key, map.next_value()?));
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(RawEvent::Object(fields))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(RawEvent::Other(RawKind::Array.name()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Null.name()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Boolean.name()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Number.name()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Number.name()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::Number.name()))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawEvent::Other(RawKind::String.name()))
            }
        }
        deserializer.deserialize_any(EventVisitor(std::marker::PhantomData))
    }
}

/// A JSON string, borrowed from the input unless it holds escapes.
pub(super) struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The text of a raw JSON value that is a string. Without escapes it is the
/// raw text between the quotes (a raw value is valid JSON, so that holds no
/// quote and no control character); with escapes serde undoes them.
pub(super) fn json_string(raw: &str) -> Result<Cow<'_, str>, serde_json::Error> {
    match raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) if !inner.contains('\\') => Ok(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<Text<'_>>(raw).map(|Text(text)| text),
    }
}

/// What kind of JSON value a raw value is, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawKind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl RawKind {
    pub(super) fn of(raw: &str) -> Option<Self> {
        Some(match raw.as_bytes().first()? {
            b'n' => Self::Null,
            b't' | b'f' => Self::Boolean,
            b'"' => Self::String,
            b'[' => Self::Array,
            b'{' => Self::Object,
            b'-' | b'0'..=b'9' => Self::Number,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean => "a boolean",
            Self::Number => "a number",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        }
    }
}
