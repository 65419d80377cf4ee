//! Property values as rollups key them: what a group-by on `property.KEY`
//! reads, computed by the processor for the properties it rolls up.
//!
//! The raw path reads the same value in SQL (`visitParamExtract*`): a JSON
//! string gives its value, any other JSON value its text as stored, and a
//! missing key (or properties that are not a JSON object) the empty string.
//! The SQL functions find a key's first occurrence at any depth; this reads
//! top-level keys only, and the last of repeated keys, as JSON parsers do.
//! Events stored by the gateway or the processor have neither case.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// What [`valid_property_key`] asks of a key, for the error that refuses one.
pub const PROPERTY_KEY_RULE: &str = "property keys are 1 to 128 of A-Z a-z 0-9 _ - . $ :";

/// A property key as filters, group-bys, `--rollup-properties` and
/// destination rules name it.
pub fn valid_property_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$' | ':'))
}

/// The value of each of `keys` in `properties` (a JSON object's text), in
/// the order of `keys`, borrowed from it where no escape needs undoing.
/// Other properties are skipped, not kept.
pub fn property_values<'a>(properties: &'a str, keys: &[String]) -> Vec<Cow<'a, str>> {
    let mut deserializer = serde_json::Deserializer::from_str(properties);
    let found = deserializer
        .deserialize_map(Wanted { keys })
        .unwrap_or_default();
    found
        .into_iter()
        .chain(std::iter::repeat(None))
        .take(keys.len())
        .map(|raw| raw.map_or(Cow::Borrowed(""), text_of))
        .collect()
}

/// A key, borrowed from the text unless it has escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// Reads the raw values of the wanted keys of a JSON object.
struct Wanted<'k> {
    keys: &'k [String],
}

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = Vec<Option<&'de RawValue>>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = vec![None; self.keys.len()];
        while let Some(Key(key)) = map.next_key()? {
            match self.keys.iter().position(|wanted| *wanted == key) {
                Some(index) => found[index] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

fn text_of(raw: &RawValue) -> Cow<'_, str> {
    let text = raw.get();
    match text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(plain) if !plain.contains('\\') => Cow::Borrowed(plain),
        Some(_) => Cow::Owned(serde_json::from_str::<String>(text).unwrap_or_default()),
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn values_read_like_the_raw_path() {
        let properties =
            r#"{"plan":"pro","n":1.50,"ok":true,"none":null,"o":{"a":[1,2]},"esc":"a\"\u00e9"}"#;
        assert_eq!(
            property_values(
                properties,
                &keys(&["plan", "n", "ok", "none", "o", "esc", "missing"])
            ),
            ["pro", "1.50", "true", "null", r#"{"a":[1,2]}"#, "a\"é", ""]
        );
    }

    #[test]
    fn escaped_and_repeated_keys() {
        let properties = r#"{"pl\u0061n":"a","skip":{"plan":"nested"},"plan":"b","n":[1]}"#;
        assert_eq!(
            property_values(properties, &keys(&["plan", "n"])),
            ["b", "[1]"]
        );
    }

    #[test]
    fn anything_but_an_object_has_no_values() {
        for properties in ["", "[]", "\"plan\"", "{", "null"] {
            assert_eq!(
                property_values(properties, &keys(&["plan"])),
                [""],
                "{properties}"
            );
        }
    }

    #[test]
    fn keys_are_plain_names() {
        assert!(valid_property_key("plan"));
        assert!(valid_property_key("$app.version:1"));
        for bad in ["", "a b", "a'b", "é", &"a".repeat(129)] {
            assert!(!valid_property_key(bad), "{bad}");
        }
    }
}
