use crate::clock::SharedClock;
use crate::domain::UserId;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// A short-lived cache of successful password verifications.
///
/// Trade-off: Argon2id makes every request with Basic credentials cost ~20 ms of CPU and
/// ~19 MiB, which would make the API slow and easy to exhaust. The cache remembers, for `ttl`,
/// that a (username, password, stored hash) triple verified. It holds no password: entries
/// are keyed by HMAC-SHA-256 under a random key that exists only in this process's memory,
/// so a copy of the cache (a core dump without the key, a log) is useless. Someone who can
/// read the live process's memory gets the key as well and could test guesses against
/// cached accounts at HMAC speed instead of Argon2 speed; such an attacker also sees
/// passwords as requests arrive, so the cache adds little. The stored hash is part of the
/// key, so a password change (a new hash) misses the cache as soon as the stored hash is
/// read again: at once in this process (its own write also drops the user's entries), and on
/// other nodes as soon as the storage read cache drops the user row
/// ([`crate::store_cache`]: the database's change notification, or its maximum age).
/// What remains is the usual cost of any cache: memory (bounded by `capacity`) and one
/// keyed hash per request. Operators who want Argon2 on every request set
/// `auth.cache_ttl_secs = 0`, which switches the cache off.
pub struct VerificationCache {
    key: Zeroizing<[u8; 32]>,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], (UserId, Instant)>>,
    clock: SharedClock,
}

impl VerificationCache {
    /// A cache with a fresh random key; `capacity` bounds its memory.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self {
            key,
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
            clock: crate::clock::system(),
        }
    }

    /// The same cache, reading time from `clock` (a test clock expires entries on demand).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// False when `ttl` is zero: nothing is remembered.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The keyed hash of the credentials and the stored hash they were checked against.
    /// Fields are length-prefixed so no two different triples share an input.
    pub fn key_for(&self, username: &str, password: &[u8], stored_hash: &str) -> [u8; 32] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.key.as_ref()) {
            Ok(m) => m,
            // HMAC accepts keys of any length; this arm cannot be reached.
            Err(_) => return [0u8; 32],
        };
        for part in [username.as_bytes(), password, stored_hash.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// True if the credentials behind `key` verified within the TTL.
    pub fn hit(&self, key: &[u8; 32], user: UserId) -> bool {
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        match entries.get(key) {
            Some((cached_user, expires)) if *cached_user == user && *expires > self.clock.now() => {
                true
            }
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    /// Remembers a successful verification.
    pub fn remember(&self, key: [u8; 32], user: UserId) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = self.clock.now();
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (user, now + self.ttl));
    }

    /// Drops every entry of `user`, after their password changed in this process.
    pub fn forget_user(&self, user: UserId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (u, _)| *u != user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_remembered_verification_lasts_exactly_its_ttl_on_the_caches_clock() {
        let clock = ManualClock::new();
        let cache = VerificationCache::new(Duration::from_secs(60), 10).with_clock(clock.clone());
        let (key, user) = (
            cache.key_for("alice", b"pw", "$argon2id$"),
            UserId::from_i64(1).unwrap(),
        );
        cache.remember(key, user);
        clock.advance(Duration::from_secs(59));
        assert!(cache.hit(&key, user));
        clock.advance(Duration::from_secs(1));
        assert!(!cache.hit(&key, user));
    }
}
