//! The service layer's data on PostgreSQL: the same statements and results as the SQLite
//! backend, with `$n` parameters and case-insensitive names through `lower()`.

use super::PgStore;
use super::errors::classify;
use super::sealed;
use crate::ids::{BLOCK, RowTable};
use crate::rotation::{KeyUsage, ResealBatch, ResealCursor, Resealing};
use crate::rows::{self, MessageRow, SpaceRow, corrupt, message, permissions, space};
use crate::sealing::Place;
use async_trait::async_trait;
use natterjack_core::clock::{Clock, SystemClock};
use natterjack_core::domain::{
    MessageId, MessageText, Permissions, SpaceId, SpaceName, Timestamp, UserId, Username,
};
use natterjack_core::ports::{
    MemberRecord, MessagePage, MessageRecord, NO_LOCAL_PASSWORD, SpaceRecord, Store, StoreError,
    UserRecord,
};

type UserRow = (i64, String, String, bool);

const SPACE_BY_ID: &str = "SELECT s.id, s.name, s.key_id, u.username, s.created_at FROM spaces s \
                           JOIN users u ON u.id = s.owner_id WHERE s.id = $1";

fn user(row: UserRow) -> Result<UserRecord, StoreError> {
    rows::user(row.0, &row.1, row.2, row.3)
}

impl PgStore {
    /// The id of the next row of `table`, from this store's reserved block, reserving a
    /// new block when it is used up.
    async fn next_id(&self, table: RowTable) -> Result<i64, StoreError> {
        if let Some(id) = self.ids().take(table) {
            return Ok(id);
        }
        let end: i64 = sqlx::query_scalar(
            "UPDATE row_ids SET next = next + $2 WHERE name = $1 RETURNING next",
        )
        .bind(table.name())
        .bind(BLOCK)
        .fetch_one(self.pool())
        .await
        .map_err(classify)?;
        Ok(self.ids().refill(table, end))
    }

    /// Reloads the data keys first if a row names one this process does not hold yet.
    async fn keys_for(&self, keys: impl IntoIterator<Item = i64>) -> Result<(), StoreError> {
        if rows::needs_reload(self.keyring(), keys) {
            self.reload_keys().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Resealing for PgStore {
    async fn reload_keys(&self) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await.map_err(classify)?;
        sealed::load(&mut conn, self.keyring()).await
    }

    async fn reseal_batch(
        &self,
        cursor: ResealCursor,
        limit: u32,
    ) -> Result<ResealBatch, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(classify)?;
        sealed::reseal_batch(&mut conn, self.keyring(), cursor, limit).await
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(classify)?;
        sealed::key_usage(&mut conn).await
    }
}

/// A page of a space's messages, newest first, walking `messages_by_space`. The cursor is a
/// range bound on the index (the largest id when absent), never an `OR`.
const PAGE_BY_ID: &str = "SELECT m.id, m.space_id, u.username, m.body, m.key_id, m.created_at FROM messages m \
     JOIN users u ON u.id = m.author_id \
     WHERE m.space_id = $1 AND ($2::bigint IS NULL OR m.created_at >= $2) \
     AND m.id < coalesce($3::bigint, 9223372036854775807) \
     ORDER BY m.id DESC LIMIT $4";

/// The same page through `messages_by_time`: every message since `$2`, then sorted (the
/// `+ 0` keeps the planner from walking `messages_by_space` for the order instead).
const PAGE_BY_TIME: &str = "SELECT m.id, m.space_id, u.username, m.body, m.key_id, m.created_at FROM messages m \
     JOIN users u ON u.id = m.author_id \
     WHERE m.space_id = $1 AND m.created_at >= $2 \
     AND m.id < coalesce($3::bigint, 9223372036854775807) \
     ORDER BY m.id + 0 DESC LIMIT $4";

/// Below this many matches a `since` page is read through the time index.
const FEW: i64 = 1000;

#[async_trait]
impl Store for PgStore {
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<UserRecord, StoreError> {
        let row: UserRow = sqlx::query_as(
            "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES ($1, $2, FALSE, $3) \
             RETURNING id, username, password_hash, is_admin",
        )
        .bind(username.as_str())
        .bind(password_hash)
        .bind(SystemClock.wall().micros())
        .fetch_one(self.pool())
        .await
        .map_err(classify)?;
        user(row)
    }

    async fn find_user(&self, username: &Username) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, username, password_hash, is_admin FROM users WHERE lower(username) = lower($1)",
        )
        .bind(username.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        row.map(user).transpose()
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user.get())
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn set_admin(&self, user: UserId, admin: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET is_admin = $1 WHERE id = $2")
            .bind(admin)
            .bind(user.get())
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn find_linked_user(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT u.id, u.username, u.password_hash, u.is_admin FROM external_identities e \
             JOIN users u ON u.id = e.user_id WHERE e.source = $1 AND e.subject = $2",
        )
        .bind(source)
        .bind(subject)
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        row.map(user).transpose()
    }

    async fn link_identity(
        &self,
        user: UserId,
        source: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO external_identities (source, subject, user_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(source)
        .bind(subject)
        .bind(user.get())
        .bind(SystemClock.wall().micros())
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn create_linked_user(
        &self,
        username: &Username,
        source: &str,
        subject: &str,
    ) -> Result<UserRecord, StoreError> {
        let now = SystemClock.wall().micros();
        let mut tx = self.pool().begin().await.map_err(classify)?;
        let row: UserRow = sqlx::query_as(
            "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES ($1, $2, FALSE, $3) \
             RETURNING id, username, password_hash, is_admin",
        )
        .bind(username.as_str())
        .bind(NO_LOCAL_PASSWORD)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO external_identities (source, subject, user_id, created_at) VALUES ($1, $2, $3, $4)",
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
        let (key, sealed) = rows::seal(self.keyring(), &Place::space_name(id), name.as_str())?;
        let now = SystemClock.wall().micros();
        let mut tx = self.pool().begin().await.map_err(classify)?;
        let owner_name: String = sqlx::query_scalar(
            "INSERT INTO spaces (id, name, key_id, owner_id, created_at) OVERRIDING SYSTEM VALUE \
             VALUES ($1, $2, $3, $4, $5) RETURNING (SELECT username FROM users WHERE id = $4)",
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
            "INSERT INTO memberships (space_id, user_id, permissions, granted_by, granted_at) \
             VALUES ($1, $2, $3, $2, $4)",
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
            id: SpaceId::from_i64(id).map_err(|_| corrupt("spaces.id"))?,
            name: name.clone(),
            owner: Username::parse(&owner_name).map_err(|_| corrupt("users.username"))?,
            created_at: Timestamp::from_micros(now),
        })
    }

    async fn spaces_of(&self, user: UserId) -> Result<Vec<SpaceRecord>, StoreError> {
        let rows: Vec<SpaceRow> = sqlx::query_as(
            // Driven by the user's memberships (the `memberships_by_user` index, already in
            // order), so the cost follows the user's spaces, not every space there is.
            "SELECT s.id, s.name, s.key_id, u.username, s.created_at FROM memberships m \
             JOIN spaces s ON s.id = m.space_id \
             JOIN users u ON u.id = s.owner_id \
             WHERE m.user_id = $1 \
             ORDER BY m.space_id DESC LIMIT 1000",
        )
        .bind(user.get())
        .fetch_all(self.pool())
        .await
        .map_err(classify)?;
        self.keys_for(rows.iter().map(|r| r.2)).await?;
        rows.into_iter().map(|r| space(self.keyring(), r)).collect()
    }

    async fn find_space(&self, id: SpaceId) -> Result<Option<SpaceRecord>, StoreError> {
        let row: Option<SpaceRow> = sqlx::query_as(SPACE_BY_ID)
            .bind(id.get())
            .fetch_optional(self.pool())
            .await
            .map_err(classify)?;
        self.keys_for(row.iter().map(|r| r.2)).await?;
        row.map(|r| space(self.keyring(), r)).transpose()
    }

    async fn permissions_of(
        &self,
        space: SpaceId,
        user: UserId,
    ) -> Result<Permissions, StoreError> {
        let bits: Option<i64> = sqlx::query_scalar(
            "SELECT permissions FROM memberships WHERE space_id = $1 AND user_id = $2",
        )
        .bind(space.get())
        .bind(user.get())
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        permissions(bits)
    }

    async fn members_of(&self, space: SpaceId) -> Result<Vec<MemberRecord>, StoreError> {
        // SQLite orders the NOCASE column case-insensitively, byte-wise: so does this.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT u.username, m.permissions FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.space_id = $1 ORDER BY lower(u.username) COLLATE \"C\"",
        )
        .bind(space.get())
        .fetch_all(self.pool())
        .await
        .map_err(classify)?;
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
        let bits: i64 = sqlx::query_scalar(
            "INSERT INTO memberships AS m (space_id, user_id, permissions, granted_by, granted_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (space_id, user_id) DO UPDATE SET permissions = m.permissions | excluded.permissions, \
             granted_by = excluded.granted_by, granted_at = excluded.granted_at RETURNING m.permissions",
        )
        .bind(space.get())
        .bind(user.get())
        .bind(add.bits())
        .bind(by.get())
        .bind(SystemClock.wall().micros())
        .fetch_one(self.pool())
        .await
        .map_err(classify)?;
        permissions(Some(bits))
    }

    async fn revoke(
        &self,
        space: SpaceId,
        user: UserId,
        remove: Permissions,
    ) -> Result<Permissions, StoreError> {
        let keep = Permissions::ALL.without(remove).bits();
        let mut tx = self.pool().begin().await.map_err(classify)?;
        sqlx::query(
            "DELETE FROM memberships WHERE space_id = $1 AND user_id = $2 AND (permissions & $3) = 0",
        )
        .bind(space.get())
        .bind(user.get())
        .bind(keep)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let left: Option<i64> = sqlx::query_scalar(
            "UPDATE memberships SET permissions = permissions & $3 WHERE space_id = $1 AND user_id = $2 \
             RETURNING permissions",
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
            self.keyring(),
            &Place::message_body(id, space.get()),
            body.as_str(),
        )?;
        let (author_name, created_at): (String, i64) = sqlx::query_as(
            "INSERT INTO messages (id, space_id, author_id, body, key_id, created_at) OVERRIDING SYSTEM VALUE \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING (SELECT username FROM users WHERE id = $3), created_at",
        )
        .bind(id)
        .bind(space.get())
        .bind(author.get())
        .bind(sealed)
        .bind(key)
        .bind(SystemClock.wall().micros())
        .fetch_one(self.pool())
        .await
        .map_err(classify)?;
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
        let since = page.since.map(Timestamp::micros);
        let after = page.after.map(MessageId::get);
        // A `since` that few messages match is answered from the time index: reading those
        // few and sorting them beats walking the whole space newest first.
        let by_time = match since {
            Some(since) => {
                let few: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT 1 FROM messages WHERE space_id = $1 \
                     AND created_at >= $2 AND id < coalesce($3::bigint, 9223372036854775807) \
                     LIMIT $4) AS matching",
                )
                .bind(space.get())
                .bind(since)
                .bind(after)
                .bind(FEW)
                .fetch_one(self.pool())
                .await
                .map_err(classify)?;
                few < FEW
            }
            None => false,
        };
        let rows: Vec<MessageRow> = sqlx::query_as(if by_time { PAGE_BY_TIME } else { PAGE_BY_ID })
            .bind(space.get())
            .bind(since)
            .bind(after)
            .bind(i64::from(page.limit.get()))
            .fetch_all(self.pool())
            .await
            .map_err(classify)?;
        self.keys_for(rows.iter().map(|r| r.4)).await?;
        rows.into_iter()
            .map(|r| message(self.keyring(), r))
            .collect()
    }

    async fn find_message(
        &self,
        space: SpaceId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let row: Option<MessageRow> = sqlx::query_as(
            "SELECT m.id, m.space_id, u.username, m.body, m.key_id, m.created_at FROM messages m \
             JOIN users u ON u.id = m.author_id WHERE m.space_id = $1 AND m.id = $2",
        )
        .bind(space.get())
        .bind(id.get())
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        self.keys_for(row.iter().map(|r| r.4)).await?;
        row.map(|r| message(self.keyring(), r)).transpose()
    }

    async fn delete_message(&self, space: SpaceId, id: MessageId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM messages WHERE space_id = $1 AND id = $2")
            .bind(space.get())
            .bind(id.get())
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        PgStore::ping(self).await
    }
}
