use crate::ServiceError;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
        self.run(move |argon| hash_phc(argon, &password))
            .await?
            .ok_or(ServiceError::Internal)
    }

    /// Verifies a password against a PHC string. A malformed stored hash verifies as false,
    /// so a corrupt row cannot be told apart from a wrong password by the answer.
    pub async fn verify(
        &self,
        password: Zeroizing<Vec<u8>>,
        phc: String,
    ) -> Result<bool, ServiceError> {
        self.run(move |_| verify_phc(&password, &phc)).await
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

/// Bytes above the largest mmap threshold glibc's malloc adapts itself to (32 MiB on 64-bit).
/// An allocation of this size is always mapped fresh and unmapped when freed, whatever the
/// process allocated before.
const UNMAPPED_ON_FREE_BYTES: usize = 33 << 20;

/// Argon2's working memory for one computation (19 MiB at the defaults), reserved above
/// [`UNMAPPED_ON_FREE_BYTES`] while only `blocks` of it are touched.
///
/// Why: freed the ordinary way, each 19 MiB block raises glibc's dynamic mmap threshold,
/// so the next ones come from per-thread arenas that keep them. Measured with
/// `bench/load/run`, twelve wrong passwords in a flood left the process at 257 MiB resident;
/// with this reservation the memory goes back to the kernel after every computation, and
/// the resident set is bounded by the concurrent computations (`max_concurrent_hashes`).
/// Under another allocator it is only address space: the untouched part is never resident.
fn working_memory(blocks: usize) -> Vec<Block> {
    let reserved = blocks.max(UNMAPPED_ON_FREE_BYTES / std::mem::size_of::<Block>());
    let mut memory = Vec::with_capacity(reserved);
    memory.resize(blocks, Block::default());
    memory
}

/// A PHC string for `password` with a fresh salt, or `None` if Argon2 refuses the input.
fn hash_phc(argon: &Argon2<'_>, password: &[u8]) -> Option<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).ok()?;
    let params = argon.params().clone();
    let mut out = Zeroizing::new(vec![
        0u8;
        params
            .output_len()
            .unwrap_or(Params::DEFAULT_OUTPUT_LEN)
    ]);
    argon
        .hash_password_into_with_memory(
            password,
            salt_bytes,
            &mut out,
            working_memory(params.block_count()),
        )
        .ok()?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).ok()?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).ok()?),
    };
    Some(phc.to_string())
}

/// Recomputes the hash with the stored string's own algorithm, version, parameters and salt,
/// and compares the outputs in constant time (`Output`'s equality).
fn verify_phc(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    if argon
        .hash_password_into_with_memory(password, salt_bytes, &mut out, working_memory(blocks))
        .is_err()
    {
        return false;
    }
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    fn hasher() -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            HashingParams::default()
                .check()
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let phc = hash_phc(&hasher(), b"violet-anvil-73-harbour").unwrap_or_default();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_phc(b"violet-anvil-73-harbour", &phc));
        assert!(!verify_phc(b"violet-anvil-73-harbouR", &phc));
        assert!(!verify_phc(b"", &phc));
    }

    #[test]
    fn hashes_interoperate_with_the_argon2_crates_own_phc_code_both_ways() {
        let argon = hasher();
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon
            .hash_password(b"quartz-lantern-88-meadow", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(verify_phc(b"quartz-lantern-88-meadow", &theirs));
        assert!(!verify_phc(b"quartz-lantern-88-meadoW", &theirs));
        let ours = hash_phc(&argon, b"copper-willow-41-thistle").unwrap_or_default();
        let parsed = PasswordHash::new(&ours);
        assert!(parsed.is_ok_and(|p| {
            argon
                .verify_password(b"copper-willow-41-thistle", &p)
                .is_ok()
        }));
    }

    #[test]
    fn a_hash_made_with_other_parameters_verifies_with_its_own() {
        let stronger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(20 * 1024, 3, 1, None).unwrap_or_else(|e| panic!("{e}")),
        );
        let phc = hash_phc(&stronger, b"violet-anvil-73-harbour").unwrap_or_default();
        assert!(phc.contains("m=20480,t=3,p=1"), "{phc}");
        assert!(verify_phc(b"violet-anvil-73-harbour", &phc));
    }

    #[test]
    fn malformed_or_foreign_hashes_verify_as_false() {
        for bad in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=19456,t=2,p=1$$",
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(!verify_phc(b"violet-anvil-73-harbour", bad), "{bad:?}");
        }
    }
}
