//! Browser sessions and pending sign-ons on SQLite: reads on the caller's thread, writes
//! through the one writer, like every other table.

use super::errors::classify;
use super::store::SqliteStore;
use crate::rows::{self, SESSION_COLUMNS, SessionRow};
use async_trait::async_trait;
use natterjack_core::domain::{Timestamp, UserId};
use natterjack_core::ports::StoreError;
use natterjack_core::session::{NewSession, SessionKey, SessionStore, StoredSession};
use rusqlite::{OptionalExtension, Row};
use secrecy::{ExposeSecret, SecretString};
use std::sync::LazyLock;

static FIND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM console_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id_hash = ?1"
    )
});

static LIST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM console_sessions s JOIN users u ON u.id = s.user_id \
         ORDER BY s.created_at, s.id_hash"
    )
});

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get::<_, i64>(3)? == 1,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get::<_, i64>(10)? == 1,
        r.get::<_, i64>(11)? == 1,
    ))
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError> {
        let s = session.clone();
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO console_sessions (id_hash, user_id, method, credential_mark, \
                     is_admin, created_at, last_seen_at, client_ip, granted_admin) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .and_then(|mut st| {
                    st.execute((
                        s.key.as_bytes().as_slice(),
                        s.user.get(),
                        s.method.as_str(),
                        s.credential_mark.as_slice(),
                        i64::from(s.admin),
                        s.created_at.micros(),
                        s.created_at.micros(),
                        s.client_ip.as_str(),
                        i64::from(s.granted_admin),
                    ))
                })
                .map(drop)
                .map_err(classify)
            })
            .await
    }

    async fn find_session(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        let key = *key;
        let row = self
            .readers
            .read_async(move |c| {
                c.prepare_cached(&FIND)?
                    .query_row([key.as_bytes().as_slice()], session_row)
                    .optional()
            })
            .await?;
        row.map(rows::session).transpose()
    }

    async fn touch_session(&self, key: &SessionKey, at: Timestamp) -> Result<(), StoreError> {
        let key = *key;
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE console_sessions SET last_seen_at = ?1 WHERE id_hash = ?2 \
                     AND last_seen_at < ?1",
                )
                .and_then(|mut st| st.execute((at.micros(), key.as_bytes().as_slice())))
                .map(drop)
                .map_err(classify)
            })
            .await
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let key = *key;
        self.writer
            .write(move |c| {
                c.prepare_cached("DELETE FROM console_sessions WHERE id_hash = ?1")
                    .and_then(|mut st| st.execute([key.as_bytes().as_slice()]))
                    .map(|n| n > 0)
                    .map_err(classify)
            })
            .await
    }

    async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError> {
        self.writer
            .write(move |c| {
                c.prepare_cached("DELETE FROM console_sessions WHERE user_id = ?1")
                    .and_then(|mut st| st.execute([user.get()]))
                    .map(|n| n as u64)
                    .map_err(classify)
            })
            .await
    }

    async fn list_sessions(&self) -> Result<Vec<StoredSession>, StoreError> {
        let rows = self
            .readers
            .read_async(|c| {
                c.prepare_cached(&LIST)?
                    .query_map([], session_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter().map(rows::session).collect()
    }

    async fn put_pending_login(
        &self,
        key: &SessionKey,
        kind: &str,
        state: &SecretString,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let (key, kind) = (*key, kind.to_owned());
        let state = SecretString::from(state.expose_secret().to_owned());
        self.writer
            .write(move |c| {
                // Sign-ons the browser never finished go when the next one starts.
                c.prepare_cached("DELETE FROM console_pending_logins WHERE expires_at < ?1")
                    .and_then(|mut st| st.execute([now.micros()]))
                    .map_err(classify)?;
                c.prepare_cached(
                    "INSERT INTO console_pending_logins (id_hash, kind, state, expires_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut st| {
                    st.execute((
                        key.as_bytes().as_slice(),
                        kind.as_str(),
                        state.expose_secret(),
                        expires_at.micros(),
                    ))
                })
                .map(drop)
                .map_err(classify)
            })
            .await
    }

    async fn take_pending_login(
        &self,
        key: &SessionKey,
        kind: &str,
    ) -> Result<Option<(SecretString, Timestamp)>, StoreError> {
        let (key, kind) = (*key, kind.to_owned());
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "DELETE FROM console_pending_logins WHERE id_hash = ?1 AND kind = ?2 \
                     RETURNING state, expires_at",
                )
                .and_then(|mut st| {
                    st.query_row((key.as_bytes().as_slice(), kind.as_str()), |r| {
                        Ok((
                            SecretString::from(r.get::<_, String>(0)?),
                            r.get::<_, i64>(1)?,
                        ))
                    })
                    .optional()
                })
                .map(|row| row.map(|(state, at)| (state, Timestamp::from_micros(at))))
                .map_err(classify)
            })
            .await
    }
}
