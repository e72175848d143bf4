//! The audit log on SQLite: inserts and reads only (the authorizer and triggers refuse
//! anything else). Appends go through the writer, so an audit batch shares its commit
//! with the other writes of its group.

use super::SqliteStore;
use super::errors::{classify, corrupt};
use crate::rows::{AuditColumns, NEWEST_TWO_AUDIT, audit_columns};
use async_trait::async_trait;
use natterjack_core::audit::{
    AuditQuery, AuditStore, ChainHead, Decision, Linker, StoredAuditRecord,
};
use natterjack_core::domain::Timestamp;
use natterjack_core::ports::StoreError;
use rusqlite::{Connection, OptionalExtension, Params};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_head(&self) -> Result<Option<ChainHead>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = self
            .readers
            .read_async(|c| {
                c.prepare_cached("SELECT id, mac FROM audit_log ORDER BY id DESC LIMIT 1")?
                    .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .await?;
        row.map(|(id, mac)| {
            Ok(ChainHead {
                id,
                mac: mac.try_into().map_err(|_| corrupt("audit_log.mac"))?,
            })
        })
        .transpose()
    }

    async fn append_audit(&self, batch: &[StoredAuditRecord]) -> Result<(), StoreError> {
        let batch = batch.to_vec();
        self.writer
            .write(move |c| insert(c, &batch).map_err(classify))
            .await
    }

    async fn append_audit_exclusive(&self, link: &mut Linker<'_>) -> Result<(), StoreError> {
        // The head is read here and the linker runs on this task; the insert then runs on
        // the writer, whose transaction holds the write lock, and first checks that the
        // head is still the one linked to. Another process that appended in between makes
        // this append fail with `Conflict`, and the audit writer links again and retries.
        let mut ascending = self
            .readers
            .read_async(|c| records(c, NEWEST_TWO_AUDIT, []))
            .await??;
        ascending.reverse();
        let batch = link(&ascending).map_err(StoreError::Internal)?;
        let expected = ascending.last().map(|r| r.id);
        self.writer
            .write(move |c| {
                let head: Option<i64> = c
                    .prepare_cached("SELECT max(id) FROM audit_log")
                    .and_then(|mut s| s.query_row([], |r| r.get(0)))
                    .map_err(classify)?;
                if head != expected {
                    return Err(StoreError::Conflict);
                }
                insert(c, &batch).map_err(classify)
            })
            .await
    }

    async fn audit_in_order(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        self.readers
            .read_blocking(move |c| {
                records(
                    c,
                    concat!(
                        "SELECT ",
                        audit_columns!(),
                        " FROM audit_log WHERE id > ?1 ORDER BY id LIMIT +?2"
                    ),
                    (after_id, limit),
                )
            })
            .await?
    }

    async fn audit_page(&self, q: &AuditQuery) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let params = (
            q.since.map(Timestamp::micros),
            q.until.map(Timestamp::micros),
            q.principal.as_ref().map(|p| p.as_str().to_owned()),
            q.after,
            q.limit.get(),
            q.decision.map(Decision::as_str),
        );
        self.readers
            .read_blocking(move |c| {
                records(
                    c,
                    concat!(
                        "SELECT ",
                        audit_columns!(),
                        " FROM audit_log \
                         WHERE (?1 IS NULL OR time >= ?1) AND (?2 IS NULL OR time < ?2) \
                         AND (?3 IS NULL OR principal = ?3 COLLATE NOCASE) AND (?4 IS NULL OR id < ?4) \
                         AND (?6 IS NULL OR decision = ?6) \
                         ORDER BY id DESC LIMIT +?5"
                    ),
                    params,
                )
            })
            .await?
    }

    async fn export_cursor(&self, sink: &str) -> Result<i64, StoreError> {
        let delivered: Option<i64> = self
            .readers
            .read_async(|c| {
                c.prepare_cached("SELECT delivered_id FROM audit_export_cursor WHERE sink = ?1")?
                    .query_row([sink], |r| r.get(0))
                    .optional()
            })
            .await?;
        Ok(delivered.unwrap_or(0))
    }

    async fn advance_export_cursor(&self, sink: &str, delivered_id: i64) -> Result<(), StoreError> {
        let sink = sink.to_owned();
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO audit_export_cursor (sink, delivered_id) VALUES (?1, ?2) \
                     ON CONFLICT (sink) DO UPDATE SET delivered_id = excluded.delivered_id \
                     WHERE excluded.delivered_id > audit_export_cursor.delivered_id",
                )
                .and_then(|mut s| s.execute((sink, delivered_id)))
                .map(drop)
                .map_err(classify)
            })
            .await
    }
}

/// The audit records a statement selects ([`audit_columns`], in order), each checked.
fn records(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> rusqlite::Result<Result<Vec<StoredAuditRecord>, StoreError>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| {
        Ok(AuditColumns {
            id: r.get(0)?,
            time: r.get(1)?,
            request_id: r.get(2)?,
            phase: r.get(3)?,
            transport: r.get(4)?,
            client_ip: r.get(5)?,
            principal: r.get(6)?,
            auth_method: r.get(7)?,
            operation: r.get(8)?,
            target: r.get(9)?,
            status: r.get(10)?,
            decision: r.get(11)?,
            reason: r.get(12)?,
            duration_us: r.get(13)?,
            mac: r.get(14)?,
            count: r.get(15)?,
        })
    })?;
    let columns: Vec<AuditColumns> = rows.collect::<rusqlite::Result<_>>()?;
    Ok(columns
        .into_iter()
        .map(|c| c.decode().map_err(StoreError::Internal))
        .collect())
}

/// Inserts a batch, one prepared insert per record inside the writer's transaction (the
/// group commit): compiled once per connection, each row costs a few microseconds.
fn insert(conn: &Connection, batch: &[StoredAuditRecord]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO audit_log (id, time, request_id, phase, transport, client_ip, principal, auth_method, \
         operation, target, status, decision, reason, duration_us, mac, count) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for stored in batch {
        let r = &stored.record;
        stmt.execute(rusqlite::params![
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
            &stored.mac[..],
            r.count.and_then(|n| i64::try_from(n).ok()),
        ])?;
    }
    Ok(())
}
