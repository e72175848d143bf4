//! The audit log on PostgreSQL: inserts and reads only (the app role's grants and the
//! triggers refuse anything else).

use super::PgStore;
use super::errors::{classify, corrupt};
use crate::rows::{AuditRow, NEWEST_TWO_AUDIT, audit_columns, audit_records};
use async_trait::async_trait;
use natterjack_core::audit::{
    AuditQuery, AuditStore, ChainHead, Decision, Linker, StoredAuditRecord,
};
use natterjack_core::domain::Timestamp;
use natterjack_core::ports::StoreError;

/// A batch pivoted into one array per column, so that it binds as sixteen parameters
/// whatever its size.
#[derive(Default)]
struct Columns {
    id: Vec<i64>,
    time: Vec<i64>,
    request_id: Vec<String>,
    phase: Vec<&'static str>,
    transport: Vec<String>,
    client_ip: Vec<String>,
    principal: Vec<Option<String>>,
    auth_method: Vec<String>,
    operation: Vec<String>,
    target: Vec<String>,
    status: Vec<Option<i32>>,
    decision: Vec<String>,
    reason: Vec<Option<String>>,
    duration_us: Vec<i64>,
    mac: Vec<Vec<u8>>,
    count: Vec<Option<i64>>,
}

impl Columns {
    fn of(batch: &[StoredAuditRecord]) -> Self {
        let mut c = Columns::default();
        for stored in batch {
            let r = &stored.record;
            c.id.push(stored.id);
            c.time.push(r.time.micros());
            c.request_id.push(r.request_id.clone());
            c.phase.push(r.phase.as_str());
            c.transport.push(r.transport.as_str().to_owned());
            c.client_ip.push(r.client_ip.clone());
            c.principal.push(r.principal.clone());
            c.auth_method.push(r.auth_method.as_str().to_owned());
            c.operation.push(r.operation.clone());
            c.target.push(r.target.clone());
            c.status.push(r.status.map(|s| i32::from(s.code())));
            c.decision.push(r.decision.as_str().to_owned());
            c.reason.push(r.reason.clone());
            c.duration_us.push(r.duration_us);
            c.mac.push(stored.mac.to_vec());
            c.count
                .push(r.count.map(|n| i64::try_from(n).unwrap_or(i64::MAX)));
        }
        c
    }
}

#[async_trait]
impl AuditStore for PgStore {
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
        insert(self.pool(), batch).await
    }

    async fn append_audit_exclusive(&self, link: &mut Linker<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await.map_err(classify)?;
        // Every exclusive append takes this transaction-scoped lock first, so writers that
        // have met each other queue up instead of racing for the next id.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_APPEND_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let rows: Vec<AuditRow> = sqlx::query_as(NEWEST_TWO_AUDIT)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        let mut newest = audit_records(rows);
        newest.reverse();
        let batch = link(&newest).map_err(StoreError::Internal)?;
        insert(&mut *tx, &batch).await?;
        tx.commit().await.map_err(classify)
    }

    async fn audit_in_order(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(classify)?;
        Ok(audit_records(rows))
    }

    async fn audit_page(&self, q: &AuditQuery) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log \
             WHERE ($1::bigint IS NULL OR time >= $1) AND ($2::bigint IS NULL OR time < $2) \
             AND ($3::text IS NULL OR lower(principal) = lower($3)) AND ($4::bigint IS NULL OR id < $4) \
             AND ($6::text IS NULL OR decision = $6) \
             ORDER BY id DESC LIMIT $5"
        ))
        .bind(q.since.map(Timestamp::micros))
        .bind(q.until.map(Timestamp::micros))
        .bind(q.principal.as_ref().map(|p| p.as_str().to_owned()))
        .bind(q.after)
        .bind(i64::from(q.limit.get()))
        .bind(q.decision.map(Decision::as_str))
        .fetch_all(self.pool())
        .await
        .map_err(classify)?;
        Ok(audit_records(rows))
    }

    async fn export_cursor(&self, sink: &str) -> Result<i64, StoreError> {
        let delivered: Option<i64> =
            sqlx::query_scalar("SELECT delivered_id FROM audit_export_cursor WHERE sink = $1")
                .bind(sink)
                .fetch_optional(self.pool())
                .await
                .map_err(classify)?;
        Ok(delivered.unwrap_or(0))
    }

    async fn advance_export_cursor(&self, sink: &str, delivered_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_export_cursor (sink, delivered_id) VALUES ($1, $2) \
             ON CONFLICT (sink) DO UPDATE SET delivered_id = excluded.delivered_id \
             WHERE excluded.delivered_id > audit_export_cursor.delivered_id",
        )
        .bind(sink)
        .bind(delivered_id)
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }
}

/// The advisory lock key exclusive audit appends serialize on ("NJAUDIT" in ASCII).
const AUDIT_APPEND_LOCK: i64 = 0x004E_4A41_5544_4954;

/// Inserts a batch in one statement.
async fn insert<'c, E>(executor: E, batch: &[StoredAuditRecord]) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    if batch.is_empty() {
        return Ok(());
    }
    // The whole batch travels as one array per column and lands in one statement: one
    // round trip and one implicit transaction, whatever the batch size (group commit).
    // A duplicate id fails the whole statement as a unique violation: `Conflict`.
    let c = Columns::of(batch);
    sqlx::query(
        "INSERT INTO audit_log (id, time, request_id, phase, transport, client_ip, principal, \
         auth_method, operation, target, status, decision, reason, duration_us, mac, count) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::integer[], $12::text[], \
         $13::text[], $14::bigint[], $15::bytea[], $16::bigint[])",
    )
    .bind(c.id)
    .bind(c.time)
    .bind(c.request_id)
    .bind(c.phase)
    .bind(c.transport)
    .bind(c.client_ip)
    .bind(c.principal)
    .bind(c.auth_method)
    .bind(c.operation)
    .bind(c.target)
    .bind(c.status)
    .bind(c.decision)
    .bind(c.reason)
    .bind(c.duration_us)
    .bind(c.mac)
    .bind(c.count)
    .execute(executor)
    .await
    .map_err(classify)?;
    Ok(())
}
