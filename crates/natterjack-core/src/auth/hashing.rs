use crate::ServiceError;
use argon2::password_hash::{PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Argon2id cost parameters. The defaults are the OWASP minimum (19 MiB, 2 passes, 1 lane);
/// anything weaker is refused at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingParams {
    /// Memory per hash in KiB (at least 19456).
    pub memory_kib: u32,
    /// Passes over memory (at least 2).
    pub iterations: u32,
    /// Lanes (at least 1).
    pub parallelism: u32,
}

impl Default for HashingParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashingParams {
    /// Refuses parameters below the OWASP minimum, so a configuration typo cannot weaken
    /// every stored password.
    pub fn check(&self) -> Result<Params, String> {
        if self.memory_kib < 19 * 1024 || self.iterations < 2 || self.parallelism < 1 {
            return Err("argon2 parameters below the OWASP minimum (memory_kib >= 19456, iterations >= 2, parallelism >= 1)".into());
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| e.to_string())
    }
}

/// Argon2id hashing and verification, run on the blocking pool behind a semaphore.
///
/// Each hash costs ~19 MiB and tens of milliseconds of CPU on purpose; the semaphore bounds
/// how many run at once so a login flood cannot exhaust memory or starve other requests.
/// Callers that cannot get a permit within `queue_wait` get [`ServiceError::Busy`] (503 +
/// `Retry-After`).
pub struct PasswordHashing {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    queue_wait: Duration,
    started: AtomicU64,
}

impl PasswordHashing {
    /// Builds the hasher; `max_concurrent` bounds simultaneous hashes.
    pub fn new(
        params: HashingParams,
        max_concurrent: usize,
        queue_wait: Duration,
    ) -> Result<Self, String> {
        let params = params.check()?;
        Ok(Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            queue_wait,
            started: AtomicU64::new(0),
        })
    }

    /// How many Argon2 computations have started since start-up. Tests use it to prove that
    /// refused requests never reach the hasher.
    pub fn computations_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let permit = tokio::time::timeout(self.queue_wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ServiceError::Busy {
                retry_after_secs: 1,
            })?
            .map_err(|_| ServiceError::Internal)?;
        self.started.fetch_add(1, Ordering::Relaxed);
        let argon = self.argon.clone();
        let out = tokio::task::spawn_blocking(move || {
            let out = job(&argon);
            drop(permit);
            out
        })
        .await
        .map_err(|_| ServiceError::Internal)?;
        Ok(out)
    }

    /// Hashes a new password into a PHC string with a fresh random salt.
    pub async fn hash(&self, password: Zeroizing<Vec<u8>>) -> Result<String, ServiceError> {
        self.run(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon.hash_password(&password, &salt).map(|h| h.to_string())
        })
        .await?
        .map_err(|_| ServiceError::Internal)
    }

    /// Verifies a password against a PHC string. A malformed stored hash verifies as false
    /// after doing the same work, so a corrupt row cannot be told apart from a wrong password.
    pub async fn verify(
        &self,
        password: Zeroizing<Vec<u8>>,
        phc: String,
    ) -> Result<bool, ServiceError> {
        self.run(move |argon| match PasswordHash::new(&phc) {
            Ok(parsed) => argon.verify_password(&password, &parsed).is_ok(),
            Err(_) => false,
        })
        .await
    }

    /// True when `phc` was made with other parameters than the configured ones, so the
    /// password should be re-hashed now that it is known to be right.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(stored) = Params::try_from(&parsed) else {
            return true;
        };
        let current = self.argon.params();
        parsed.algorithm != Algorithm::Argon2id.ident()
            || parsed.version != Some(Version::V0x13.into())
            || stored.m_cost() != current.m_cost()
            || stored.t_cost() != current.t_cost()
            || stored.p_cost() != current.p_cost()
    }
}
