//! Passwords, hashed with Argon2id (RFC 9106) at OWASP's recommended cost
//! (19 MiB, two passes, one lane) into a PHC string that names its own
//! parameters, so a later cost change still verifies older hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest, so hashing a request's body costs a bounded time.
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a new password is refused, for the person choosing it.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

/// The PHC string of `password` with a fresh salt. Slow on purpose (tens of
/// milliseconds): call it off the async runtime.
pub fn hash_password(password: &str) -> String {
    // 128 random bits from the OS generator (a v4 UUID carries 122).
    let salt = SaltString::encode_b64(&uuid::Uuid::new_v4().into_bytes())
        .expect("16 bytes make a valid salt");
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with a generated salt cannot fail")
        .to_string()
}

/// Whether `password` is the one `phc` was made from. Slow on purpose.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    hasher().verify_password(password.as_bytes(), &hash).is_ok()
}

/// A hash to verify against when the account does not exist, so a login
/// for an unknown email takes as long as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("a password that no account has"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("correct horse battery");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert_ne!(hash, hash_password("correct horse battery"), "salted");
        assert!(!verify_password("anything", "not a phc string"));
        assert!(!verify_password("anything", decoy_hash()));
    }

    #[test]
    fn new_passwords_have_a_minimum_and_a_maximum_length() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough pw").is_ok());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
