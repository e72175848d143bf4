//! Sealed content on SQLite: the data keys, the one-time sealing of plaintext rows during
//! the upgrade to schema 7, re-sealing batches, and the operator's key changes (made on an
//! owner connection: the server's connections can only read `data_keys`).

use super::errors::classify;
use crate::rotation::{KeyUsage, ResealBatch, ResealCursor};
use crate::rows::{self, key_id};
use crate::sealing::{DataKeyRow, KeyEncryptionKey, Keyring, Place};
use natterjack_core::clock::{Clock, SystemClock};
use natterjack_core::ports::StoreError;
use sqlx::Connection;
use sqlx::SqliteConnection;

/// Every data key, by id.
pub(super) async fn data_keys(conn: &mut SqliteConnection) -> Result<Vec<DataKeyRow>, StoreError> {
    let rows: Vec<(i64, Option<Vec<u8>>, String, i64)> =
        sqlx::query_as("SELECT id, wrapped, kek_id, current FROM data_keys ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|(id, wrapped, kek_id, current)| DataKeyRow {
            id: key_id(id),
            wrapped,
            kek_id,
            current: current == 1,
        })
        .collect())
}

/// Loads the data keys into `keyring`: every one must unwrap, or the error names it.
pub(super) async fn load(conn: &mut SqliteConnection, keyring: &Keyring) -> Result<(), StoreError> {
    let rows = data_keys(conn).await?;
    keyring
        .load(&rows)
        .map_err(|e| StoreError::Internal(e.to_string()))
}

/// Adds a new data key and makes it the current one (the first, or a rotation), in the
/// caller's transaction. Returns its id.
pub(super) async fn add_current_key(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
) -> Result<u32, StoreError> {
    let next: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) + 1 FROM data_keys")
        .fetch_one(&mut *conn)
        .await
        .map_err(classify)?;
    let id =
        u32::try_from(next).map_err(|_| StoreError::Internal("data key ids exhausted".into()))?;
    let wrapped = keyring
        .new_wrapped_key(id)
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query("UPDATE data_keys SET current = 0 WHERE current = 1")
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    sqlx::query(
        "INSERT INTO data_keys (id, wrapped, kek_id, current, created_at) VALUES (?1, ?2, ?3, 1, ?4)",
    )
    .bind(next)
    .bind(wrapped)
    .bind(keyring.kek().id())
    .bind(SystemClock.wall().micros())
    .execute(&mut *conn)
    .await
    .map_err(classify)?;
    load(conn, keyring).await?;
    Ok(id)
}

/// Schema 6 → 7: seals every row still in plaintext (`key_id` 0) under the current key
/// (created first if there is none), in the caller's transaction. Returns the rows sealed.
pub(super) async fn seal_plaintext(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
) -> Result<u64, StoreError> {
    load(conn, keyring).await?;
    if keyring.current().is_none() {
        add_current_key(conn, keyring).await?;
    }
    let mut sealed = 0u64;
    let spaces: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM spaces WHERE key_id = 0 ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .map_err(classify)?;
    for (id, name) in spaces {
        let (key, bytes) = rows::seal(keyring, &Place::space_name(id), &name)?;
        sqlx::query("UPDATE spaces SET name_sealed = ?1, key_id = ?2 WHERE id = ?3")
            .bind(bytes)
            .bind(key)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
        sealed += 1;
    }
    let mut after = 0i64;
    loop {
        let batch: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT id, space_id, body FROM messages WHERE id > ?1 AND key_id = 0 ORDER BY id LIMIT 1000",
        )
        .bind(after)
        .fetch_all(&mut *conn)
        .await
        .map_err(classify)?;
        let Some(last) = batch.last().map(|row| row.0) else {
            break;
        };
        for (id, space, body) in batch {
            let (key, bytes) = rows::seal(keyring, &Place::message_body(id, space), &body)?;
            sqlx::query("UPDATE messages SET body_sealed = ?1, key_id = ?2 WHERE id = ?3")
                .bind(bytes)
                .bind(key)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            sealed += 1;
        }
        after = last;
    }
    Ok(sealed)
}

/// One batch of re-sealing (see [`crate::rotation`]), in one `BEGIN IMMEDIATE`
/// transaction so that it holds the write lock from its first read.
pub(super) async fn reseal_batch(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
    cursor: ResealCursor,
    limit: u32,
) -> Result<ResealBatch, StoreError> {
    let current = keyring
        .current()
        .ok_or_else(|| StoreError::Internal("no current data key".into()))?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(classify)?;
    let mut batch = ResealBatch {
        cursor,
        ..ResealBatch::default()
    };
    let spaces: Vec<(i64, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT id, name, key_id FROM spaces WHERE id > ?1 AND key_id <> ?2 ORDER BY id LIMIT ?3",
    )
    .bind(cursor.spaces)
    .bind(i64::from(current))
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let spaces_done = spaces.len() < limit as usize;
    let spaces = spaces
        .into_iter()
        .map(|(id, bytes, old)| (id, Place::space_name(id), old, bytes))
        .collect();
    if let Some(last) = reseal_rows(
        &mut tx,
        keyring,
        "UPDATE spaces SET name = ?1, key_id = ?2 WHERE id = ?3 AND key_id = ?4",
        spaces,
        &mut batch,
    )
    .await?
    {
        batch.cursor.spaces = last;
    }
    let messages: Vec<(i64, i64, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT id, space_id, body, key_id FROM messages WHERE id > ?1 AND key_id <> ?2 ORDER BY id LIMIT ?3",
    )
    .bind(cursor.messages)
    .bind(i64::from(current))
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(classify)?;
    let messages_done = messages.len() < limit as usize;
    let messages = messages
        .into_iter()
        .map(|(id, space, bytes, old)| (id, Place::message_body(id, space), old, bytes))
        .collect();
    if let Some(last) = reseal_rows(
        &mut tx,
        keyring,
        "UPDATE messages SET body = ?1, key_id = ?2 WHERE id = ?3 AND key_id = ?4",
        messages,
        &mut batch,
    )
    .await?
    {
        batch.cursor.messages = last;
    }
    tx.commit().await.map_err(classify)?;
    batch.finished = spaces_done && messages_done;
    Ok(batch)
}

/// Re-seals `found` (id, place, old key, stored bytes) with `update` (new bytes, new key,
/// id, old key: the row changes only if its key is still the one read), counting into
/// `batch`. Returns the last id handled.
async fn reseal_rows(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
    update: &'static str,
    found: Vec<(i64, Place, i64, Vec<u8>)>,
    batch: &mut ResealBatch,
) -> Result<Option<i64>, StoreError> {
    let mut last = None;
    for (id, place, old, bytes) in found {
        last = Some(id);
        match rows::reseal(keyring, &place, old, &bytes)? {
            Some((key, sealed)) => {
                batch.resealed += sqlx::query(update)
                    .bind(sealed)
                    .bind(key)
                    .bind(id)
                    .bind(old)
                    .execute(&mut *conn)
                    .await
                    .map_err(classify)?
                    .rows_affected();
            }
            None => batch.unreadable += 1,
        }
    }
    Ok(last)
}

/// Rows per data key.
pub(super) async fn key_usage(conn: &mut SqliteConnection) -> Result<Vec<KeyUsage>, StoreError> {
    let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT k.id, k.current, k.wrapped IS NULL, \
         (SELECT count(*) FROM messages m WHERE m.key_id = k.id), \
         (SELECT count(*) FROM spaces s WHERE s.key_id = k.id) \
         FROM data_keys k ORDER BY k.id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|(id, current, destroyed, messages, spaces)| KeyUsage {
            key: key_id(id),
            current: current == 1,
            destroyed: destroyed == 1,
            messages: u64::try_from(messages).unwrap_or(0),
            spaces: u64::try_from(spaces).unwrap_or(0),
        })
        .collect())
}

/// Erases a data key's wrapped bytes, refused while it is current or seals any row. The
/// check and the erasure are one `BEGIN IMMEDIATE` transaction, so no write slips between.
pub(super) async fn destroy_key(conn: &mut SqliteConnection, key: u32) -> Result<(), StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(classify)?;
    let usage = key_usage(&mut tx).await?;
    let Some(found) = usage.iter().find(|u| u.key == key) else {
        return Err(StoreError::Internal(format!("there is no data key {key}")));
    };
    crate::rotation::refuse_destroying(found)?;
    sqlx::query("UPDATE data_keys SET wrapped = NULL, destroyed_at = ?1 WHERE id = ?2")
        .bind(SystemClock.wall().micros())
        .bind(i64::from(key))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    tx.commit().await.map_err(classify)
}

/// Re-wraps every data key with `next`, in one transaction. Returns how many.
pub(super) async fn rewrap(
    conn: &mut SqliteConnection,
    keyring: &Keyring,
    next: &KeyEncryptionKey,
) -> Result<usize, StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(classify)?;
    let keys = data_keys(&mut tx).await?;
    let mut done = 0;
    for row in keys.iter().filter(|k| k.wrapped.is_some()) {
        let wrapped = keyring
            .rewrap(row, next)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        sqlx::query("UPDATE data_keys SET wrapped = ?1, kek_id = ?2 WHERE id = ?3")
            .bind(wrapped)
            .bind(next.id())
            .bind(i64::from(row.id))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        done += 1;
    }
    tx.commit().await.map_err(classify)?;
    Ok(done)
}
