//! A store in memory for the cache's tests: users, linked identities and memberships, a
//! count of the reads that reached it, and a gate that holds a read after it has looked at
//! the data, so a test can change the data while that read is still in flight.

use crate::domain::{
    MessageId, MessageText, Permissions, SpaceId, SpaceName, Timestamp, UserId, Username,
};
use crate::ports::{
    MemberRecord, MessagePage, MessageRecord, SpaceRecord, Store, StoreError, UserRecord,
};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
struct Data {
    users: Vec<(i64, String, String, bool)>,
    linked: HashMap<(String, String), i64>,
    memberships: HashMap<(i64, i64), Permissions>,
    spaces: i64,
}

/// Holds the next gated read between reading and answering.
pub(super) struct Gate {
    /// Notified once the read has looked at the data.
    pub(super) reached: Notify,
    /// Notify to let the read answer.
    pub(super) release: Notify,
}

#[derive(Default)]
pub(super) struct MemoryStore {
    data: Mutex<Data>,
    /// Reads that reached this store: `find_user`, `find_linked_user`, `permissions_of`.
    pub(super) reads: AtomicUsize,
    gate: Mutex<Option<Arc<Gate>>>,
}

impl MemoryStore {
    /// Holds the next read after it has looked at the data.
    pub(super) fn hold_next_read(&self) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            reached: Notify::new(),
            release: Notify::new(),
        });
        *self.gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    pub(super) fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    async fn answer<T>(&self, value: T) -> T {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.reached.notify_one();
            gate.release.notified().await;
        }
        value
    }

    fn record(row: &(i64, String, String, bool)) -> UserRecord {
        UserRecord {
            id: UserId::from_i64(row.0).unwrap(),
            username: Username::parse(&row.1).unwrap(),
            password_hash: row.2.clone(),
            admin: row.3,
        }
    }

    fn user_by_id(&self, id: i64) -> Option<UserRecord> {
        let data = self.data.lock().unwrap();
        data.users.iter().find(|u| u.0 == id).map(Self::record)
    }

    fn change_user(&self, user: UserId, change: impl FnOnce(&mut (i64, String, String, bool))) {
        let mut data = self.data.lock().unwrap();
        if let Some(row) = data.users.iter_mut().find(|u| u.0 == user.get()) {
            change(row);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<UserRecord, StoreError> {
        let mut data = self.data.lock().unwrap();
        let lower = username.as_str().to_ascii_lowercase();
        if data.users.iter().any(|u| u.1.to_ascii_lowercase() == lower) {
            return Err(StoreError::Conflict);
        }
        let id = data.users.len() as i64 + 1;
        let row = (
            id,
            username.as_str().to_owned(),
            password_hash.to_owned(),
            false,
        );
        data.users.push(row.clone());
        Ok(Self::record(&row))
    }

    async fn find_user(&self, username: &Username) -> Result<Option<UserRecord>, StoreError> {
        let found = {
            let data = self.data.lock().unwrap();
            data.users
                .iter()
                .find(|u| u.1.eq_ignore_ascii_case(username.as_str()))
                .map(Self::record)
        };
        Ok(self.answer(found).await)
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> Result<(), StoreError> {
        self.change_user(user, |row| row.2 = password_hash.to_owned());
        Ok(())
    }

    async fn set_admin(&self, user: UserId, admin: bool) -> Result<(), StoreError> {
        self.change_user(user, |row| row.3 = admin);
        Ok(())
    }

    async fn find_linked_user(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let id = {
            let data = self.data.lock().unwrap();
            data.linked
                .get(&(source.to_owned(), subject.to_owned()))
                .copied()
        };
        let found = id.and_then(|id| self.user_by_id(id));
        Ok(self.answer(found).await)
    }

    async fn link_identity(
        &self,
        user: UserId,
        source: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        let mut data = self.data.lock().unwrap();
        data.linked
            .insert((source.to_owned(), subject.to_owned()), user.get());
        Ok(())
    }

    async fn create_linked_user(
        &self,
        username: &Username,
        source: &str,
        subject: &str,
    ) -> Result<UserRecord, StoreError> {
        let user = self
            .create_user(username, crate::ports::NO_LOCAL_PASSWORD)
            .await?;
        self.link_identity(user.id, source, subject).await?;
        Ok(user)
    }

    async fn create_space(
        &self,
        name: &SpaceName,
        owner: UserId,
    ) -> Result<SpaceRecord, StoreError> {
        let owner_name = self.user_by_id(owner.get()).unwrap().username;
        let mut data = self.data.lock().unwrap();
        data.spaces += 1;
        let id = data.spaces;
        data.memberships.insert((id, owner.get()), Permissions::ALL);
        Ok(SpaceRecord {
            id: SpaceId::from_i64(id).unwrap(),
            name: name.clone(),
            owner: owner_name,
            created_at: Timestamp::from_micros(0),
        })
    }

    async fn spaces_of(&self, _user: UserId) -> Result<Vec<SpaceRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn find_space(&self, _space: SpaceId) -> Result<Option<SpaceRecord>, StoreError> {
        Ok(None)
    }

    async fn permissions_of(
        &self,
        space: SpaceId,
        user: UserId,
    ) -> Result<Permissions, StoreError> {
        let held = {
            let data = self.data.lock().unwrap();
            data.memberships
                .get(&(space.get(), user.get()))
                .copied()
                .unwrap_or(Permissions::NONE)
        };
        Ok(self.answer(held).await)
    }

    async fn members_of(&self, _space: SpaceId) -> Result<Vec<MemberRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn grant(
        &self,
        space: SpaceId,
        user: UserId,
        add: Permissions,
        _by: UserId,
    ) -> Result<Permissions, StoreError> {
        let mut data = self.data.lock().unwrap();
        let held = data
            .memberships
            .entry((space.get(), user.get()))
            .or_insert(Permissions::NONE);
        *held = held.union(add);
        Ok(*held)
    }

    async fn revoke(
        &self,
        space: SpaceId,
        user: UserId,
        remove: Permissions,
    ) -> Result<Permissions, StoreError> {
        let mut data = self.data.lock().unwrap();
        let key = (space.get(), user.get());
        let left = data
            .memberships
            .get(&key)
            .copied()
            .unwrap_or(Permissions::NONE)
            .without(remove);
        if left.is_empty() {
            data.memberships.remove(&key);
        } else {
            data.memberships.insert(key, left);
        }
        Ok(left)
    }

    async fn insert_message(
        &self,
        _space: SpaceId,
        _author: UserId,
        _body: &MessageText,
    ) -> Result<MessageRecord, StoreError> {
        Err(StoreError::Internal("not kept in memory".into()))
    }

    async fn messages_in(
        &self,
        _space: SpaceId,
        _page: MessagePage,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn find_message(
        &self,
        _space: SpaceId,
        _id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Ok(None)
    }

    async fn delete_message(&self, _space: SpaceId, _id: MessageId) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
