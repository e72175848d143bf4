//! The audit log on SQLite: inserts and reads only (the authorizer and triggers refuse
//! anything else).

use super::SqliteStore;
use super::errors::{classify, corrupt};
use crate::rows::{AuditRow, NEWEST_TWO_AUDIT, audit_columns, audit_records};
use async_trait::async_trait;
use natterjack_core::audit::{AuditQuery, AuditStore, ChainHead, Linker, StoredAuditRecord};
use natterjack_core::domain::Timestamp;
use natterjack_core::ports::StoreError;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_head(&self) -> Result<Option<ChainHead>, StoreError> {
        let mut conn = self.conns.lease().await?;
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, mac FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| conn.fail(e))?;
        row.map(|(id, mac)| {
            Ok(ChainHead {
                id,
                mac: mac.try_into().map_err(|_| corrupt("audit_log.mac"))?,
            })
        })
        .transpose()
    }

    async fn append_audit(&self, batch: &[StoredAuditRecord]) -> Result<(), StoreError> {
        let mut conn = self.conns.lease().await?;
        insert(&mut *conn, batch).await.map_err(|e| conn.fail(e))
    }

    async fn append_audit_exclusive(&self, link: &mut Linker<'_>) -> Result<(), StoreError> {
        let mut conn = self.conns.lease().await?;
        // IMMEDIATE takes the write lock before the read: no other connection, in this
        // process or another, can append between reading the head and committing.
        let mut tx = conn.begin(Some("BEGIN IMMEDIATE")).await?;
        let rows: Vec<AuditRow> = sqlx::query_as(NEWEST_TWO_AUDIT)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        let mut newest = audit_records(rows);
        newest.reverse();
        let batch = link(&newest).map_err(StoreError::Internal)?;
        insert(&mut *tx, &batch).await.map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn audit_in_order(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let mut conn = self.conns.lease().await?;
        let rows: Vec<AuditRow> = sqlx::query_as(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        Ok(audit_records(rows))
    }

    async fn audit_page(&self, q: &AuditQuery) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let mut conn = self.conns.lease().await?;
        let rows: Vec<AuditRow> = sqlx::query_as(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log \
             WHERE (?1 IS NULL OR time >= ?1) AND (?2 IS NULL OR time < ?2) \
             AND (?3 IS NULL OR principal = ?3 COLLATE NOCASE) AND (?4 IS NULL OR id < ?4) \
             ORDER BY id DESC LIMIT ?5"
        ))
        .bind(q.since.map(Timestamp::micros))
        .bind(q.until.map(Timestamp::micros))
        .bind(q.principal.as_ref().map(|p| p.as_str().to_owned()))
        .bind(q.after)
        .bind(i64::from(q.limit.get()))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        Ok(audit_records(rows))
    }

    async fn export_cursor(&self, sink: &str) -> Result<i64, StoreError> {
        let mut conn = self.conns.lease().await?;
        let delivered: Option<i64> =
            sqlx::query_scalar("SELECT delivered_id FROM audit_export_cursor WHERE sink = ?1")
                .bind(sink)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| conn.fail(e))?;
        Ok(delivered.unwrap_or(0))
    }

    async fn advance_export_cursor(&self, sink: &str, delivered_id: i64) -> Result<(), StoreError> {
        let mut conn = self.conns.lease().await?;
        sqlx::query(
            "INSERT INTO audit_export_cursor (sink, delivered_id) VALUES (?1, ?2) \
             ON CONFLICT (sink) DO UPDATE SET delivered_id = excluded.delivered_id \
             WHERE excluded.delivered_id > audit_export_cursor.delivered_id",
        )
        .bind(sink)
        .bind(delivered_id)
        .execute(&mut *conn)
        .await
        .map_err(|e| conn.fail(e))?;
        Ok(())
    }
}

/// Inserts a batch in one statement: the whole batch travels as one bound JSON parameter,
/// so it is one round trip and one implicit transaction whatever its size (group commit).
async fn insert<'c, E>(executor: E, batch: &[StoredAuditRecord]) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let rows: Vec<serde_json::Value> = batch
        .iter()
        .map(|stored| {
            let r = &stored.record;
            let mac: String = stored.mac.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!([
                stored.id,
                r.time.micros(),
                r.request_id,
                r.phase.as_str(),
                r.transport.as_str(),
                r.client_ip,
                r.principal,
                r.auth_method.as_str(),
                r.operation,
                r.target,
                r.status.map(|s| s.code()),
                r.decision.as_str(),
                r.reason,
                r.duration_us,
                mac,
                r.count
            ])
        })
        .collect();
    sqlx::query(
        "INSERT INTO audit_log (id, time, request_id, phase, transport, client_ip, principal, auth_method, \
         operation, target, status, decision, reason, duration_us, mac, count) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, \
         value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, value ->> 12, value ->> 13, \
         unhex(value ->> 14), value ->> 15 FROM json_each(?1) ORDER BY key",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(executor)
    .await?;
    Ok(())
}
