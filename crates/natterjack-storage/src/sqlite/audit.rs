//! The audit log on SQLite: inserts and reads only (the authorizer and triggers refuse
//! anything else).

use super::SqliteStore;
use super::errors::{classify, corrupt};
use async_trait::async_trait;
use natterjack_core::audit::{
    AuditQuery, AuditRecord, AuditStore, ChainHead, Phase, StoredAuditRecord,
};
use natterjack_core::domain::Timestamp;
use natterjack_core::ports::StoreError;
use sqlx::FromRow;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

struct Stored(StoredAuditRecord);

impl<'r> FromRow<'r, SqliteRow> for Stored {
    fn from_row(row: &'r SqliteRow) -> Result<Self, sqlx::Error> {
        let mac: Vec<u8> = row.try_get("mac")?;
        let phase: String = row.try_get("phase")?;
        let status: Option<i64> = row.try_get("status")?;
        let bad = |what: &str| sqlx::Error::Decode(format!("corrupt audit_log.{what}").into());
        Ok(Stored(StoredAuditRecord {
            id: row.try_get("id")?,
            mac: mac.try_into().map_err(|_| bad("mac"))?,
            record: AuditRecord {
                time: Timestamp::from_micros(row.try_get("time")?),
                request_id: row.try_get("request_id")?,
                phase: Phase::parse(&phase).ok_or_else(|| bad("phase"))?,
                transport: row.try_get("transport")?,
                client_ip: row.try_get("client_ip")?,
                principal: row.try_get("principal")?,
                auth_method: row.try_get("auth_method")?,
                operation: row.try_get("operation")?,
                target: row.try_get("target")?,
                status: status
                    .map(u16::try_from)
                    .transpose()
                    .map_err(|_| bad("status"))?,
                decision: row.try_get("decision")?,
                reason: row.try_get("reason")?,
                duration_us: row.try_get("duration_us")?,
            },
        }))
    }
}

fn records(rows: Vec<Stored>) -> Vec<StoredAuditRecord> {
    rows.into_iter().map(|s| s.0).collect()
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_head(&self) -> Result<Option<ChainHead>, StoreError> {
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, mac FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(self.pool())
                .await
                .map_err(classify)?;
        row.map(|(id, mac)| {
            Ok(ChainHead {
                id,
                mac: mac.try_into().map_err(|_| corrupt("audit_log.mac"))?,
            })
        })
        .transpose()
    }

    async fn append_audit(&self, batch: &[StoredAuditRecord]) -> Result<(), StoreError> {
        // The whole batch travels as one bound JSON parameter and lands in one statement:
        // one round trip and one implicit transaction, whatever the batch size (group commit).
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
                    r.transport,
                    r.client_ip,
                    r.principal,
                    r.auth_method,
                    r.operation,
                    r.target,
                    r.status,
                    r.decision,
                    r.reason,
                    r.duration_us,
                    mac
                ])
            })
            .collect();
        sqlx::query(
            "INSERT INTO audit_log (id, time, request_id, phase, transport, client_ip, principal, auth_method, \
             operation, target, status, decision, reason, duration_us, mac) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, \
             value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, value ->> 12, value ->> 13, \
             unhex(value ->> 14) FROM json_each(?1) ORDER BY key",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn audit_in_order(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let rows: Vec<Stored> = sqlx::query_as(
            "SELECT id, time, request_id, phase, transport, client_ip, principal, auth_method, operation, \
             target, status, decision, reason, duration_us, mac FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(classify)?;
        Ok(records(rows))
    }

    async fn audit_page(&self, q: &AuditQuery) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let rows: Vec<Stored> = sqlx::query_as(
            "SELECT id, time, request_id, phase, transport, client_ip, principal, auth_method, operation, \
             target, status, decision, reason, duration_us, mac FROM audit_log \
             WHERE (?1 IS NULL OR time >= ?1) AND (?2 IS NULL OR time < ?2) \
             AND (?3 IS NULL OR principal = ?3 COLLATE NOCASE) AND (?4 IS NULL OR id < ?4) \
             ORDER BY id DESC LIMIT ?5",
        )
        .bind(q.since.map(Timestamp::micros))
        .bind(q.until.map(Timestamp::micros))
        .bind(q.principal.as_ref().map(|p| p.as_str().to_owned()))
        .bind(q.after)
        .bind(i64::from(q.limit.get()))
        .fetch_all(self.pool())
        .await
        .map_err(classify)?;
        Ok(records(rows))
    }
}
