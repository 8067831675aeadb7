//! API keys and passwords: generation, hashing, constant-time verification.

use crate::Error;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new API key: `rk_` + 32 random bytes, base64url. High entropy, so a plain SHA-256 of
/// it is a sound stored form (no salt or slow hash needed, unlike passwords).
pub fn generate_api_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "rk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// SHA-256 digest of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Lower-case hex SHA-256 of `data` (as `rampart keygen` prints a key's hash).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha256(data))
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 64 hex digits (any case) as 32 bytes; `None` otherwise.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = (chunk[0] as char).to_digit(16)?;
        let lo = (chunk[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Constant-time equality (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// An argon2id PHC string for `password` (for `rampart hash-password`).
pub fn hash_password(password: &str) -> Result<String, Error> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(Error::HashPassword)
}

/// Whether a stored hash is a kind Rampart verifies (argon2 or bcrypt).
pub fn check_hash_format(hash: &str) -> Result<(), Error> {
    if hash.starts_with("$argon2") {
        argon2::PasswordHash::new(hash)
            .map(|_| ())
            .map_err(Error::Argon2Hash)
    } else if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        if hash.len() == 60 {
            Ok(())
        } else {
            Err(Error::BcryptHashLength)
        }
    } else {
        Err(Error::UnsupportedHash)
    }
}

/// Verify a password against an argon2 or bcrypt hash. Slow by design: call off the
/// request threads.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        use argon2::PasswordVerifier;
        match argon2::PasswordHash::new(hash) {
            Ok(h) => argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok(),
            Err(_) => false,
        }
    } else {
        bcrypt::verify(password, hash).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_hashes() {
        let k = generate_api_key();
        assert!(k.starts_with("rk_") && k.len() > 40);
        assert_ne!(generate_api_key(), k);
        let h = sha256_hex(k.as_bytes());
        assert_eq!(parse_hex32(&h).unwrap(), sha256(k.as_bytes()));
        assert!(parse_hex32("zz").is_none());
    }

    #[test]
    fn passwords() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("S3cret", &h));
        let b = bcrypt::hash("pw", 4).unwrap();
        assert!(verify_password("pw", &b));
        assert!(!verify_password("px", &b));
        assert!(check_hash_format("{SHA}abc").is_err());
        assert!(check_hash_format(&b).is_ok());
    }
}
