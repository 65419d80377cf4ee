//! Where a request carries its API key: `Authorization: Bearer KEY`, or HTTP
//! basic auth with the key as the user name (how Segment-compatible SDKs send
//! their write key).

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The key presented in `headers`, or `None` when there is no usable
/// `Authorization` header.
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.to_owned()).filter(|key| !key.is_empty());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(credentials).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let user = decoded
            .split_once(':')
            .map_or(decoded.as_str(), |(user, _)| user);
        return Some(user.to_owned()).filter(|key| !key.is_empty());
    }
    None
}

/// Whether `presented` is the bootstrap admin token `configured` (never when
/// that is empty), compared in constant time.
pub fn is_admin_token(configured: &str, presented: &str) -> bool {
    !configured.is_empty()
        && crate::keys::record::constant_time_eq(configured.as_bytes(), presented.as_bytes())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn key_in(value: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        presented_key(&headers)
    }

    #[test]
    fn the_admin_token_matches_only_itself_and_never_when_unset() {
        assert!(is_admin_token("a-long-admin-token", "a-long-admin-token"));
        assert!(!is_admin_token("a-long-admin-token", "a-long-admin-tokeN"));
        assert!(!is_admin_token("a-long-admin-token", "a-long-admin"));
        assert!(!is_admin_token("", ""));
    }

    #[test]
    fn reads_bearer_and_basic_credentials() {
        assert_eq!(key_in("Bearer abc-123").as_deref(), Some("abc-123"));
        assert_eq!(key_in("bearer  abc-123 ").as_deref(), Some("abc-123"));
        // Segment SDKs: base64("WRITE_KEY:")
        let basic = format!("Basic {}", STANDARD.encode("write-key-1:"));
        assert_eq!(key_in(&basic).as_deref(), Some("write-key-1"));
        let no_colon = format!("Basic {}", STANDARD.encode("write-key-2"));
        assert_eq!(key_in(&no_colon).as_deref(), Some("write-key-2"));
    }

    #[test]
    fn ignores_unusable_headers() {
        assert_eq!(key_in("Bearer "), None);
        assert_eq!(key_in("Basic !!!not-base64"), None);
        assert_eq!(key_in(&format!("Basic {}", STANDARD.encode(":pw"))), None);
        assert_eq!(key_in("Token abc"), None);
        assert_eq!(key_in("abc"), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }
}
