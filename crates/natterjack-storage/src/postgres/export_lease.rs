//! The export lease on PostgreSQL: a session-level advisory lock per sink, taken with
//! `pg_try_advisory_lock` on a connection of its own that the exporter keeps for as long as
//! it exports.
//!
//! A session-level advisory lock lasts until it is unlocked or its session ends, and
//! PostgreSQL ends the session of a client that is gone: at once when the client's process
//! dies on a host whose kernel closes its socket (`kill -9`, a crash), and after the TCP
//! keepalive settings this connection asks the server for when the host or the network
//! vanishes (about 11 s idle, 10 s with data unacknowledged). The lock needs no table
//! privilege, so the app role's grants stay as they are. Advisory locks are scoped to the
//! database, so two deployments on one server do not share leases.
//!
//! The holder proves it still holds the lock with a round trip on the same connection
//! before each step of its exporter: the connection is never pooled or re-opened behind its
//! back, so as long as a statement succeeds on it, its session, and so the lock, is alive.
//! A round trip that fails or takes longer than `CHECK_TIMEOUT` drops the connection, and
//! the exporter stops: well before the server gives up on the session and another process
//! can take the lock.

use super::errors::classify;
use super::lifecycle::PgStore;
use super::target::PgTarget;
use async_trait::async_trait;
use natterjack_core::audit::{ExportLease, ExportLeases};
use natterjack_core::ports::StoreError;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnection;
use sqlx::{ConnectOptions, Connection};
use std::time::Duration;

/// Longest time one take-or-confirm may take, connecting included. Shorter than the
/// server's keepalive give-up time below, so that a holder cut off from the database stops
/// sending before the server frees its lock.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the lease connection asks the server to use on its socket, so that the server ends
/// the session of a holder whose host or network is gone: keepalive probes after 5 s of
/// silence, every 2 s, 3 unanswered ones end it; and data unacknowledged for 10 s ends it
/// too. The holder talks every 500 ms or so, so a healthy connection never looks silent.
/// (Ignored on Unix-domain sockets, where the peer's death is always seen at once.)
const KEEPALIVES: [(&str, &str); 4] = [
    ("tcp_keepalives_idle", "5"),
    ("tcp_keepalives_interval", "2"),
    ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "10000"),
];

/// The `application_name` of lease connections, so that an operator can tell them apart in
/// `pg_stat_activity`.
const APPLICATION_NAME: &str = "natterjack export lease";

/// The leases of one PostgreSQL database: each lease opens its own connection as the app
/// role (one more connection per sink per server than `database.max_connections`).
pub struct PgExportLeases {
    target: PgTarget,
}

impl PgExportLeases {
    /// Leases connecting through `target` (the app role's), with the keepalive settings
    /// that bound how long a dead holder keeps its lease.
    pub fn new(target: PgTarget) -> Self {
        Self {
            target: target.map(|options| {
                options
                    .application_name(APPLICATION_NAME)
                    .options(KEEPALIVES)
            }),
        }
    }
}

impl ExportLeases for PgExportLeases {
    fn lease(&self, sink: &str) -> Box<dyn ExportLease> {
        Box::new(PgExportLease {
            target: self.target.clone(),
            key: lock_key(sink),
            conn: None,
            held: false,
        })
    }
}

impl PgStore {
    /// The export leases of this store's database, connecting as this store's role.
    pub fn export_leases(&self) -> PgExportLeases {
        PgExportLeases::new(self.target().clone())
    }
}

/// The advisory lock key of a sink: the first 64 bits of SHA-256 over a fixed prefix and
/// the name, so that every process derives the same key from the same name without a
/// table of keys. Two sink names colliding is a 2^-64 chance; the one-number key space
/// is apart from the two-number one, and the audit log's own lock is a readable constant
/// that no hash is expected to hit.
pub(crate) fn lock_key(sink: &str) -> i64 {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(b"natterjack export lease\0")
        .chain_update(sink.as_bytes())
        .finalize()
        .into();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// One sink's lease: the connection that holds (or tries to take) its lock.
struct PgExportLease {
    target: PgTarget,
    key: i64,
    conn: Option<PgConnection>,
    held: bool,
}

impl PgExportLease {
    /// Connects if need be, then tries the lock (or, when held, proves the session alive).
    async fn step(&mut self) -> Result<bool, StoreError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self.target.connect().await.map_err(classify)?;
                self.conn.insert(conn)
            }
        };
        if self.held {
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
        } else {
            self.held = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(self.key)
                .fetch_one(&mut *conn)
                .await
                .map_err(classify)?;
        }
        Ok(self.held)
    }

    /// Forgets the connection: closing its socket ends the session on the server, and with
    /// it the lock, if this held it.
    fn lose(&mut self) {
        self.conn = None;
        self.held = false;
    }
}

#[async_trait]
impl ExportLease for PgExportLease {
    async fn hold(&mut self) -> Result<bool, StoreError> {
        match tokio::time::timeout(CHECK_TIMEOUT, self.step()).await {
            Ok(Ok(held)) => Ok(held),
            Ok(Err(e)) => {
                self.lose();
                Err(e)
            }
            Err(_) => {
                self.lose();
                Err(StoreError::Unavailable(
                    "the export lease's connection did not answer in time".to_owned(),
                ))
            }
        }
    }

    async fn release(&mut self) {
        self.held = false;
        if let Some(conn) = self.conn.take() {
            // Ending the session frees every lock it holds; a close that hangs is cut short
            // by dropping the socket, which ends the session too.
            let _ = tokio::time::timeout(CHECK_TIMEOUT, conn.close()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sink_name_gets_its_own_stable_key() {
        assert_eq!(lock_key("siem"), lock_key("siem"));
        assert_ne!(lock_key("siem"), lock_key("siem2"));
        assert_ne!(lock_key("siem"), lock_key("elastic"));
    }
}
