use super::connections::{Connections, Lease};
use super::errors::classify;
use super::migrate;
use super::sealed;
use crate::Migrated;
use crate::ids::{BLOCK, IdBlocks, RowTable};
use crate::rotation::{KeyUsage, ResealBatch, ResealCursor, Resealing};
use crate::rows::{self, MessageRow, SpaceRow, corrupt, message, permissions, space};
use crate::sealing::{Keyring, Place};
use async_trait::async_trait;
use natterjack_core::clock::{Clock, SystemClock};
use natterjack_core::domain::{
    MessageId, MessageText, Permissions, SpaceId, SpaceName, Timestamp, UserId, Username,
};
use natterjack_core::ports::{
    MemberRecord, MessagePage, MessageRecord, NO_LOCAL_PASSWORD, SpaceRecord, Store, StoreError,
    UserRecord,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The SQLite store: a pool of connections that each run under the authorizer, and the
/// keyring that seals and opens user content.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) conns: Arc<Connections>,
    keyring: Arc<Keyring>,
    ids: Arc<IdBlocks>,
}

type UserRow = (i64, String, String, i64);

const SPACE_BY_ID: &str = "SELECT s.id, s.name, s.key_id, u.username, s.created_at FROM spaces s JOIN users u ON u.id = s.owner_id WHERE s.id = ?1";

pub(super) fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
}

impl SqliteStore {
    /// Creates the database file if needed and applies pending migrations on a separate
    /// owner connection, sealing plaintext rows with `keyring` on the way to schema 7.
    pub async fn migrate(path: &Path, keyring: &Keyring) -> Result<Migrated, StoreError> {
        let mut owner = Self::owner(path, true).await?;
        let done = migrate::run(&mut owner, keyring).await?;
        owner.close().await.map_err(classify)?;
        Ok(done)
    }

    /// A connection without the authorizer, for migrations and the operator's key changes.
    async fn owner(path: &Path, create: bool) -> Result<SqliteConnection, StoreError> {
        options(path)
            .create_if_missing(create)
            .connect()
            .await
            .map_err(classify)
    }

    /// The data keys of the database at `path` (none when it does not exist or predates
    /// them): a missing key-encryption key may be generated only when there are none.
    pub async fn stored_data_keys(
        path: &Path,
    ) -> Result<Vec<crate::sealing::DataKeyRow>, StoreError> {
        if !path.exists() {
            return Ok(Vec::new());
        }
        let mut conn = Self::owner(path, false).await?;
        let found: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'data_keys'",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(classify)?;
        let held = if found == 1 {
            sealed::data_keys(&mut conn).await?
        } else {
            Vec::new()
        };
        conn.close().await.map_err(classify)?;
        Ok(held)
    }

    /// Makes a new data key current (new writes use it once each server has reloaded its
    /// keys); the servers then re-seal older rows in the background. Returns its id.
    pub async fn rotate_key(path: &Path, keyring: &Keyring) -> Result<u32, StoreError> {
        let mut owner = Self::owner(path, false).await?;
        sealed::load(&mut owner, keyring).await?;
        let mut tx = owner
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)?;
        let id = sealed::add_current_key(&mut tx, keyring).await?;
        tx.commit().await.map_err(classify)?;
        owner.close().await.map_err(classify)?;
        Ok(id)
    }

    /// Writes a consistent copy of the live database to `target` (`VACUUM INTO`, on an
    /// owner connection: the server's own connections may not), while servers keep
    /// serving. The copy is as sealed as the database: opening it needs the
    /// key-encryption key. `target` must be a new or empty file (the caller creates it
    /// 0600 first, so the copy is never readable by others, even for a moment).
    pub async fn backup(path: &Path, target: &Path) -> Result<(), StoreError> {
        let target = target
            .to_str()
            .ok_or_else(|| StoreError::Internal("the backup path is not UTF-8".into()))?;
        let mut owner = Self::owner(path, false).await?;
        sqlx::query("VACUUM INTO ?1")
            .bind(target)
            .execute(&mut owner)
            .await
            .map_err(classify)?;
        owner.close().await.map_err(classify)
    }

    /// Erases a retired data key, refused while any row is sealed under it.
    pub async fn destroy_key(path: &Path, key: u32) -> Result<(), StoreError> {
        let mut owner = Self::owner(path, false).await?;
        sealed::destroy_key(&mut owner, key).await?;
        owner.close().await.map_err(classify)
    }

    /// Re-wraps every data key with `next` (rotating the key-encryption key). Returns
    /// how many keys were re-wrapped.
    pub async fn rewrap_keys(
        path: &Path,
        keyring: &Keyring,
        next: &crate::sealing::KeyEncryptionKey,
    ) -> Result<usize, StoreError> {
        let mut owner = Self::owner(path, false).await?;
        sealed::load(&mut owner, keyring).await?;
        let done = sealed::rewrap(&mut owner, keyring, next).await?;
        owner.close().await.map_err(classify)?;
        Ok(done)
    }

    /// Opens the server's connection pool. Fails if the schema is not at the version this
    /// build expects, so a server never runs against a half-migrated database, or if the
    /// key-encryption key in `keyring` does not open every data key (the error names it).
    pub async fn open(
        path: &Path,
        max_connections: u32,
        keyring: Arc<Keyring>,
    ) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::Internal(format!(
                "no database at {}: run `natterjack migrate` first",
                path.display()
            )));
        }
        {
            let mut check: SqliteConnection = options(path).connect().await.map_err(classify)?;
            let version = migrate::current_version(&mut check)
                .await
                .map_err(classify)?;
            if version != migrate::latest_version() {
                return Err(StoreError::Internal(format!(
                    "database schema is at version {version}, this build needs {}: run `natterjack migrate`",
                    migrate::latest_version()
                )));
            }
            sealed::load(&mut check, &keyring).await?;
            check.close().await.map_err(classify)?;
            if keyring.current().is_none() {
                return Err(StoreError::Internal(
                    "the database holds no current data key: run `natterjack migrate`".into(),
                ));
            }
        }
        let store = Self {
            conns: Arc::new(Connections::new(
                options(path),
                max_connections,
                Duration::from_secs(5),
            )),
            keyring,
            ids: Arc::new(IdBlocks::default()),
        };
        // Open the first connection now, authorizer and all, so a database that cannot be
        // served stops the start-up instead of the first request.
        drop(store.conns.lease().await?);
        Ok(store)
    }

    /// One of the server's connections, under the authorizer, for as long as the lease is
    /// held. Exposed for the least-privilege tests and the benchmarks.
    pub async fn connection(&self) -> Result<Lease<'_>, StoreError> {
        self.conns.lease().await
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.conns.close().await;
    }

    /// The keyring sealing this store's content.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The id of the next row of `table`, from this store's reserved block, reserving a
    /// new block when it is used up.
    async fn next_id(&self, table: RowTable) -> Result<i64, StoreError> {
        if let Some(id) = self.ids.take(table) {
            return Ok(id);
        }
        let mut conn = self.conns.lease().await?;
        let end: i64 = sqlx::query_scalar(
            "UPDATE row_ids SET next = next + ?2 WHERE name = ?1 RETURNING next",
        )
        .bind(table.name())
        .bind(BLOCK)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        Ok(self.ids.refill(table, end))
    }

    /// Reloads the data keys first if a row names one this process does not hold yet.
    async fn keys_for(&self, keys: impl IntoIterator<Item = i64>) -> Result<(), StoreError> {
        if rows::needs_reload(&self.keyring, keys) {
            self.reload_keys().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Resealing for SqliteStore {
    async fn reload_keys(&self) -> Result<(), StoreError> {
        let mut conn = self.conns.lease().await?;
        sealed::load(&mut conn, &self.keyring).await
    }

    async fn reseal_batch(
        &self,
        cursor: ResealCursor,
        limit: u32,
    ) -> Result<ResealBatch, StoreError> {
        let mut conn = self.conns.lease().await?;
        sealed::reseal_batch(&mut conn, &self.keyring, cursor, limit).await
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError> {
        let mut conn = self.conns.lease().await?;
        sealed::key_usage(&mut conn).await
    }
}

fn user(row: UserRow) -> Result<UserRecord, StoreError> {
    rows::user(row.0, &row.1, row.2, row.3 == 1)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<UserRecord, StoreError> {
        let mut conn = self.conns.lease().await?;
        let row: UserRow = sqlx::query_as(
            "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?1, ?2, 0, ?3) \
             RETURNING id, username, password_hash, is_admin",
        )
        .bind(username.as_str())
        .bind(password_hash)
        .bind(SystemClock.wall().micros())
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        user(row)
    }

    async fn find_user(&self, username: &Username) -> Result<Option<UserRecord>, StoreError> {
        let mut conn = self.conns.lease().await?;
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, username, password_hash, is_admin FROM users WHERE username = ?1",
        )
        .bind(username.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        row.map(user).transpose()
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> Result<(), StoreError> {
        let mut conn = self.conns.lease().await?;
        sqlx::query("UPDATE users SET password_hash = ?1 WHERE id = ?2")
            .bind(password_hash)
            .bind(user.get())
            .execute(&mut *conn)
            .await
            .map_err(|e| conn.fail(e))?;
        Ok(())
    }

    async fn set_admin(&self, user: UserId, admin: bool) -> Result<(), StoreError> {
        let mut conn = self.conns.lease().await?;
        sqlx::query("UPDATE users SET is_admin = ?1 WHERE id = ?2")
            .bind(i64::from(admin))
            .bind(user.get())
            .execute(&mut *conn)
            .await
            .map_err(|e| conn.fail(e))?;
        Ok(())
    }

    async fn find_linked_user(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let mut conn = self.conns.lease().await?;
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT u.id, u.username, u.password_hash, u.is_admin FROM external_identities e \
             JOIN users u ON u.id = e.user_id WHERE e.source = ?1 AND e.subject = ?2",
        )
        .bind(source)
        .bind(subject)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        row.map(user).transpose()
    }

    async fn link_identity(
        &self,
        user: UserId,
        source: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conns.lease().await?;
        sqlx::query(
            "INSERT INTO external_identities (source, subject, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(source)
        .bind(subject)
        .bind(user.get())
        .bind(SystemClock.wall().micros())
        .execute(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        Ok(())
    }

    async fn create_linked_user(
        &self,
        username: &Username,
        source: &str,
        subject: &str,
    ) -> Result<UserRecord, StoreError> {
        let mut conn = self.conns.lease().await?;
        let now = SystemClock.wall().micros();
        let mut tx = conn.begin(None).await?;
        let row: UserRow = sqlx::query_as(
            "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?1, ?2, 0, ?3) \
             RETURNING id, username, password_hash, is_admin",
        )
        .bind(username.as_str())
        .bind(NO_LOCAL_PASSWORD)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO external_identities (source, subject, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(source)
        .bind(subject)
        .bind(row.0)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        user(row)
    }

    async fn create_space(
        &self,
        name: &SpaceName,
        owner: UserId,
    ) -> Result<SpaceRecord, StoreError> {
        // The row id is part of the seal's associated data: take it first, then seal.
        let id = self.next_id(RowTable::Spaces).await?;
        let (key, sealed) = rows::seal(&self.keyring, &Place::space_name(id), name.as_str())?;
        let mut conn = self.conns.lease().await?;
        let now = SystemClock.wall().micros();
        let mut tx = conn.begin(None).await?;
        let owner_name: String = sqlx::query_scalar(
            "INSERT INTO spaces (id, name, key_id, owner_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             RETURNING (SELECT username FROM users WHERE id = ?4)",
        )
        .bind(id)
        .bind(sealed)
        .bind(key)
        .bind(owner.get())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO memberships (space_id, user_id, permissions, granted_by, granted_at) VALUES (?1, ?2, ?3, ?2, ?4)",
        )
        .bind(id)
        .bind(owner.get())
        .bind(Permissions::ALL.bits())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(SpaceRecord {
            id: natterjack_core::domain::SpaceId::from_i64(id).map_err(|_| corrupt("spaces.id"))?,
            name: name.clone(),
            owner: Username::parse(&owner_name).map_err(|_| corrupt("users.username"))?,
            created_at: Timestamp::from_micros(now),
        })
    }

    async fn spaces_of(&self, user: UserId) -> Result<Vec<SpaceRecord>, StoreError> {
        let mut conn = self.conns.lease().await?;
        let rows: Vec<SpaceRow> = sqlx::query_as(
            // Driven by the user's memberships (the `memberships_by_user` index, already in
            // order), so the cost follows the user's spaces, not every space there is.
            "SELECT s.id, s.name, s.key_id, u.username, s.created_at FROM memberships m \
             JOIN spaces s ON s.id = m.space_id \
             JOIN users u ON u.id = s.owner_id \
             WHERE m.user_id = ?1 \
             ORDER BY m.space_id DESC LIMIT 1000",
        )
        .bind(user.get())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        drop(conn);
        self.keys_for(rows.iter().map(|r| r.2)).await?;
        rows.into_iter().map(|r| space(&self.keyring, r)).collect()
    }

    async fn find_space(&self, id: SpaceId) -> Result<Option<SpaceRecord>, StoreError> {
        let mut conn = self.conns.lease().await?;
        let row: Option<SpaceRow> = sqlx::query_as(SPACE_BY_ID)
            .bind(id.get())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| conn.fail(e))?;
        drop(conn);
        self.keys_for(row.iter().map(|r| r.2)).await?;
        row.map(|r| space(&self.keyring, r)).transpose()
    }

    async fn permissions_of(
        &self,
        space: SpaceId,
        user: UserId,
    ) -> Result<Permissions, StoreError> {
        let mut conn = self.conns.lease().await?;
        let bits: Option<i64> = sqlx::query_scalar(
            "SELECT permissions FROM memberships WHERE space_id = ?1 AND user_id = ?2",
        )
        .bind(space.get())
        .bind(user.get())
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        permissions(bits)
    }

    async fn members_of(&self, space: SpaceId) -> Result<Vec<MemberRecord>, StoreError> {
        let mut conn = self.conns.lease().await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT u.username, m.permissions FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.space_id = ?1 ORDER BY u.username",
        )
        .bind(space.get())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        rows.into_iter()
            .map(|(name, bits)| {
                Ok(MemberRecord {
                    username: Username::parse(&name).map_err(|_| corrupt("users.username"))?,
                    permissions: permissions(Some(bits))?,
                })
            })
            .collect()
    }

    async fn grant(
        &self,
        space: SpaceId,
        user: UserId,
        add: Permissions,
        by: UserId,
    ) -> Result<Permissions, StoreError> {
        let mut conn = self.conns.lease().await?;
        let bits: i64 = sqlx::query_scalar(
            "INSERT INTO memberships (space_id, user_id, permissions, granted_by, granted_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (space_id, user_id) DO UPDATE SET permissions = permissions | excluded.permissions, \
             granted_by = excluded.granted_by, granted_at = excluded.granted_at RETURNING permissions",
        )
        .bind(space.get())
        .bind(user.get())
        .bind(add.bits())
        .bind(by.get())
        .bind(SystemClock.wall().micros())
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        permissions(Some(bits))
    }

    async fn revoke(
        &self,
        space: SpaceId,
        user: UserId,
        remove: Permissions,
    ) -> Result<Permissions, StoreError> {
        let mut conn = self.conns.lease().await?;
        let keep = Permissions::ALL.without(remove).bits();
        let mut tx = conn.begin(None).await?;
        sqlx::query("DELETE FROM memberships WHERE space_id = ?1 AND user_id = ?2 AND (permissions & ?3) = 0")
            .bind(space.get())
            .bind(user.get())
            .bind(keep)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let left: Option<i64> = sqlx::query_scalar(
            "UPDATE memberships SET permissions = permissions & ?3 WHERE space_id = ?1 AND user_id = ?2 RETURNING permissions",
        )
        .bind(space.get())
        .bind(user.get())
        .bind(keep)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        permissions(left)
    }

    async fn insert_message(
        &self,
        space: SpaceId,
        author: UserId,
        body: &MessageText,
    ) -> Result<MessageRecord, StoreError> {
        // The row id is part of the seal's associated data: take it first, then seal.
        let id = self.next_id(RowTable::Messages).await?;
        let (key, sealed) = rows::seal(
            &self.keyring,
            &Place::message_body(id, space.get()),
            body.as_str(),
        )?;
        let mut conn = self.conns.lease().await?;
        let (author_name, created_at): (String, i64) = sqlx::query_as(
            "INSERT INTO messages (id, space_id, author_id, body, key_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             RETURNING (SELECT username FROM users WHERE id = ?3), created_at",
        )
        .bind(id)
        .bind(space.get())
        .bind(author.get())
        .bind(sealed)
        .bind(key)
        .bind(SystemClock.wall().micros())
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        Ok(MessageRecord {
            id: MessageId::from_i64(id).map_err(|_| corrupt("messages.id"))?,
            space,
            author: Username::parse(&author_name).map_err(|_| corrupt("users.username"))?,
            body: body.clone(),
            created_at: Timestamp::from_micros(created_at),
        })
    }

    async fn messages_in(
        &self,
        space: SpaceId,
        page: MessagePage,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let mut conn = self.conns.lease().await?;
        // The cursor is a range bound on the index (`id < ?3`, the largest id when absent),
        // never an `OR`, which would make every later page scan from the newest message.
        let rows: Vec<MessageRow> = sqlx::query_as(
            "SELECT m.id, m.space_id, u.username, m.body, m.key_id, m.created_at FROM messages m \
             JOIN users u ON u.id = m.author_id \
             WHERE m.space_id = ?1 AND (?2 IS NULL OR m.created_at >= ?2) \
             AND m.id < coalesce(?3, 9223372036854775807) \
             ORDER BY m.id DESC LIMIT ?4",
        )
        .bind(space.get())
        .bind(page.since.map(Timestamp::micros))
        .bind(page.after.map(MessageId::get))
        .bind(i64::from(page.limit.get()))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        drop(conn);
        self.keys_for(rows.iter().map(|r| r.4)).await?;
        rows.into_iter()
            .map(|r| message(&self.keyring, r))
            .collect()
    }

    async fn find_message(
        &self,
        space: SpaceId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let mut conn = self.conns.lease().await?;
        let row: Option<MessageRow> = sqlx::query_as(
            "SELECT m.id, m.space_id, u.username, m.body, m.key_id, m.created_at FROM messages m \
             JOIN users u ON u.id = m.author_id WHERE m.space_id = ?1 AND m.id = ?2",
        )
        .bind(space.get())
        .bind(id.get())
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        drop(conn);
        self.keys_for(row.iter().map(|r| r.4)).await?;
        row.map(|r| message(&self.keyring, r)).transpose()
    }

    async fn delete_message(&self, space: SpaceId, id: MessageId) -> Result<bool, StoreError> {
        let mut conn = self.conns.lease().await?;
        let done = sqlx::query("DELETE FROM messages WHERE space_id = ?1 AND id = ?2")
            .bind(space.get())
            .bind(id.get())
            .execute(&mut *conn)
            .await
            .map_err(|e| conn.fail(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conns.lease().await?;
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(|e| conn.fail(e))?;
        Ok(())
    }
}
