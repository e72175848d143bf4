//! The read cache as a [`Store`] decorator: the two reads every authenticated request makes
//! (the caller's user row, their membership of the space) are answered from memory, every
//! other call goes straight through, and every write this process makes drops what it
//! changed the moment it returns.

use super::entries::{Entries, Key, Lookup, Value, copy_user};
use super::invalidation::{Invalidation, InvalidationSink};
use crate::clock::SharedClock;
use crate::domain::{MessageId, MessageText, Permissions, SpaceId, SpaceName, UserId, Username};
use crate::ports::{
    MemberRecord, MessagePage, MessageRecord, SpaceRecord, Store, StoreError, UserRecord,
};
use async_trait::async_trait;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How much the cache holds and for how long.
#[derive(Debug, Clone, Copy)]
pub struct StoreCacheSettings {
    /// The longest an answer is served after the read that produced it started: the bound
    /// on staleness when a change is never reported (a notification lost on a connection
    /// that looks alive). Zero switches the cache off.
    pub max_age: Duration,
    /// Entries held at most (users, linked identities and memberships together).
    pub capacity: usize,
}

/// A [`Store`] that answers `find_user`, `find_linked_user` and `permissions_of` from
/// memory while an [`InvalidationSource`](super::InvalidationSource) reports to it as
/// connected, and sends every other call, and every read while it is not connected, to the
/// wrapped store.
///
/// Exactness: a write made through this store drops the entries it changed once the
/// wrapped store returns (whether it succeeded or not: a failed write may still have
/// committed); writes of other processes arrive through the source. A read records the
/// cache's generation before it asks the wrapped store and stores its answer only if no
/// invalidation happened meanwhile, so an answer read before a change is never kept after
/// the change was announced. Every entry also expires `max_age` after its read started.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    entries: Mutex<Entries>,
    clock: SharedClock,
}

impl CachedStore {
    /// A cache over `inner`, reading time from `clock`. It starts disconnected (every read
    /// goes to `inner`) until a source calls [`InvalidationSink::connected`].
    pub fn new(inner: Arc<dyn Store>, settings: StoreCacheSettings, clock: SharedClock) -> Self {
        Self {
            inner,
            entries: Mutex::new(Entries::new(settings.capacity, settings.max_age)),
            clock,
        }
    }

    /// Whether reads are being answered from memory (a source is connected and the maximum
    /// age is not zero).
    pub fn serving(&self) -> bool {
        self.entries().is_some_and(|e| e.serving())
    }

    /// The entries, or `None` if a panic poisoned the lock: the cache is then bypassed for
    /// good, which is slow but never stale.
    fn entries(&self) -> Option<MutexGuard<'_, Entries>> {
        self.entries.lock().ok()
    }

    fn lookup(&self, key: &Key) -> Lookup {
        let now = self.clock.now();
        let found = self
            .entries()
            .map_or(Lookup::Bypass, |mut e| e.lookup(key, now));
        let outcome = match found {
            Lookup::Hit(_) => "hit",
            Lookup::Miss(_) => "miss",
            Lookup::Bypass => "bypass",
        };
        metrics::counter!("natterjack_store_cache_reads_total", "outcome" => outcome).increment(1);
        found
    }

    fn remember(&self, lookup: Lookup, key: Key, value: Value) {
        if let Lookup::Miss(ticket) = lookup {
            let now = self.clock.now();
            if let Some(mut e) = self.entries() {
                e.store(ticket, key, value, now);
            }
        }
    }

    fn drop_entries(&self, what: Invalidation) {
        if let Some(mut e) = self.entries() {
            e.invalidate(what);
        }
    }

    fn set_connected(&self, connected: bool) {
        if let Some(mut e) = self.entries() {
            e.set_connected(connected);
        }
        metrics::gauge!("natterjack_store_cache_connected").set(if connected { 1.0 } else { 0.0 });
    }

    /// A user read through the cache: `read` runs only on a miss or while bypassed.
    async fn user_through(
        &self,
        key: Key,
        read: impl Future<Output = Result<Option<UserRecord>, StoreError>>,
    ) -> Result<Option<UserRecord>, StoreError> {
        let lookup = self.lookup(&key);
        if let Lookup::Hit(Value::User(user)) = lookup {
            return Ok(Some(user));
        }
        let found = read.await?;
        if let Some(user) = &found {
            self.remember(lookup, key, Value::User(copy_user(user)));
        }
        Ok(found)
    }
}

impl InvalidationSink for CachedStore {
    fn connected(&self) {
        self.set_connected(true);
    }

    fn disconnected(&self) {
        self.set_connected(false);
    }

    fn invalidate(&self, what: Invalidation) {
        self.drop_entries(what);
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<UserRecord, StoreError> {
        // A name that did not exist was never cached: nothing to drop.
        self.inner.create_user(username, password_hash).await
    }

    async fn find_user(&self, username: &Username) -> Result<Option<UserRecord>, StoreError> {
        self.user_through(Key::user(username), self.inner.find_user(username))
            .await
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> Result<(), StoreError> {
        let done = self.inner.set_password_hash(user, password_hash).await;
        self.drop_entries(Invalidation::User(user));
        done
    }

    async fn set_admin(&self, user: UserId, admin: bool) -> Result<(), StoreError> {
        let done = self.inner.set_admin(user, admin).await;
        self.drop_entries(Invalidation::User(user));
        done
    }

    async fn find_linked_user(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let key = Key::Linked(source.to_owned(), subject.to_owned());
        self.user_through(key, self.inner.find_linked_user(source, subject))
            .await
    }

    async fn link_identity(
        &self,
        user: UserId,
        source: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        // An unlinked identity was never cached; dropping the user's entries keeps the rule
        // "a write drops what names its user" without exceptions.
        let done = self.inner.link_identity(user, source, subject).await;
        self.drop_entries(Invalidation::User(user));
        done
    }

    async fn create_linked_user(
        &self,
        username: &Username,
        source: &str,
        subject: &str,
    ) -> Result<UserRecord, StoreError> {
        // Neither the name nor the identity existed, so neither was cached.
        self.inner
            .create_linked_user(username, source, subject)
            .await
    }

    async fn create_space(
        &self,
        name: &SpaceName,
        owner: UserId,
    ) -> Result<SpaceRecord, StoreError> {
        let created = self.inner.create_space(name, owner).await;
        self.drop_entries(match &created {
            Ok(space) => Invalidation::Membership(space.id, owner),
            // Which space, if any, was created is unknown.
            Err(_) => Invalidation::Everything,
        });
        created
    }

    async fn spaces_of(&self, user: UserId) -> Result<Vec<SpaceRecord>, StoreError> {
        self.inner.spaces_of(user).await
    }

    async fn find_space(&self, space: SpaceId) -> Result<Option<SpaceRecord>, StoreError> {
        self.inner.find_space(space).await
    }

    async fn permissions_of(
        &self,
        space: SpaceId,
        user: UserId,
    ) -> Result<Permissions, StoreError> {
        let key = Key::Membership(space, user);
        let lookup = self.lookup(&key);
        if let Lookup::Hit(Value::Permissions(held)) = lookup {
            return Ok(held);
        }
        let held = self.inner.permissions_of(space, user).await?;
        if !held.is_empty() {
            self.remember(lookup, key, Value::Permissions(held));
        }
        Ok(held)
    }

    async fn members_of(&self, space: SpaceId) -> Result<Vec<MemberRecord>, StoreError> {
        self.inner.members_of(space).await
    }

    async fn grant(
        &self,
        space: SpaceId,
        user: UserId,
        add: Permissions,
        by: UserId,
    ) -> Result<Permissions, StoreError> {
        let done = self.inner.grant(space, user, add, by).await;
        self.drop_entries(Invalidation::Membership(space, user));
        done
    }

    async fn revoke(
        &self,
        space: SpaceId,
        user: UserId,
        remove: Permissions,
    ) -> Result<Permissions, StoreError> {
        let done = self.inner.revoke(space, user, remove).await;
        self.drop_entries(Invalidation::Membership(space, user));
        done
    }

    async fn insert_message(
        &self,
        space: SpaceId,
        author: UserId,
        body: &MessageText,
    ) -> Result<MessageRecord, StoreError> {
        self.inner.insert_message(space, author, body).await
    }

    async fn messages_in(
        &self,
        space: SpaceId,
        page: MessagePage,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.inner.messages_in(space, page).await
    }

    async fn find_message(
        &self,
        space: SpaceId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.inner.find_message(space, id).await
    }

    async fn delete_message(&self, space: SpaceId, id: MessageId) -> Result<bool, StoreError> {
        self.inner.delete_message(space, id).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}
