//! Argon2id password hashing, off the async runtime's worker threads.
//!
//! Parameters (OWASP's first recommendation for Argon2id): 19 MiB of memory,
//! 2 iterations, 1 lane. A hash is ~20-50 ms on one core, run on the blocking
//! pool so it never stalls other requests.

use std::sync::OnceLock;
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const LANES: u32 = 1;

/// How long a password check may wait for a free hashing slot before the
/// request is answered "busy, retry" (503 with `Retry-After`).
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
    /// Every hashing slot stayed busy for [`QUEUE_TIMEOUT`].
    #[error("too many password checks at once; retry shortly")]
    Busy,
}

/// Hashes running at once: one per core. Each takes ~19 MiB and a core for
/// tens of milliseconds; more at once only queues inside the CPU, costs
/// memory (a burst of 128 once took the process to 770 MiB) and slows
/// every other request.
fn slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// Runs one Argon2 computation on the blocking pool, holding a slot.
async fn limited<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
    let _slot = tokio::time::timeout(QUEUE_TIMEOUT, slots().acquire())
        .await
        .map_err(|_| HashError::Busy)?
        .map_err(|e| HashError::Failed(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
}

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).map_err(|e| HashError::Failed(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password into a PHC string (algorithm, parameters, salt, hash).
pub async fn hash(password: SecretString) -> Result<String, HashError> {
    limited(move || {
        argon2()?
            .hash_password(password.expose_secret().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError::Failed(e.to_string()))
    })
    .await?
}

/// A hash of nothing anyone knows, made once, checked against when the
/// account does not exist: an unknown email costs exactly one Argon2
/// computation, like a known one with a wrong password.
fn stand_in_hash() -> Option<&'static str> {
    static STAND_IN: OnceLock<Option<String>> = OnceLock::new();
    STAND_IN
        .get_or_init(|| {
            let argon2 = argon2().ok()?;
            argon2
                .hash_password(uuid::Uuid::new_v4().as_bytes())
                .ok()
                .map(|h| h.to_string())
        })
        .as_deref()
}

/// Checks a password against a stored hash; with no stored hash (unknown
/// email) against [`stand_in_hash`], so both take the same time.
/// `Err(Busy)` when no hashing slot freed up in time.
pub async fn verify(password: SecretString, stored: Option<String>) -> Result<bool, HashError> {
    // Made outside the slot, once per process.
    let stand_in = stand_in_hash().map(str::to_owned);
    limited(move || {
        let Ok(argon2) = argon2() else { return false };
        let known = stored.is_some();
        let Some(stored) = stored.or(stand_in) else {
            return false;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let stored = hash(SecretString::from("correct horse battery")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(
            verify(SecretString::from("correct horse battery"), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify(SecretString::from("wrong horse battery"), Some(stored))
                .await
                .unwrap()
        );
        assert!(!verify(SecretString::from("anything"), None).await.unwrap());
    }
}
