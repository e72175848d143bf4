//! One-time use of assertions. A bearer assertion is as good as a password for its
//! lifetime, so an ACS that takes the same one twice lets anyone who saw it (a proxy log, a
//! shared browser's history of form posts) sign in again. Each assertion id is remembered
//! until the assertion would be refused anyway ([`super::SamlIdentity::valid_until`]).
//!
//! In memory, for this node only: several nodes behind a load balancer need this shared
//! (the same id used on node A, then posted to node B, would pass both). Until then, keep
//! SAML sign-ons on one node, or route the ACS to one node.

use natterjack_core::domain::Timestamp;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// How many ids are remembered by default: far more sign-ons than one console sees within
/// an assertion's lifetime.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The assertion ids seen recently, each until its expiry; bounded.
#[derive(Debug)]
pub struct SeenAssertions {
    capacity: usize,
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    until: HashMap<String, i64>,
    /// The same entries ordered by expiry, to forget the expired ones first and cheaply.
    by_expiry: BTreeSet<(i64, String)>,
}

impl Default for SeenAssertions {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl SeenAssertions {
    /// Remembers at most `capacity` ids at once.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Seen::default()),
        }
    }

    /// Whether this is the first use of assertion `id` (valid until `until`) at `now`; the
    /// id is remembered when it is. `false` when it was used before, and also when the
    /// memory is full of unexpired ids: then no assertion can be told apart from a replay,
    /// so every one is refused (fail closed) until some expire.
    pub fn first_use(&self, id: &str, until: Timestamp, now: Timestamp) -> bool {
        let mut seen = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = now.micros();
        while let Some(first) = seen.by_expiry.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, expired)) = seen.by_expiry.pop_first() {
                seen.until.remove(&expired);
            }
        }
        if seen.until.contains_key(id) {
            return false;
        }
        if until.micros() <= now {
            // Expired already: it would be refused anyway, nothing to remember.
            return true;
        }
        if seen.until.len() >= self.capacity {
            tracing::warn!(
                capacity = self.capacity,
                "SAML assertion memory full: sign-ons refused until some assertions expire"
            );
            return false;
        }
        seen.until.insert(id.to_owned(), until.micros());
        seen.by_expiry.insert((until.micros(), id.to_owned()));
        true
    }

    /// How many ids are remembered now (expired ones are forgotten on the next use).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .until
            .len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_micros(secs * 1_000_000)
    }

    #[test]
    fn an_assertion_is_taken_once_until_it_expires() {
        let seen = SeenAssertions::new(10);
        assert!(seen.first_use("a1", t(100), t(0)));
        assert!(!seen.first_use("a1", t(100), t(50)));
        assert!(seen.first_use("a2", t(100), t(50)));
        // Past its expiry the id is forgotten (the assertion itself is refused as expired).
        assert!(seen.first_use("a1", t(200), t(100)));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn a_full_memory_refuses_until_ids_expire() {
        let seen = SeenAssertions::new(2);
        assert!(seen.first_use("a1", t(10), t(0)));
        assert!(seen.first_use("a2", t(20), t(0)));
        assert!(!seen.first_use("a3", t(30), t(1)));
        assert!(seen.first_use("a3", t(30), t(10)));
        assert!(!seen.first_use("a2", t(20), t(11)));
    }
}
