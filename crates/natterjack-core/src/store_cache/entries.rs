//! The cache's memory: bounded entries, each stamped with when its read started, and one
//! generation counter that every invalidation moves, so that a read which started before an
//! invalidation cannot store what it read after it.

use super::invalidation::Invalidation;
use crate::domain::{Permissions, SpaceId, UserId, Username};
use crate::ports::UserRecord;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What an entry answers: the arguments of the read it caches, normalised as the store
/// compares them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    /// `find_user`, by the name in lower case (names are ASCII and compared
    /// case-insensitively by both backends).
    User(String),
    /// `find_linked_user`, by source and subject, compared exactly.
    Linked(String, String),
    /// `permissions_of`.
    Membership(SpaceId, UserId),
}

impl Key {
    /// The key of `find_user(name)`.
    pub(super) fn user(name: &Username) -> Self {
        Self::User(name.as_str().to_ascii_lowercase())
    }
}

/// A cached answer. Only answers that found something are kept: a name or a membership
/// that does not exist yet is read from the database every time, so a creation never has
/// to be announced.
pub(super) enum Value {
    /// A user row.
    User(UserRecord),
    /// A non-empty set of permissions.
    Permissions(Permissions),
}

impl Value {
    /// A copy to hand out: the cache keeps its own.
    pub(super) fn copy(&self) -> Self {
        match self {
            Self::User(u) => Self::User(copy_user(u)),
            Self::Permissions(p) => Self::Permissions(*p),
        }
    }

    fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User(u) => Some(u.id),
            Self::Permissions(_) => None,
        }
    }
}

/// A field-by-field copy ([`UserRecord`] is deliberately not `Clone`, so that copies of a
/// password hash are made on purpose).
pub(super) fn copy_user(u: &UserRecord) -> UserRecord {
    UserRecord {
        id: u.id,
        username: u.username.clone(),
        password_hash: u.password_hash.clone(),
        admin: u.admin,
    }
}

struct Entry {
    value: Value,
    /// When the read that produced it started: its age counts from there.
    read_at: Instant,
}

/// Permission to store the answer of one read: the generation and time at its start.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    generation: u64,
    read_at: Instant,
}

/// What a lookup found.
pub(super) enum Lookup {
    /// A fresh answer.
    Hit(Value),
    /// Nothing usable: read the store, then offer the answer with this ticket.
    Miss(Ticket),
    /// The cache is not serving (no source watching the database): read the store and
    /// keep nothing.
    Bypass,
}

/// The entries, the generation and whether a source is watching.
pub(super) struct Entries {
    map: HashMap<Key, Entry>,
    generation: u64,
    connected: bool,
    capacity: usize,
    max_age: Duration,
}

impl Entries {
    /// Empty and not serving until a source connects.
    pub(super) fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            map: HashMap::new(),
            generation: 0,
            connected: false,
            capacity: capacity.max(1),
            max_age,
        }
    }

    /// Whether reads may be answered from memory.
    pub(super) fn serving(&self) -> bool {
        self.connected && !self.max_age.is_zero()
    }

    /// The entry for `key` if it is younger than the maximum age at `now`.
    pub(super) fn lookup(&mut self, key: &Key, now: Instant) -> Lookup {
        if !self.serving() {
            return Lookup::Bypass;
        }
        match self.map.get(key) {
            Some(entry) if now.saturating_duration_since(entry.read_at) < self.max_age => {
                return Lookup::Hit(entry.value.copy());
            }
            Some(_) => {
                self.map.remove(key);
            }
            None => {}
        }
        Lookup::Miss(Ticket {
            generation: self.generation,
            read_at: now,
        })
    }

    /// Stores what a read found, unless anything was invalidated since it started (its
    /// answer may predate that change) or the cache stopped serving.
    pub(super) fn store(&mut self, ticket: Ticket, key: Key, value: Value, now: Instant) {
        if !self.serving() || ticket.generation != self.generation {
            return;
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            self.make_room(now);
        }
        self.map.insert(
            key,
            Entry {
                value,
                read_at: ticket.read_at,
            },
        );
    }

    /// Drops expired entries; if that is not enough, arbitrary ones (the map's iteration
    /// order), until one more fits.
    fn make_room(&mut self, now: Instant) {
        let max_age = self.max_age;
        self.map
            .retain(|_, e| now.saturating_duration_since(e.read_at) < max_age);
        while self.map.len() >= self.capacity {
            let Some(victim) = self.map.keys().next().cloned() else {
                break;
            };
            self.map.remove(&victim);
        }
    }

    /// Forgets what `what` names, and refuses every read in flight its answer.
    pub(super) fn invalidate(&mut self, what: Invalidation) {
        self.generation = self.generation.wrapping_add(1);
        match what {
            Invalidation::User(user) => self.map.retain(|_, e| e.value.user_id() != Some(user)),
            Invalidation::Membership(space, user) => {
                self.map.remove(&Key::Membership(space, user));
            }
            Invalidation::Everything => self.map.clear(),
        }
    }

    /// A source started or stopped watching: either way, nothing held so far can be trusted.
    pub(super) fn set_connected(&mut self, connected: bool) {
        self.invalidate(Invalidation::Everything);
        self.connected = connected;
    }

    /// How many entries are held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    fn membership(n: i64) -> Key {
        Key::Membership(SpaceId::from_i64(n).unwrap(), UserId::from_i64(1).unwrap())
    }

    fn serving(capacity: usize) -> Entries {
        let mut entries = Entries::new(capacity, Duration::from_secs(5));
        entries.set_connected(true);
        entries
    }

    fn put(entries: &mut Entries, key: Key, now: Instant) {
        let Lookup::Miss(ticket) = entries.lookup(&key, now) else {
            panic!("expected a miss");
        };
        entries.store(ticket, key, Value::Permissions(Permissions::READ), now);
    }

    #[test]
    fn the_entries_never_outgrow_their_capacity() {
        let mut entries = serving(3);
        let now = SystemClock.now();
        for n in 1..=10 {
            put(&mut entries, membership(n), now);
            assert!(entries.len() <= 3);
        }
        assert!(matches!(
            entries.lookup(&membership(10), now),
            Lookup::Hit(_)
        ));
    }

    #[test]
    fn expired_entries_make_room_before_fresh_ones_are_evicted() {
        let mut entries = serving(2);
        let start = SystemClock.now();
        put(&mut entries, membership(1), start);
        let later = start + Duration::from_secs(4);
        put(&mut entries, membership(2), later);
        let expired = start + Duration::from_secs(6);
        put(&mut entries, membership(3), expired);
        assert!(matches!(
            entries.lookup(&membership(2), expired),
            Lookup::Hit(_)
        ));
        assert!(matches!(
            entries.lookup(&membership(3), expired),
            Lookup::Hit(_)
        ));
    }

    #[test]
    fn a_zero_maximum_age_never_serves() {
        let mut entries = Entries::new(10, Duration::ZERO);
        entries.set_connected(true);
        assert!(matches!(
            entries.lookup(&membership(1), SystemClock.now()),
            Lookup::Bypass
        ));
    }
}
