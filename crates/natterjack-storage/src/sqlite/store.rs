use super::connect;
use super::errors::{classify, corrupt};
use super::migrate;
use super::readers::Readers;
use super::sealed;
use super::writer::Writer;
use crate::Migrated;
use crate::ids::{BLOCK, IdBlocks, RowTable};
use crate::rotation::{KeyUsage, ResealBatch, ResealCursor, Resealing};
use crate::rows::{self, MessageRow, SpaceRow, message, permissions, space};
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
use rusqlite::{Connection, OptionalExtension, Row};
use std::path::Path;
use std::sync::Arc;

/// The SQLite store: reads on the caller's thread from a few read-only connections, writes
/// on one writer thread in group-committed transactions (both under the authorizer), and
/// the keyring that seals and opens user content.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) readers: Arc<Readers>,
    pub(super) writer: Arc<Writer>,
    keyring: Arc<Keyring>,
    ids: Arc<IdBlocks>,
}

const SPACE_BY_ID: &str = "SELECT s.id, s.name, s.key_id, u.username, s.created_at FROM spaces s JOIN users u ON u.id = s.owner_id WHERE s.id = +?1";

// Parameters are written `+?N` where SQLite's planner would otherwise look at their bound
// values: a bare `?N` compared with a column in a join (constant propagation), or a `LIMIT
// ?N`. A statement planned with a bound value is compiled again whenever its bindings
// change, which is on every call; the unary `+` hides the value from the planner, keeps the
// same plan (the same indexes) and lets the cached statement be reused. A test counts the
// compilations.

/// A page of a space's messages, newest first, walking `messages_by_space`. The cursor is a
/// range bound on the index (`id < ?3`, the largest id when absent), never an `OR`, which
/// would make every later page scan from the newest message.
const PAGE_BY_ID: &str = "SELECT m.id, m.space_id, u.username, m.body, m.key_id, m.created_at FROM messages m \
     JOIN users u ON u.id = m.author_id \
     WHERE m.space_id = +?1 AND (+?2 IS NULL OR m.created_at >= +?2) \
     AND m.id < coalesce(+?3, 9223372036854775807) \
     ORDER BY m.id DESC LIMIT +?4";

/// The same page read through `messages_by_time`: every message since `?2`, then sorted.
const PAGE_BY_TIME: &str = "SELECT m.id, m.space_id, u.username, m.body, m.key_id, m.created_at \
     FROM messages m INDEXED BY messages_by_time \
     JOIN users u ON u.id = m.author_id \
     WHERE m.space_id = +?1 AND m.created_at >= +?2 \
     AND m.id < coalesce(+?3, 9223372036854775807) \
     ORDER BY m.id DESC LIMIT +?4";

/// How many messages (up to `?4`) a `since` matches, counted on `messages_by_time`.
const FEW_SINCE: &str = "SELECT count(*) FROM (SELECT 1 FROM messages INDEXED BY messages_by_time \
     WHERE space_id = +?1 AND created_at >= +?2 AND id < coalesce(+?3, 9223372036854775807) LIMIT +?4)";

/// Below this many matches a `since` page is read through the time index. With more, the
/// newest-first walk finds a page among the newest messages at once.
const FEW: i64 = 1000;

fn user_row(r: &Row<'_>) -> rusqlite::Result<(i64, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn user(row: (i64, String, String, i64)) -> Result<UserRecord, StoreError> {
    rows::user(row.0, &row.1, row.2, row.3 == 1)
}

fn space_row(r: &Row<'_>) -> rusqlite::Result<SpaceRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn message_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

impl SqliteStore {
    /// Creates the database file if needed and applies pending migrations on a separate
    /// owner connection, sealing plaintext rows with `keyring` on the way to schema 7.
    pub async fn migrate(path: &Path, keyring: &Keyring) -> Result<Migrated, StoreError> {
        let mut owner = connect::owner(path, true)?;
        migrate::run(&mut owner, keyring)
    }

    /// The data keys of the database at `path` (none when it does not exist or predates
    /// them): a missing key-encryption key may be generated only when there are none.
    pub async fn stored_data_keys(
        path: &Path,
    ) -> Result<Vec<crate::sealing::DataKeyRow>, StoreError> {
        if !path.exists() {
            return Ok(Vec::new());
        }
        let conn = connect::owner(path, false)?;
        let found: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'data_keys'",
                [],
                |r| r.get(0),
            )
            .map_err(classify)?;
        if found == 1 {
            sealed::data_keys(&conn).map_err(classify)
        } else {
            Ok(Vec::new())
        }
    }

    /// Makes a new data key current (new writes use it once each server has reloaded its
    /// keys); the servers then re-seal older rows in the background. Returns its id.
    pub async fn rotate_key(path: &Path, keyring: &Keyring) -> Result<u32, StoreError> {
        let mut owner = connect::owner(path, false)?;
        sealed::load(&owner, keyring)?;
        let tx = owner
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(classify)?;
        let id = sealed::add_current_key(&tx, keyring)?;
        tx.commit().map_err(classify)?;
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
        let owner = connect::owner(path, false)?;
        owner
            .execute("VACUUM INTO ?1", [target])
            .map(drop)
            .map_err(classify)
    }

    /// Erases a retired data key, refused while any row is sealed under it.
    pub async fn destroy_key(path: &Path, key: u32) -> Result<(), StoreError> {
        let mut owner = connect::owner(path, false)?;
        sealed::destroy_key(&mut owner, key)
    }

    /// Re-wraps every data key with `next` (rotating the key-encryption key). Returns
    /// how many keys were re-wrapped.
    pub async fn rewrap_keys(
        path: &Path,
        keyring: &Keyring,
        next: &crate::sealing::KeyEncryptionKey,
    ) -> Result<usize, StoreError> {
        let mut owner = connect::owner(path, false)?;
        sealed::load(&owner, keyring)?;
        sealed::rewrap(&mut owner, keyring, next)
    }

    /// Opens the server's connections: `max_connections` readers and one writer. Fails if
    /// the schema is not at the version this build expects, so a server never runs against
    /// a half-migrated database, or if the key-encryption key in `keyring` does not open
    /// every data key (the error names it).
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
        // The writer first: it opens the WAL, which the read-only readers then share.
        let writer_conn = connect::writer(path)?;
        let version = migrate::current_version(&writer_conn).map_err(classify)?;
        if version != migrate::latest_version() {
            return Err(StoreError::Internal(format!(
                "database schema is at version {version}, this build needs {}: run `natterjack migrate`",
                migrate::latest_version()
            )));
        }
        sealed::load(&writer_conn, &keyring)?;
        if keyring.current().is_none() {
            return Err(StoreError::Internal(
                "the database holds no current data key: run `natterjack migrate`".into(),
            ));
        }
        // A block of ids reserved by a write that was rolled back may be reserved again by
        // another process: forget it.
        let ids = Arc::new(IdBlocks::default());
        let forget = ids.clone();
        let store = Self {
            readers: Arc::new(Readers::new(path.to_owned(), max_connections)),
            writer: Arc::new(Writer::start(writer_conn, move || forget.forget())?),
            keyring,
            ids,
        };
        // Open a reader now, authorizer and all, so a database that cannot be served stops
        // the start-up instead of the first request.
        store.ping().await?;
        Ok(store)
    }

    /// Runs `f` on the server's writing connection, under the authorizer, inside the
    /// writer's transaction (rolled back if `f` fails). For the least-privilege tests and
    /// the benchmarks, which check what a server connection can and cannot do.
    pub async fn on_server_connection<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.writer.write(move |c| f(c).map_err(classify)).await
    }

    /// Runs `f` on one of the server's reading connections (read-only, under the
    /// authorizer). For the least-privilege tests.
    pub fn on_reading_connection<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.readers.read(f)
    }

    /// Closes every connection after the queued writes (the last close checkpoints the
    /// WAL).
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close();
    }

    /// The keyring sealing this store's content.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// Reloads the data keys first if a row names one this process does not hold yet.
    async fn keys_for(&self, keys: impl IntoIterator<Item = i64>) -> Result<(), StoreError> {
        if rows::needs_reload(&self.keyring, keys) {
            self.reload_keys().await?;
        }
        Ok(())
    }
}

/// The id of the next row of `table`, from the store's reserved block, reserving a new
/// block in the writer's transaction when it is used up. A reservation that is rolled back
/// is forgotten by the writer (`IdBlocks::forget`), so its ids are never handed out.
fn next_id(conn: &Connection, ids: &IdBlocks, table: RowTable) -> Result<i64, StoreError> {
    if let Some(id) = ids.take(table) {
        return Ok(id);
    }
    let end: i64 = conn
        .prepare_cached("UPDATE row_ids SET next = next + ?2 WHERE name = ?1 RETURNING next")
        .and_then(|mut s| s.query_row((table.name(), BLOCK), |r| r.get(0)))
        .map_err(classify)?;
    Ok(ids.refill(table, end))
}

#[async_trait]
impl Resealing for SqliteStore {
    async fn reload_keys(&self) -> Result<(), StoreError> {
        let keyring = &self.keyring;
        self.readers
            .read_async(|c| Ok(sealed::load(c, keyring)))
            .await?
    }

    async fn reseal_batch(
        &self,
        cursor: ResealCursor,
        limit: u32,
    ) -> Result<ResealBatch, StoreError> {
        let keyring = self.keyring.clone();
        self.writer
            .write(move |c| sealed::reseal_batch(c, &keyring, cursor, limit))
            .await
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError> {
        self.readers.read_blocking(sealed::key_usage).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<UserRecord, StoreError> {
        let name = username.as_str().to_owned();
        let hash = password_hash.to_owned();
        let row = self
            .writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?1, ?2, 0, ?3) \
                     RETURNING id, username, password_hash, is_admin",
                )
                .and_then(|mut s| s.query_row((name, hash, SystemClock.wall().micros()), user_row))
                .map_err(classify)
            })
            .await?;
        user(row)
    }

    async fn find_user(&self, username: &Username) -> Result<Option<UserRecord>, StoreError> {
        let row = self
            .readers
            .read_async(|c| {
                c.prepare_cached(
                    "SELECT id, username, password_hash, is_admin FROM users WHERE username = ?1",
                )?
                .query_row([username.as_str()], user_row)
                .optional()
            })
            .await?;
        row.map(user).transpose()
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> Result<(), StoreError> {
        let hash = password_hash.to_owned();
        self.writer
            .write(move |c| {
                c.prepare_cached("UPDATE users SET password_hash = ?1 WHERE id = ?2")
                    .and_then(|mut s| s.execute((hash, user.get())))
                    .map(drop)
                    .map_err(classify)
            })
            .await
    }

    async fn set_admin(&self, user: UserId, admin: bool) -> Result<(), StoreError> {
        self.writer
            .write(move |c| {
                c.prepare_cached("UPDATE users SET is_admin = ?1 WHERE id = ?2")
                    .and_then(|mut s| s.execute((i64::from(admin), user.get())))
                    .map(drop)
                    .map_err(classify)
            })
            .await
    }

    async fn find_linked_user(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row = self
            .readers
            .read_async(|c| {
                c.prepare_cached(
                "SELECT u.id, u.username, u.password_hash, u.is_admin FROM external_identities e \
                 JOIN users u ON u.id = e.user_id WHERE e.source = +?1 AND e.subject = +?2",
            )?
            .query_row([source, subject], user_row)
            .optional()
            })
            .await?;
        row.map(user).transpose()
    }

    async fn link_identity(
        &self,
        user: UserId,
        source: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        let (source, subject) = (source.to_owned(), subject.to_owned());
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO external_identities (source, subject, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| {
                    s.execute((source, subject, user.get(), SystemClock.wall().micros()))
                })
                .map(drop)
                .map_err(classify)
            })
            .await
    }

    async fn create_linked_user(
        &self,
        username: &Username,
        source: &str,
        subject: &str,
    ) -> Result<UserRecord, StoreError> {
        let name = username.as_str().to_owned();
        let (source, subject) = (source.to_owned(), subject.to_owned());
        let row = self
            .writer
            .write(move |c| {
                let now = SystemClock.wall().micros();
                let row = c
                    .prepare_cached(
                        "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?1, ?2, 0, ?3) \
                         RETURNING id, username, password_hash, is_admin",
                    )
                    .and_then(|mut s| s.query_row((name, NO_LOCAL_PASSWORD, now), user_row))
                    .map_err(classify)?;
                c.prepare_cached(
                    "INSERT INTO external_identities (source, subject, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute((source, subject, row.0, now)))
                .map_err(classify)?;
                Ok(row)
            })
            .await?;
        user(row)
    }

    async fn create_space(
        &self,
        name: &SpaceName,
        owner: UserId,
    ) -> Result<SpaceRecord, StoreError> {
        let (keyring, ids) = (self.keyring.clone(), self.ids.clone());
        let text = name.as_str().to_owned();
        let (id, owner_name, now) = self
            .writer
            .write(move |c| {
                // The row id is part of the seal's associated data: take it, then seal.
                let id = next_id(c, &ids, RowTable::Spaces)?;
                let (key, sealed) = rows::seal(&keyring, &Place::space_name(id), &text)?;
                let now = SystemClock.wall().micros();
                let owner_name: String = c
                    .prepare_cached(
                        "INSERT INTO spaces (id, name, key_id, owner_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                         RETURNING (SELECT username FROM users WHERE id = ?4)",
                    )
                    .and_then(|mut s| {
                        s.query_row((id, sealed, key, owner.get(), now), |r| r.get(0))
                    })
                    .map_err(classify)?;
                c.prepare_cached(
                    "INSERT INTO memberships (space_id, user_id, permissions, granted_by, granted_at) VALUES (?1, ?2, ?3, ?2, ?4)",
                )
                .and_then(|mut s| s.execute((id, owner.get(), Permissions::ALL.bits(), now)))
                .map_err(classify)?;
                Ok((id, owner_name, now))
            })
            .await?;
        Ok(SpaceRecord {
            id: SpaceId::from_i64(id).map_err(|_| corrupt("spaces.id"))?,
            name: name.clone(),
            owner: Username::parse(&owner_name).map_err(|_| corrupt("users.username"))?,
            created_at: Timestamp::from_micros(now),
        })
    }

    async fn spaces_of(&self, user: UserId) -> Result<Vec<SpaceRecord>, StoreError> {
        let rows: Vec<SpaceRow> = self
            .readers
            .read_async(|c| {
                // Driven by the user's memberships (the `memberships_by_user` index, already in
                // order), so the cost follows the user's spaces, not every space there is.
                c.prepare_cached(
                    "SELECT s.id, s.name, s.key_id, u.username, s.created_at FROM memberships m \
                 JOIN spaces s ON s.id = m.space_id \
                 JOIN users u ON u.id = s.owner_id \
                 WHERE m.user_id = +?1 \
                 ORDER BY m.space_id DESC LIMIT 1000",
                )?
                .query_map([user.get()], space_row)?
                .collect()
            })
            .await?;
        self.keys_for(rows.iter().map(|r| r.2)).await?;
        rows.into_iter().map(|r| space(&self.keyring, r)).collect()
    }

    async fn find_space(&self, id: SpaceId) -> Result<Option<SpaceRecord>, StoreError> {
        let row: Option<SpaceRow> = self
            .readers
            .read_async(|c| {
                c.prepare_cached(SPACE_BY_ID)?
                    .query_row([id.get()], space_row)
                    .optional()
            })
            .await?;
        self.keys_for(row.iter().map(|r| r.2)).await?;
        row.map(|r| space(&self.keyring, r)).transpose()
    }

    async fn permissions_of(
        &self,
        space: SpaceId,
        user: UserId,
    ) -> Result<Permissions, StoreError> {
        let bits: Option<i64> = self
            .readers
            .read_async(|c| {
                c.prepare_cached(
                    "SELECT permissions FROM memberships WHERE space_id = ?1 AND user_id = ?2",
                )?
                .query_row([space.get(), user.get()], |r| r.get(0))
                .optional()
            })
            .await?;
        permissions(bits)
    }

    async fn members_of(&self, space: SpaceId) -> Result<Vec<MemberRecord>, StoreError> {
        let rows: Vec<(String, i64)> = self.readers.read_async(|c| {
            c.prepare_cached(
                "SELECT u.username, m.permissions FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.space_id = +?1 ORDER BY u.username",
            )?
            .query_map([space.get()], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        }).await?;
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
        let bits: i64 = self
            .writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO memberships (space_id, user_id, permissions, granted_by, granted_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (space_id, user_id) DO UPDATE SET permissions = permissions | excluded.permissions, \
                     granted_by = excluded.granted_by, granted_at = excluded.granted_at RETURNING permissions",
                )
                .and_then(|mut s| {
                    s.query_row(
                        (space.get(), user.get(), add.bits(), by.get(), SystemClock.wall().micros()),
                        |r| r.get(0),
                    )
                })
                .map_err(classify)
            })
            .await?;
        permissions(Some(bits))
    }

    async fn revoke(
        &self,
        space: SpaceId,
        user: UserId,
        remove: Permissions,
    ) -> Result<Permissions, StoreError> {
        let keep = Permissions::ALL.without(remove).bits();
        let left: Option<i64> = self
            .writer
            .write(move |c| {
                c.prepare_cached(
                    "DELETE FROM memberships WHERE space_id = ?1 AND user_id = ?2 AND (permissions & ?3) = 0",
                )
                .and_then(|mut s| s.execute((space.get(), user.get(), keep)))
                .map_err(classify)?;
                c.prepare_cached(
                    "UPDATE memberships SET permissions = permissions & ?3 WHERE space_id = ?1 AND user_id = ?2 RETURNING permissions",
                )
                .and_then(|mut s| {
                    s.query_row((space.get(), user.get(), keep), |r| r.get(0))
                        .optional()
                })
                .map_err(classify)
            })
            .await?;
        permissions(left)
    }

    async fn insert_message(
        &self,
        space: SpaceId,
        author: UserId,
        body: &MessageText,
    ) -> Result<MessageRecord, StoreError> {
        let (keyring, ids) = (self.keyring.clone(), self.ids.clone());
        let text = body.as_str().to_owned();
        let (id, author_name, created_at) = self
            .writer
            .write(move |c| {
                // The row id is part of the seal's associated data: take it, then seal.
                let id = next_id(c, &ids, RowTable::Messages)?;
                let (key, sealed) =
                    rows::seal(&keyring, &Place::message_body(id, space.get()), &text)?;
                c.prepare_cached(
                    "INSERT INTO messages (id, space_id, author_id, body, key_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     RETURNING id, (SELECT username FROM users WHERE id = ?3), created_at",
                )
                .and_then(|mut s| {
                    s.query_row(
                        (id, space.get(), author.get(), sealed, key, SystemClock.wall().micros()),
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
                    )
                })
                .map_err(classify)
            })
            .await?;
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
        let params = (space.get(), since, after, i64::from(page.limit.get()));
        let rows: Vec<MessageRow> = self
            .readers
            .read_async(|c| {
                // A `since` that few messages match is answered from the time index: reading
                // those few and sorting them beats walking the whole space newest first.
                let by_time = match since {
                    Some(since) => {
                        c.prepare_cached(FEW_SINCE)?
                            .query_row((space.get(), since, after, FEW), |r| r.get::<_, i64>(0))?
                            < FEW
                    }
                    None => false,
                };
                c.prepare_cached(if by_time { PAGE_BY_TIME } else { PAGE_BY_ID })?
                    .query_map(params, message_row)?
                    .collect()
            })
            .await?;
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
        let row: Option<MessageRow> = self.readers.read_async(|c| {
            c.prepare_cached(
                "SELECT m.id, m.space_id, u.username, m.body, m.key_id, m.created_at FROM messages m \
                 JOIN users u ON u.id = m.author_id WHERE m.space_id = +?1 AND m.id = +?2",
            )?
            .query_row([space.get(), id.get()], message_row)
            .optional()
        }).await?;
        self.keys_for(row.iter().map(|r| r.4)).await?;
        row.map(|r| message(&self.keyring, r)).transpose()
    }

    async fn delete_message(&self, space: SpaceId, id: MessageId) -> Result<bool, StoreError> {
        self.writer
            .write(move |c| {
                c.prepare_cached("DELETE FROM messages WHERE space_id = ?1 AND id = ?2")
                    .and_then(|mut s| s.execute((space.get(), id.get())))
                    .map(|n| n == 1)
                    .map_err(classify)
            })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .read_async(|c| c.prepare_cached("SELECT 1")?.query_row([], |_| Ok(())))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::KeyEncryptionKey;
    use std::sync::atomic::Ordering;

    fn consulted() -> usize {
        super::super::authorizer::CONSULTED.load(Ordering::Relaxed)
    }

    /// Reads never wait for anything, so without the cooperative budget a task reading in a
    /// loop would hold its worker thread for good: this test's timer would never fire.
    #[tokio::test(flavor = "current_thread")]
    async fn a_task_reading_in_a_loop_still_lets_the_timers_and_other_tasks_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("natterjack.db");
        let keyring = Arc::new(Keyring::new(KeyEncryptionKey::generate().unwrap()));
        SqliteStore::migrate(&path, &keyring).await.unwrap();
        let store = SqliteStore::open(&path, 1, keyring).await.unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = tokio::spawn({
            let (store, stop) = (store.clone(), stop.clone());
            async move {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    store.ping().await.unwrap();
                    reads += 1;
                }
                reads
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stop.store(true, Ordering::Relaxed);
        assert!(reader.await.unwrap() > 0);
        store.close().await;
    }

    #[tokio::test]
    async fn after_their_first_call_the_hot_statements_are_never_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("natterjack.db");
        let keyring = Arc::new(Keyring::new(KeyEncryptionKey::generate().unwrap()));
        SqliteStore::migrate(&path, &keyring).await.unwrap();
        // One reader, so that every read takes the same connection and its statement cache.
        let store = SqliteStore::open(&path, 1, keyring).await.unwrap();
        let alice = store
            .create_user(&Username::parse("alice").unwrap(), "h")
            .await
            .unwrap();
        let space = store
            .create_space(&SpaceName::parse("s").unwrap(), alice.id)
            .await
            .unwrap();
        let page = MessagePage {
            since: Some(Timestamp::from_micros(0)),
            after: None,
            limit: natterjack_core::domain::Limit::parse("50").unwrap(),
        };
        let mut compiled = Vec::new();
        for _ in 0..3 {
            let before = consulted();
            let text = MessageText::parse("hello").unwrap();
            let m = store
                .insert_message(space.id, alice.id, &text)
                .await
                .unwrap();
            store.find_message(space.id, m.id).await.unwrap().unwrap();
            store.messages_in(space.id, page).await.unwrap();
            store
                .messages_in(
                    space.id,
                    MessagePage {
                        since: None,
                        ..page
                    },
                )
                .await
                .unwrap();
            store.find_space(space.id).await.unwrap().unwrap();
            store.spaces_of(alice.id).await.unwrap();
            store.members_of(space.id).await.unwrap();
            store.permissions_of(space.id, alice.id).await.unwrap();
            store.find_user(&alice.username).await.unwrap().unwrap();
            store.find_linked_user("issuer", "subject").await.unwrap();
            compiled.push(consulted() - before);
        }
        // The authorizer is consulted while a statement compiles, never when it runs.
        assert!(compiled[0] > 0, "{compiled:?}");
        assert_eq!(compiled[1..], [0, 0], "{compiled:?}");
        store.close().await;
    }
}
