//! The decorator against an in-memory store: what each write drops, the race between a
//! slow read and an invalidation, the maximum age, and the bypass while disconnected.

use super::memory_store::MemoryStore;
use super::{CachedStore, Invalidation, InvalidationSink, StoreCacheSettings};
use crate::clock::ManualClock;
use crate::domain::{Permissions, SpaceId, SpaceName, Username};
use crate::ports::{Store, UserRecord};
use std::sync::Arc;
use std::time::Duration;

const MAX_AGE: Duration = Duration::from_secs(5);

struct Fixture {
    memory: Arc<MemoryStore>,
    cache: Arc<CachedStore>,
    clock: Arc<ManualClock>,
    alice: UserRecord,
    bob: UserRecord,
    space: SpaceId,
}

fn name(text: &str) -> Username {
    Username::parse(text).unwrap()
}

/// Alice owns a space where Bob holds `r`; the cache is connected and empty.
async fn fixture() -> Fixture {
    let memory = Arc::new(MemoryStore::default());
    let clock = ManualClock::new();
    let cache = Arc::new(CachedStore::new(
        memory.clone(),
        StoreCacheSettings {
            max_age: MAX_AGE,
            capacity: 100,
        },
        clock.clone(),
    ));
    let alice = memory.create_user(&name("alice"), "hash-a").await.unwrap();
    let bob = memory.create_user(&name("bob"), "hash-b").await.unwrap();
    let space = memory
        .create_space(&SpaceName::parse("general").unwrap(), alice.id)
        .await
        .unwrap()
        .id;
    memory
        .grant(space, bob.id, Permissions::READ, alice.id)
        .await
        .unwrap();
    cache.connected();
    Fixture {
        memory,
        cache,
        clock,
        alice,
        bob,
        space,
    }
}

impl Fixture {
    /// Reads Bob's row and membership through the cache; returns how many reads reached
    /// the store.
    async fn read_bob(&self) -> (UserRecord, Permissions, usize) {
        let before = self.memory.reads();
        let user = self.cache.find_user(&name("bob")).await.unwrap().unwrap();
        let held = self
            .cache
            .permissions_of(self.space, self.bob.id)
            .await
            .unwrap();
        (user, held, self.memory.reads() - before)
    }
}

#[tokio::test]
async fn a_second_read_of_a_user_and_a_membership_is_served_from_memory() {
    let f = fixture().await;
    assert_eq!(f.read_bob().await.2, 2);
    let (user, held, reads) = f.read_bob().await;
    assert_eq!(reads, 0);
    assert_eq!((user.id, user.password_hash.as_str()), (f.bob.id, "hash-b"));
    assert_eq!(held, Permissions::READ);
}

#[tokio::test]
async fn users_are_cached_by_name_whatever_its_case() {
    let f = fixture().await;
    f.read_bob().await;
    let before = f.memory.reads();
    let user = f.cache.find_user(&name("BoB")).await.unwrap().unwrap();
    assert_eq!(user.id, f.bob.id);
    assert_eq!(f.memory.reads(), before);
}

#[tokio::test]
async fn a_password_change_or_an_admin_flag_is_read_at_once_after_the_write() {
    let f = fixture().await;
    f.read_bob().await;
    f.cache
        .set_password_hash(f.bob.id, "hash-b2")
        .await
        .unwrap();
    let (user, _, reads) = f.read_bob().await;
    assert_eq!((user.password_hash.as_str(), reads), ("hash-b2", 1));
    f.cache.set_admin(f.bob.id, true).await.unwrap();
    let (user, _, reads) = f.read_bob().await;
    assert!(user.admin);
    assert_eq!(
        reads, 1,
        "only the user row was dropped, not the membership"
    );
}

#[tokio::test]
async fn a_grant_or_a_revocation_is_read_at_once_after_the_write() {
    let f = fixture().await;
    f.read_bob().await;
    f.cache
        .grant(f.space, f.bob.id, Permissions::WRITE, f.alice.id)
        .await
        .unwrap();
    let (_, held, reads) = f.read_bob().await;
    assert_eq!(held, Permissions::READ.union(Permissions::WRITE));
    assert_eq!(
        reads, 1,
        "only the membership was dropped, not the user row"
    );
    f.cache
        .revoke(f.space, f.bob.id, Permissions::ALL)
        .await
        .unwrap();
    assert_eq!(f.read_bob().await.1, Permissions::NONE);
}

#[tokio::test]
async fn a_revocation_drops_only_that_membership() {
    let f = fixture().await;
    f.cache.permissions_of(f.space, f.alice.id).await.unwrap();
    f.read_bob().await;
    f.cache
        .revoke(f.space, f.bob.id, Permissions::READ)
        .await
        .unwrap();
    let before = f.memory.reads();
    assert_eq!(
        f.cache.permissions_of(f.space, f.alice.id).await.unwrap(),
        Permissions::ALL
    );
    assert_eq!(f.memory.reads(), before, "alice's membership stayed cached");
}

#[tokio::test]
async fn a_new_space_gives_its_owner_rwd_at_once_and_non_members_are_never_cached() {
    let f = fixture().await;
    let next = SpaceId::from_i64(f.space.get() + 1).unwrap();
    assert_eq!(
        f.cache.permissions_of(next, f.bob.id).await.unwrap(),
        Permissions::NONE
    );
    let created = f
        .cache
        .create_space(&SpaceName::parse("bobs").unwrap(), f.bob.id)
        .await
        .unwrap();
    assert_eq!(created.id, next);
    assert_eq!(
        f.cache.permissions_of(next, f.bob.id).await.unwrap(),
        Permissions::ALL
    );
}

#[tokio::test]
async fn an_unknown_name_is_not_cached_so_a_new_account_is_found_at_once() {
    let f = fixture().await;
    assert!(f.cache.find_user(&name("carol")).await.unwrap().is_none());
    f.cache.create_user(&name("carol"), "hash-c").await.unwrap();
    assert!(f.cache.find_user(&name("Carol")).await.unwrap().is_some());
    assert!(
        f.cache
            .find_linked_user("https://idp", "sub-1")
            .await
            .unwrap()
            .is_none()
    );
    f.cache
        .create_linked_user(&name("dave"), "https://idp", "sub-1")
        .await
        .unwrap();
    let linked = f.cache.find_linked_user("https://idp", "sub-1").await;
    assert_eq!(linked.unwrap().unwrap().username.as_str(), "dave");
}

#[tokio::test]
async fn a_linked_identity_is_cached_and_dropped_with_its_user() {
    let f = fixture().await;
    f.cache
        .link_identity(f.bob.id, "ldap://dir", "bob")
        .await
        .unwrap();
    let linked = || f.cache.find_linked_user("ldap://dir", "bob");
    assert!(!linked().await.unwrap().unwrap().admin);
    let before = f.memory.reads();
    linked().await.unwrap();
    assert_eq!(f.memory.reads(), before);
    f.cache.set_admin(f.bob.id, true).await.unwrap();
    assert!(linked().await.unwrap().unwrap().admin);
}

#[tokio::test]
async fn a_read_that_started_before_a_change_does_not_cache_its_stale_answer() {
    let f = fixture().await;
    let gate = f.memory.hold_next_read();
    let cache = f.cache.clone();
    let slow = tokio::spawn(async move { cache.find_user(&name("bob")).await });
    // The slow read has seen bob as a non-admin; the change lands while it is in flight.
    gate.reached.notified().await;
    f.cache.set_admin(f.bob.id, true).await.unwrap();
    gate.release.notify_one();
    let stale = slow.await.unwrap().unwrap().unwrap();
    assert!(!stale.admin, "the read returns what it read");
    let (user, _, reads) = f.read_bob().await;
    assert!(user.admin, "but it did not cache it");
    assert_eq!(reads, 2);
}

#[tokio::test]
async fn a_read_in_flight_during_a_reported_change_of_another_process_is_not_cached() {
    let f = fixture().await;
    let gate = f.memory.hold_next_read();
    let cache = f.cache.clone();
    let (space, bob) = (f.space, f.bob.id);
    let slow = tokio::spawn(async move { cache.permissions_of(space, bob).await });
    gate.reached.notified().await;
    // Another node revokes: the change reaches the store, then the notification arrives.
    f.memory
        .revoke(f.space, f.bob.id, Permissions::READ)
        .await
        .unwrap();
    f.cache
        .invalidate(Invalidation::Membership(f.space, f.bob.id));
    gate.release.notify_one();
    assert_eq!(slow.await.unwrap().unwrap(), Permissions::READ);
    assert_eq!(f.read_bob().await.1, Permissions::NONE);
}

#[tokio::test]
async fn an_unreported_change_is_seen_once_the_entry_reaches_its_maximum_age() {
    let f = fixture().await;
    f.read_bob().await;
    f.memory.set_admin(f.bob.id, true).await.unwrap();
    f.clock.advance(MAX_AGE - Duration::from_millis(1));
    assert!(!f.read_bob().await.0.admin, "stale within the maximum age");
    f.clock.advance(Duration::from_millis(1));
    assert!(f.read_bob().await.0.admin, "fresh at the maximum age");
}

#[tokio::test]
async fn while_disconnected_every_read_goes_to_the_store_and_a_reconnection_starts_empty() {
    let f = fixture().await;
    f.read_bob().await;
    f.cache.disconnected();
    assert!(!f.cache.serving());
    for _ in 0..3 {
        assert_eq!(f.read_bob().await.2, 2);
    }
    // A change made while nobody listened: the reconnection must not trust old entries.
    f.memory.set_admin(f.bob.id, true).await.unwrap();
    f.cache.connected();
    assert!(f.cache.serving());
    let (user, _, reads) = f.read_bob().await;
    assert!(user.admin);
    assert_eq!(reads, 2);
    assert_eq!(f.read_bob().await.2, 0);
}

#[tokio::test]
async fn a_cache_that_never_connected_reads_through() {
    let memory = Arc::new(MemoryStore::default());
    let cache = CachedStore::new(
        memory.clone(),
        StoreCacheSettings {
            max_age: MAX_AGE,
            capacity: 10,
        },
        ManualClock::new(),
    );
    memory.create_user(&name("alice"), "h").await.unwrap();
    for n in 1..=3 {
        cache.find_user(&name("alice")).await.unwrap();
        assert_eq!(memory.reads(), n);
    }
}

#[tokio::test]
async fn reported_changes_of_a_user_drop_that_user_only_and_everything_drops_all() {
    let f = fixture().await;
    f.read_bob().await;
    f.cache.find_user(&name("alice")).await.unwrap();
    f.cache.invalidate(Invalidation::User(f.alice.id));
    assert_eq!(f.read_bob().await.2, 0);
    f.cache.invalidate(Invalidation::Everything);
    assert_eq!(f.read_bob().await.2, 2);
}
