//! Session tokens: JSON Web Tokens signed with HMAC-SHA256 (RFC 7519,
//! `alg` HS256) under the operator's `--session-secret`, which every
//! instance shares. Only HS256 is accepted: a token naming another
//! algorithm (`none` among them) is refused before its signature is looked
//! at.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::secret::Secret;

/// The shortest `--session-secret` accepted: 32 bytes, HS256's key size.
pub const MIN_SECRET_BYTES: usize = 32;

/// The issuer every Sluice token names.
const ISSUER: &str = "sluice";

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The session, which can be revoked.
    pub sid: String,
    /// Issued at, in seconds since the epoch.
    pub iat: i64,
    /// Expires at, in seconds since the epoch.
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token signed by this deployment (bad shape, algorithm or signature).
    Invalid,
    /// Signed by this deployment, but past its `exp`.
    Expired,
}

/// Signs and verifies session tokens: signs with the current secret,
/// verifies with it or the previous one (while a secret is rotated).
#[derive(Clone)]
pub struct TokenKey {
    secret: Secret,
    previous: Option<Secret>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

impl TokenKey {
    /// The key of `secret`; `setting` names it when it is too short.
    pub fn new(secret: &Secret, setting: &str) -> anyhow::Result<Self> {
        if secret.expose().len() < MIN_SECRET_BYTES {
            anyhow::bail!(
                "{setting} must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            );
        }
        Ok(Self {
            secret: secret.clone(),
            previous: None,
        })
    }

    /// Also accepts tokens signed with `previous` (verifying only), so a
    /// secret can be rotated without signing everyone out.
    pub fn with_previous(mut self, previous: &Secret, setting: &str) -> anyhow::Result<Self> {
        self.previous = Some(Self::new(previous, setting)?.secret);
        Ok(self)
    }

    /// A token for the user `user_id` in session `session_id`, valid from
    /// `now_s` for `lifetime_s` seconds.
    pub fn issue(&self, user_id: &str, session_id: &str, now_s: i64, lifetime_s: i64) -> String {
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat: now_s,
            exp: now_s + lifetime_s,
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.mac(signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    /// The claims of `token` if this key signed it and it has not expired at `now_s`.
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let header: Header = decode_json(header)?;
        if header.alg != "HS256" {
            return Err(TokenError::Invalid);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Invalid)?;
        let signing_input = &token[..header_and_payload_len(token)];
        let signed_by = |secret: &Secret| {
            let mut mac = hmac(secret);
            mac.update(signing_input.as_bytes());
            mac.verify_slice(&signature).is_ok()
        };
        if !signed_by(&self.secret) && !self.previous.as_ref().is_some_and(signed_by) {
            return Err(TokenError::Invalid);
        }
        let claims: Claims = decode_json(payload)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Invalid);
        }
        if claims.exp <= now_s {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn mac(&self, input: &[u8]) -> Vec<u8> {
        let mut mac = hmac(&self.secret);
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
}

fn hmac(secret: &Secret) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length")
}

/// Whether `credential` has a JWT's shape (three base64url parts, a JSON
/// header), as opposed to an API key.
pub fn looks_like_token(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.matches('.').count() == 2
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Invalid)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid)
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> TokenKey {
        TokenKey::new(&Secret::new(secret), "--session-secret").unwrap()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_verifies_until_it_expires() {
        let key = key(SECRET);
        let token = key.issue("usr_1", "ses_1", 1_000, 900);
        assert!(looks_like_token(&token));
        let claims = key.verify(&token, 1_899).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str()),
            ("usr_1", "ses_1")
        );
        assert_eq!(key.verify(&token, 1_900), Err(TokenError::Expired));
    }

    #[test]
    fn matches_an_independent_hs256_signature() {
        // The signature is HMAC-SHA256 of `header.payload` under the secret's
        // bytes, base64url without padding (RFC 7515 section 3.1).
        let secret = "a-session-secret-of-thirty-two-bytes!!";
        let key = key(secret);
        let token = key.issue("u", "s", 10, 10);
        let (input, signature) = token.rsplit_once('.').unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
            signature
        );
        let header = URL_SAFE_NO_PAD
            .decode(input.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn refuses_other_keys_algorithms_and_tampering() {
        let ours = key(SECRET);
        let theirs = key("another-secret-of-at-least-32-bytes!");
        let token = theirs.issue("usr_1", "ses_1", 1_000, 900);
        assert_eq!(ours.verify(&token, 1_001), Err(TokenError::Invalid));

        let token = ours.issue("usr_1", "ses_1", 1_000, 900);
        let (header, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            ours.verify(&format!("{none}.{payload}."), 1_001),
            Err(TokenError::Invalid)
        );
        let forged = URL_SAFE_NO_PAD
            .encode(br#"{"iss":"sluice","sub":"usr_admin","sid":"ses_1","iat":1000,"exp":1900}"#);
        assert_eq!(
            ours.verify(&format!("{header}.{forged}.{signature}"), 1_001),
            Err(TokenError::Invalid)
        );
        for broken in ["", "a.b", "a.b.c.d", "eyJ.eyJ.sig"] {
            assert_eq!(ours.verify(broken, 1_001), Err(TokenError::Invalid));
        }
        assert!(!looks_like_token("slk_0123"));
    }

    #[test]
    fn a_rotated_secret_still_verifies_until_it_is_dropped() {
        let old = key("the-old-session-secret-of-32-bytes!!");
        let token = old.issue("usr_1", "ses_1", 1_000, 900);
        let rotated = key(SECRET)
            .with_previous(
                &Secret::new("the-old-session-secret-of-32-bytes!!"),
                "--session-secret-previous",
            )
            .unwrap();
        assert!(rotated.verify(&token, 1_001).is_ok());
        let fresh = rotated.issue("usr_1", "ses_1", 1_000, 900);
        assert_eq!(
            old.verify(&fresh, 1_001),
            Err(TokenError::Invalid),
            "signed with the new one"
        );
        assert_eq!(key(SECRET).verify(&token, 1_001), Err(TokenError::Invalid));
    }

    #[test]
    fn short_secrets_are_refused_naming_the_setting() {
        let error = TokenKey::new(&Secret::new("short"), "--session-secret").unwrap_err();
        assert!(error.to_string().contains("--session-secret"), "{error}");
        assert!(!error.to_string().contains("short\""), "{error}");
    }
}
