//! The audit trail: every request, allowed or refused, as a hash-chained, append-only record.
//!
//! - [`record`]: what one record holds, and its canonical byte form.
//! - [`chain`]: the HMAC-SHA-256 chain that makes edits, deletions, insertions, reordering
//!   and a truncated tail detectable, and its verifier.
//! - [`writer`]: the group-commit writer every transport records through, and the admin query.
//! - `linking`: how the writer links each batch after the chain head (ids and MACs), and
//!   checks that a head it resumes from was made with its key.
//! - [`alerts`]: sliding-window anomaly flags, written as `alert` records.
//! - [`shared_windows`]: the same windows counted in one store for several nodes.
//! - [`coalesce`]: rate-limit refusals beyond the first few of a window, counted into one
//!   `summary` record.
//! - [`export_gate`]: the SIEM export backlog, and the fail-closed switch it drives.
//! - [`export_lease`]: the port of the lease that lets one process of a deployment export
//!   each sink.
//! - [`space_gate`]: the disk-space guard, which pauses state changes on a nearly full disk.
//! - [`vocabulary`]: the closed sets of transports, auth methods, decisions and statuses.

pub mod alerts;
pub mod chain;
pub mod coalesce;
pub mod export_gate;
pub mod export_lease;
mod linking;
pub mod record;
pub mod shared_windows;
pub mod space_gate;
pub mod vocabulary;
pub mod writer;

pub use alerts::{AlertThresholds, AnomalyMonitor};
pub use chain::{AuditKey, ChainHead, VerifyReport, verify};
pub use coalesce::{CoalescePolicy, Coalescer, LimitedBy};
pub use export_gate::ExportGate;
pub use export_lease::{ExportLease, ExportLeases};
pub use record::{AuditRecord, Phase, StoredAuditRecord};
pub use space_gate::SpaceGate;
pub use vocabulary::{AuthMethod, Decision, Status, Transport};
pub use writer::{AuditLog, AuditQuery, ChangesPaused, Observed};

use async_trait::async_trait;

/// Where the chain head is anchored outside the database, so that deleting the newest
/// records (truncating the tail) is detectable: the database alone cannot prove it is whole.
pub trait HeadAnchor: Send + Sync + 'static {
    /// Records the newest committed record's id and MAC.
    fn store(&self, head: &ChainHead) -> std::io::Result<()>;
    /// The anchored head, if any was stored.
    fn load(&self) -> std::io::Result<Option<ChainHead>>;
}

/// Links a batch after the log's newest records (given oldest first), or refuses to: the
/// callback [`AuditStore::append_audit_exclusive`] runs while it holds the write lock.
pub type Linker<'a> =
    dyn FnMut(&[StoredAuditRecord]) -> Result<Vec<StoredAuditRecord>, String> + Send + 'a;

/// The audit storage port: append-only.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// The newest record's id and MAC.
    async fn audit_head(&self) -> Result<Option<ChainHead>, crate::ports::StoreError>;
    /// Appends records (ids already assigned, consecutive) in one transaction.
    async fn append_audit(
        &self,
        records: &[StoredAuditRecord],
    ) -> Result<(), crate::ports::StoreError>;
    /// Appends the records `link` makes from the newest two (oldest first; fewer on a short
    /// log), holding the log's write lock from reading them until the commit, so no other
    /// process can take the ids in between. Slower than [`AuditStore::append_audit`]: for a
    /// writer that has seen another process append to the same database, which would
    /// otherwise keep losing the race for the next id. An `Err` from `link` appends nothing
    /// and is returned as [`crate::ports::StoreError::Internal`].
    async fn append_audit_exclusive(
        &self,
        link: &mut Linker<'_>,
    ) -> Result<(), crate::ports::StoreError>;
    /// Records with `id > after_id`, oldest first, at most `limit` (for verification).
    async fn audit_in_order(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredAuditRecord>, crate::ports::StoreError>;
    /// A page for admins, newest first.
    async fn audit_page(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<StoredAuditRecord>, crate::ports::StoreError>;
    /// The id of the newest record the export sink `sink` has confirmed (0 for a new sink):
    /// where its exporter resumes after a restart.
    async fn export_cursor(&self, sink: &str) -> Result<i64, crate::ports::StoreError>;
    /// Moves the sink's cursor forward to `delivered_id` (never back: a smaller value is
    /// ignored, so two nodes exporting to one sink cannot rewind each other).
    async fn advance_export_cursor(
        &self,
        sink: &str,
        delivered_id: i64,
    ) -> Result<(), crate::ports::StoreError>;
}
