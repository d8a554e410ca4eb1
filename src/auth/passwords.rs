//! Argon2id password hashing, off the async runtime's worker threads.
//!
//! Parameters (OWASP's first recommendation for Argon2id): 19 MiB of memory,
//! 2 iterations, 1 lane. A hash is ~20-50 ms on one core, run on the blocking
//! pool so it never stalls other requests.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const LANES: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password into a PHC string (algorithm, parameters, salt, hash).
pub async fn hash(password: SecretString) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || {
        argon2()?
            .hash_password(password.expose_secret().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// Checks a password against a stored hash. With no stored hash (unknown
/// email) it still does the same work against a throwaway hash, so a login
/// for an unknown email takes as long as one with a wrong password.
pub async fn verify(password: SecretString, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let Ok(argon2) = argon2() else { return false };
        let known = stored.is_some();
        let stored = match stored {
            Some(stored) => stored,
            None => match argon2.hash_password(b"timing equaliser for unknown accounts") {
                Ok(hash) => hash.to_string(),
                Err(_) => return false,
            },
        };
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        let matches = argon2
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok();
        known && matches
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let stored = hash(SecretString::from("correct horse battery")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify(SecretString::from("correct horse battery"), Some(stored.clone())).await);
        assert!(!verify(SecretString::from("wrong horse battery"), Some(stored)).await);
        assert!(!verify(SecretString::from("anything"), None).await);
    }
}
