//! Sealed content on SQLite: the data keys, the one-time sealing of plaintext rows during
//! the upgrade to schema 7, re-sealing batches, and the operator's key changes (made on an
//! owner connection: the server's connections can only read `data_keys`).

use super::errors::classify;
use crate::rotation::{KeyUsage, ResealBatch, ResealCursor};
use crate::rows::{self, key_id};
use crate::sealing::{DataKeyRow, KeyEncryptionKey, Keyring, Place};
use natterjack_core::clock::{Clock, SystemClock};
use natterjack_core::ports::StoreError;
use rusqlite::{Connection, TransactionBehavior};

/// Every data key, by id.
pub(super) fn data_keys(conn: &Connection) -> rusqlite::Result<Vec<DataKeyRow>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, wrapped, kek_id, current FROM data_keys ORDER BY id")?;
    let rows = stmt.query_map([], |row| {
        Ok(DataKeyRow {
            id: key_id(row.get(0)?),
            wrapped: row.get(1)?,
            kek_id: row.get(2)?,
            current: row.get::<_, i64>(3)? == 1,
        })
    })?;
    rows.collect()
}

/// Loads the data keys into `keyring`: every one must unwrap, or the error names it.
pub(super) fn load(conn: &Connection, keyring: &Keyring) -> Result<(), StoreError> {
    let rows = data_keys(conn).map_err(classify)?;
    keyring
        .load(&rows)
        .map_err(|e| StoreError::Internal(e.to_string()))
}

/// Adds a new data key and makes it the current one (the first, or a rotation), in the
/// caller's transaction. Returns its id.
pub(super) fn add_current_key(conn: &Connection, keyring: &Keyring) -> Result<u32, StoreError> {
    let next: i64 = conn
        .query_row("SELECT coalesce(max(id), 0) + 1 FROM data_keys", [], |r| {
            r.get(0)
        })
        .map_err(classify)?;
    let id =
        u32::try_from(next).map_err(|_| StoreError::Internal("data key ids exhausted".into()))?;
    let wrapped = keyring
        .new_wrapped_key(id)
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    conn.execute("UPDATE data_keys SET current = 0 WHERE current = 1", [])
        .map_err(classify)?;
    conn.execute(
        "INSERT INTO data_keys (id, wrapped, kek_id, current, created_at) VALUES (?1, ?2, ?3, 1, ?4)",
        (next, wrapped, keyring.kek().id(), SystemClock.wall().micros()),
    )
    .map_err(classify)?;
    load(conn, keyring)?;
    Ok(id)
}

/// Schema 6 → 7: seals every row still in plaintext (`key_id` 0) under the current key
/// (created first if there is none), in the caller's transaction. Returns the rows sealed.
pub(super) fn seal_plaintext(conn: &Connection, keyring: &Keyring) -> Result<u64, StoreError> {
    load(conn, keyring)?;
    if keyring.current().is_none() {
        add_current_key(conn, keyring)?;
    }
    let mut sealed = 0u64;
    let spaces: Vec<(i64, String)> = conn
        .prepare("SELECT id, name FROM spaces WHERE key_id = 0 ORDER BY id")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(classify)?;
    for (id, name) in spaces {
        let (key, bytes) = rows::seal(keyring, &Place::space_name(id), &name)?;
        conn.execute(
            "UPDATE spaces SET name_sealed = ?1, key_id = ?2 WHERE id = ?3",
            (bytes, key, id),
        )
        .map_err(classify)?;
        sealed += 1;
    }
    let mut after = 0i64;
    loop {
        let batch: Vec<(i64, i64, String)> = conn
            .prepare_cached(
                "SELECT id, space_id, body FROM messages WHERE id > ?1 AND key_id = 0 ORDER BY id LIMIT 1000",
            )
            .and_then(|mut stmt| {
                stmt.query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(classify)?;
        let Some(last) = batch.last().map(|row| row.0) else {
            break;
        };
        for (id, space, body) in batch {
            let (key, bytes) = rows::seal(keyring, &Place::message_body(id, space), &body)?;
            conn.prepare_cached("UPDATE messages SET body_sealed = ?1, key_id = ?2 WHERE id = ?3")
                .and_then(|mut stmt| stmt.execute((bytes, key, id)))
                .map_err(classify)?;
            sealed += 1;
        }
        after = last;
    }
    Ok(sealed)
}

/// One batch of re-sealing (see [`crate::rotation`]), run by the writer inside its
/// transaction, which holds the write lock from its first read.
pub(super) fn reseal_batch(
    conn: &Connection,
    keyring: &Keyring,
    cursor: ResealCursor,
    limit: u32,
) -> Result<ResealBatch, StoreError> {
    let current = keyring
        .current()
        .ok_or_else(|| StoreError::Internal("no current data key".into()))?;
    let mut batch = ResealBatch {
        cursor,
        ..ResealBatch::default()
    };
    let spaces: Vec<(i64, Vec<u8>, i64)> = conn
        .prepare_cached(
            "SELECT id, name, key_id FROM spaces WHERE id > ?1 AND key_id <> ?2 ORDER BY id LIMIT ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_map((cursor.spaces, current, limit), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
        .map_err(classify)?;
    let spaces_done = spaces.len() < limit as usize;
    let spaces = spaces
        .into_iter()
        .map(|(id, bytes, old)| (id, Place::space_name(id), old, bytes))
        .collect();
    if let Some(last) = reseal_rows(
        conn,
        keyring,
        "UPDATE spaces SET name = ?1, key_id = ?2 WHERE id = ?3 AND key_id = ?4",
        spaces,
        &mut batch,
    )? {
        batch.cursor.spaces = last;
    }
    let messages: Vec<(i64, i64, Vec<u8>, i64)> = conn
        .prepare_cached(
            "SELECT id, space_id, body, key_id FROM messages WHERE id > ?1 AND key_id <> ?2 ORDER BY id LIMIT ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_map((cursor.messages, current, limit), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })
        .map_err(classify)?;
    let messages_done = messages.len() < limit as usize;
    let messages = messages
        .into_iter()
        .map(|(id, space, bytes, old)| (id, Place::message_body(id, space), old, bytes))
        .collect();
    if let Some(last) = reseal_rows(
        conn,
        keyring,
        "UPDATE messages SET body = ?1, key_id = ?2 WHERE id = ?3 AND key_id = ?4",
        messages,
        &mut batch,
    )? {
        batch.cursor.messages = last;
    }
    batch.finished = spaces_done && messages_done;
    Ok(batch)
}

/// Re-seals `found` (id, place, old key, stored bytes) with `update` (new bytes, new key,
/// id, old key: the row changes only if its key is still the one read), counting into
/// `batch`. Returns the last id handled.
fn reseal_rows(
    conn: &Connection,
    keyring: &Keyring,
    update: &'static str,
    found: Vec<(i64, Place, i64, Vec<u8>)>,
    batch: &mut ResealBatch,
) -> Result<Option<i64>, StoreError> {
    let mut last = None;
    let mut stmt = conn.prepare_cached(update).map_err(classify)?;
    for (id, place, old, bytes) in found {
        last = Some(id);
        match rows::reseal(keyring, &place, old, &bytes)? {
            Some((key, sealed)) => {
                let changed = stmt.execute((sealed, key, id, old)).map_err(classify)?;
                batch.resealed += changed as u64;
            }
            None => batch.unreadable += 1,
        }
    }
    Ok(last)
}

/// Rows per data key.
pub(super) fn key_usage(conn: &Connection) -> rusqlite::Result<Vec<KeyUsage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT k.id, k.current, k.wrapped IS NULL, \
         (SELECT count(*) FROM messages m WHERE m.key_id = k.id), \
         (SELECT count(*) FROM spaces s WHERE s.key_id = k.id) \
         FROM data_keys k ORDER BY k.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(KeyUsage {
            key: key_id(r.get(0)?),
            current: r.get::<_, i64>(1)? == 1,
            destroyed: r.get::<_, i64>(2)? == 1,
            messages: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            spaces: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        })
    })?;
    rows.collect()
}

/// Erases a data key's wrapped bytes, refused while it is current or seals any row. The
/// check and the erasure are one `BEGIN IMMEDIATE` transaction, so no write slips between.
pub(super) fn destroy_key(conn: &mut Connection, key: u32) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;
    let usage = key_usage(&tx).map_err(classify)?;
    let Some(found) = usage.iter().find(|u| u.key == key) else {
        return Err(StoreError::Internal(format!("there is no data key {key}")));
    };
    crate::rotation::refuse_destroying(found)?;
    tx.execute(
        "UPDATE data_keys SET wrapped = NULL, destroyed_at = ?1 WHERE id = ?2",
        (SystemClock.wall().micros(), key),
    )
    .map_err(classify)?;
    tx.commit().map_err(classify)
}

/// Re-wraps every data key with `next`, in one transaction. Returns how many.
pub(super) fn rewrap(
    conn: &mut Connection,
    keyring: &Keyring,
    next: &KeyEncryptionKey,
) -> Result<usize, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;
    let keys = data_keys(&tx).map_err(classify)?;
    let mut done = 0;
    for row in keys.iter().filter(|k| k.wrapped.is_some()) {
        let wrapped = keyring
            .rewrap(row, next)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        tx.execute(
            "UPDATE data_keys SET wrapped = ?1, kek_id = ?2 WHERE id = ?3",
            (wrapped, next.id(), row.id),
        )
        .map_err(classify)?;
        done += 1;
    }
    tx.commit().map_err(classify)?;
    Ok(done)
}
