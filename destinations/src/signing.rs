//! Signatures per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com/>): each request carries
//! `webhook-id` (stable across retries, so receivers deduplicate),
//! `webhook-timestamp` (Unix seconds of the attempt) and
//! `webhook-signature: v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
//! where the key is the base64 after the secret's `whsec_` prefix. While a
//! rotated-out secret is still valid, both signatures are sent,
//! space-separated, so the receiver can switch secrets at its own pace.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The prefix of every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// A secret that cannot be used: not `whsec_` followed by base64 of 24 to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is `whsec_` followed by the base64 of 24 to 64 random bytes")]
pub struct BadSecret;

/// The HMAC key of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(BadSecret)?;
    let key = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
    if (24..=64).contains(&key.len()) {
        Ok(key)
    } else {
        Err(BadSecret)
    }
}

/// A fresh secret: `whsec_` and the base64 of 32 random bytes.
pub fn generate_secret() -> String {
    // Two v4 UUIDs carry 244 random bits from the OS generator; hash them to
    // spread them over 256, as generated API keys do.
    let seed = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(Sha256::digest(seed)))
}

/// One `v1,<base64>` signature of `body` sent as message `id` at `timestamp`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` value: one signature per key, space-separated.
pub fn signature_header<'k>(
    keys: impl IntoIterator<Item = &'k [u8]>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    keys.into_iter()
        .map(|key| sign(key, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `webhook-id` of the delivery of event `event_id` to webhook
/// `webhook_id`: the same on every attempt, every replay and every
/// redelivery, so a receiver that remembers it never acts twice.
pub fn message_id(webhook_id: &str, event_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(webhook_id.as_bytes());
    hasher.update([0]);
    hasher.update(event_id.as_bytes());
    let digest = hasher.finalize();
    let mut id = String::with_capacity(4 + 32);
    id.push_str("msg_");
    for byte in &digest[..16] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' tests.
    #[test]
    fn matches_the_specifications_reference_vector() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotation_sends_both_signatures() {
        let (old, new) = (generate_secret(), generate_secret());
        assert_ne!(old, new);
        let keys = [secret_key(&new).unwrap(), secret_key(&old).unwrap()];
        let header = signature_header(keys.iter().map(Vec::as_slice), "msg_1", 5, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&keys[0], "msg_1", 5, b"{}"));
        assert_eq!(parts[1], sign(&keys[1], "msg_1", 5, b"{}"));
    }

    #[test]
    fn secrets_have_the_prefix_and_enough_bytes() {
        let secret = generate_secret();
        assert_eq!(secret_key(&secret).unwrap().len(), 32);
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!",
            "whsec_YWJj",
        ] {
            assert_eq!(secret_key(bad), Err(BadSecret), "{bad}");
        }
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        assert_eq!(message_id("wh_1", "e1"), message_id("wh_1", "e1"));
        assert_ne!(message_id("wh_1", "e1"), message_id("wh_2", "e1"));
        assert_ne!(message_id("wh_1", "e1"), message_id("wh_1e", "1"));
        assert_eq!(message_id("a", "b").len(), 36);
    }
}
