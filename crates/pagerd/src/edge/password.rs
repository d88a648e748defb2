//! Console passwords: Argon2id (RustCrypto's `argon2`, its default
//! parameters: 19 MiB, 2 passes, 1 lane, OWASP's minimum) with a random salt,
//! kept as a PHC string. Hashing and checking take tens of milliseconds of
//! CPU, so callers run them on the blocking pool.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted, in bytes.
pub const MIN_LEN: usize = 10;
/// Longest password accepted, in bytes (hashing cost grows with it).
pub const MAX_LEN: usize = 1024;

/// Why a password is not accepted, for the `password` field's error.
pub fn check(password: &str) -> Result<(), String> {
    if password.len() < MIN_LEN {
        return Err(format!("at least {MIN_LEN} bytes"));
    }
    if password.len() > MAX_LEN {
        return Err(format!("at most {MAX_LEN} bytes"));
    }
    Ok(())
}

/// The PHC string of `password` under a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// Whether `password` is the one `phc` was made from (constant time in the
/// hash comparison). A malformed PHC string verifies nothing.
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse battery").expect("hashes");
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify(&phc, "correct horse battery"));
        assert!(!verify(&phc, "correct horse battery "));
        assert!(!verify("not a phc string", "correct horse battery"));
        // Salted: the same password hashes differently each time.
        assert_ne!(phc, hash("correct horse battery").expect("hashes"));
    }

    #[test]
    fn length_limits() {
        assert!(check("short").is_err());
        assert!(check(&"x".repeat(MIN_LEN)).is_ok());
        assert!(check(&"x".repeat(MAX_LEN + 1)).is_err());
    }
}
