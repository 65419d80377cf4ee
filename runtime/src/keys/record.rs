//! What the key store holds for one API key, and how a presented key is
//! matched against it without the store ever holding the key itself.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Shortest key a client may bring itself (generated keys are 256-bit).
pub const MIN_IMPORTED_KEY_BYTES: usize = 12;
/// Longest key accepted anywhere; longer headers are refused before hashing.
pub const MAX_KEY_BYTES: usize = 256;
/// Prefix of generated keys, so they are recognisable in logs and secret scanners.
pub const GENERATED_KEY_PREFIX: &str = "slk_";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send events to the key's project.
    Ingest,
    /// Read the key's project's events and metrics.
    Read,
    /// Manage keys of every project.
    Admin,
    /// Manage the key's project's webhooks (the destinations service).
    Webhooks,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Admin, Scope::Webhooks];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
            Scope::Webhooks => "webhooks",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rate limits of one key; a limit left out takes the service's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_burst: Option<u32>,
}

/// One key as stored: its digest, never the key.
///
/// `key_id` is the first 16 hex digits of the key's SHA-256, so a presented
/// key finds its record in one lookup and then matches the whole digest in
/// constant time. SHA-256 without a slow KDF is enough because keys are
/// random (256 bits when generated, and at least
/// [`MIN_IMPORTED_KEY_BYTES`] when imported): there is no dictionary to try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub key_id: String,
    pub project_id: String,
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of the key.
    pub digest: String,
    #[serde(default)]
    pub label: String,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
    #[serde(default)]
    pub limits: KeyLimits,
    /// The key stops working then (401 saying so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Who made it: `admin-token`, `key:ID` or `user:EMAIL` (see
    /// [`crate::access::Principal::describe`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// The key this one replaced by rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The key that replaced this one by rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

impl KeyRecord {
    /// A record for `key`, which the caller hands to the key's owner once.
    pub fn for_key(
        key: &str,
        project_id: &str,
        scopes: Vec<Scope>,
        label: String,
        limits: KeyLimits,
        now_ms: i64,
    ) -> Self {
        let digest = KeyDigest::of(key);
        Self {
            key_id: digest.key_id(),
            project_id: project_id.to_owned(),
            scopes,
            digest: digest.to_hex(),
            label,
            created_at_ms: now_ms,
            revoked_at_ms: None,
            limits,
            expires_at_ms: None,
            created_by: String::new(),
            replaces: None,
            replaced_by: None,
        }
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at_ms.is_some()
    }

    /// Whether `presented` is this record's key, in time independent of how
    /// many bytes match.
    pub fn matches(&self, presented: &KeyDigest) -> bool {
        constant_time_eq(self.digest.as_bytes(), presented.to_hex().as_bytes())
    }
}

/// A fresh key: the prefix and 256 random bits in hex.
pub fn generate_key() -> String {
    let mut key = String::with_capacity(GENERATED_KEY_PREFIX.len() + 64);
    key.push_str(GENERATED_KEY_PREFIX);
    // Two v4 UUIDs carry 244 random bits from the OS generator; hash them to
    // spread them over 256.
    let seed = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    push_hex(&mut key, &Sha256::digest(seed));
    key
}

/// The SHA-256 of a presented key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest([u8; 32]);

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", self.key_id())
    }
}

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn key_id(&self) -> String {
        let mut id = String::with_capacity(16);
        push_hex(&mut id, &self.0[..8]);
        id
    }

    pub fn to_hex(&self) -> String {
        let mut hex = String::with_capacity(64);
        push_hex(&mut hex, &self.0);
        hex
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_hold_a_digest_that_matches_only_their_key() {
        let key = generate_key();
        assert!(key.starts_with(GENERATED_KEY_PREFIX));
        assert_eq!(key.len(), GENERATED_KEY_PREFIX.len() + 64);
        let record = KeyRecord::for_key(
            &key,
            "demo",
            vec![Scope::Ingest],
            String::new(),
            KeyLimits::default(),
            1,
        );
        assert!(!record.digest.contains(&key[4..]));
        assert_eq!(record.key_id, KeyDigest::of(&key).key_id());
        assert!(record.matches(&KeyDigest::of(&key)));
        assert!(!record.matches(&KeyDigest::of(&generate_key())));
        assert!(record.allows(Scope::Ingest) && !record.allows(Scope::Read));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(generate_key(), generate_key());
    }

    #[test]
    fn records_round_trip_as_json() {
        let mut record = KeyRecord::for_key(
            "imported-key-1",
            "p",
            vec![Scope::Read, Scope::Admin],
            "ci".into(),
            KeyLimits {
                events_per_second: Some(10),
                ..KeyLimits::default()
            },
            5,
        );
        record.revoked_at_ms = Some(9);
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains(r#""scopes":["read","admin"]"#), "{text}");
        assert_eq!(serde_json::from_str::<KeyRecord>(&text).unwrap(), record);
        assert!(serde_json::from_str::<KeyRecord>(r#"{"key_id":"x"}"#).is_err());
    }
}
