//! `[auth]`: password hashing cost and concurrency, the verification cache and
//! self-registration. Kept together because they trade login cost against guessing cost.

use natterjack_core::auth::HashingParams;
use serde::Deserialize;

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether anonymous clients may create accounts with `POST /users`. Default true.
    pub self_registration: bool,
    /// Argon2id cost; refused below the OWASP minimum.
    pub argon2: HashingParams,
    /// Password hashes computed at once; more wait, then get 503. Default 4.
    pub max_concurrent_hashes: usize,
    /// How long a login may wait for a hashing slot, in milliseconds. Default 1000.
    pub hash_queue_wait_ms: u64,
    /// How long a successful verification is remembered, in seconds; 0 switches the cache
    /// off. Default 60.
    pub cache_ttl_secs: u64,
    /// Entries in the verification cache. Default 10000.
    pub cache_capacity: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            self_registration: true,
            argon2: HashingParams::default(),
            max_concurrent_hashes: 4,
            hash_queue_wait_ms: 1000,
            cache_ttl_secs: 60,
            cache_capacity: 10_000,
        }
    }
}

impl AuthConfig {
    /// Settings that must be at least 1, by name.
    pub(super) fn positive(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "auth.max_concurrent_hashes",
                self.max_concurrent_hashes as u64,
            ),
            ("auth.cache_capacity", self.cache_capacity as u64),
        ]
    }
}
