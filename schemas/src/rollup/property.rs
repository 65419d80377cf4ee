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
use std::collections::HashMap;

use serde_json::value::RawValue;

/// A property key as filters, group-bys and `--rollup-properties` name it.
pub fn valid_property_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$' | ':'))
}

/// The value of each of `keys` in `properties` (a JSON object's text), in
/// the order of `keys`.
pub fn property_values(properties: &str, keys: &[String]) -> Vec<String> {
    let object: HashMap<Cow<'_, str>, &RawValue> =
        serde_json::from_str(properties).unwrap_or_default();
    keys.iter()
        .map(|key| {
            object
                .get(key.as_str())
                .map_or_else(String::new, |raw| text_of(raw))
        })
        .collect()
}

fn text_of(raw: &RawValue) -> String {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).unwrap_or_default()
    } else {
        text.to_owned()
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
