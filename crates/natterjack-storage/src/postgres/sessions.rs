//! Browser sessions and pending sign-ons on PostgreSQL, shared by every node of the
//! database.

use super::errors::classify;
use super::lifecycle::PgStore;
use crate::rows::{self, SESSION_COLUMNS, SessionRow};
use async_trait::async_trait;
use natterjack_core::domain::{Timestamp, UserId};
use natterjack_core::ports::StoreError;
use natterjack_core::session::{NewSession, SessionKey, SessionStore, StoredSession};
use secrecy::{ExposeSecret, SecretString};
use std::sync::LazyLock;

static FIND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM console_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id_hash = $1"
    )
});

static LIST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM console_sessions s JOIN users u ON u.id = s.user_id \
         ORDER BY s.created_at, s.id_hash"
    )
});

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session(&self, s: &NewSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, user_id, method, credential_mark, is_admin, \
             created_at, last_seen_at, client_ip, granted_admin) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
        )
        .bind(s.key.as_bytes().as_slice())
        .bind(s.user.get())
        .bind(&s.method)
        .bind(s.credential_mark.as_slice())
        .bind(s.admin)
        .bind(s.created_at.micros())
        .bind(&s.client_ip)
        .bind(s.granted_admin)
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn find_session(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(FIND.as_str())
            .bind(key.as_bytes().as_slice())
            .fetch_optional(self.pool())
            .await
            .map_err(classify)?;
        row.map(rows::session).transpose()
    }

    async fn touch_session(&self, key: &SessionKey, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2 \
             AND last_seen_at < $1",
        )
        .bind(at.micros())
        .bind(key.as_bytes().as_slice())
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(key.as_bytes().as_slice())
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
            .bind(user.get())
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn list_sessions(&self) -> Result<Vec<StoredSession>, StoreError> {
        let rows: Vec<SessionRow> = sqlx::query_as(LIST.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(classify)?;
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
        // Sign-ons the browser never finished go when the next one starts.
        sqlx::query("DELETE FROM console_pending_logins WHERE expires_at < $1")
            .bind(now.micros())
            .execute(self.pool())
            .await
            .map_err(classify)?;
        sqlx::query(
            "INSERT INTO console_pending_logins (id_hash, kind, state, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(key.as_bytes().as_slice())
        .bind(kind)
        .bind(state.expose_secret())
        .bind(expires_at.micros())
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn take_pending_login(
        &self,
        key: &SessionKey,
        kind: &str,
    ) -> Result<Option<(SecretString, Timestamp)>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM console_pending_logins WHERE id_hash = $1 AND kind = $2 \
             RETURNING state, expires_at",
        )
        .bind(key.as_bytes().as_slice())
        .bind(kind)
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        Ok(row.map(|(state, at)| (SecretString::from(state), Timestamp::from_micros(at))))
    }
}
