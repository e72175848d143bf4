//! Linking a writer's batches into the tamper-evident chain: each queued record gets the
//! next id and its MAC after the current head, and a head read back from the database is
//! first shown to be linked with this writer's key.
//!
//! [`super::chain`] defines the MAC formula and verifies a stored chain; this module only
//! applies that formula to the batches the writer ([`super::writer`]) commits. It is kept
//! apart from the queueing and group commit so the arithmetic that must agree exactly with
//! the verifier can be read, and changed, on its own.

use super::chain::{AuditKey, ChainHead, same};
use super::{AuditRecord, AuditStore, StoredAuditRecord};

/// Refuses a key that did not make the newest record: a node started with the wrong key
/// (several nodes on one database must share `audit.key_file`) would break the chain with
/// every record it appended.
pub(super) async fn check_key(
    store: &dyn AuditStore,
    key: &AuditKey,
    head: ChainHead,
) -> Result<(), String> {
    let newest = store
        .audit_in_order((head.id - 2).max(0), 2)
        .await
        .map_err(|e| format!("cannot read the audit log: {e}"))?;
    verified_head(key, &newest).map(|_| ())
}

/// The head to continue from, given the log's newest two records (oldest first), once the
/// newest is shown to be linked with `key`.
pub(super) fn verified_head(
    key: &AuditKey,
    newest: &[StoredAuditRecord],
) -> Result<ChainHead, String> {
    let Some(last) = newest.last() else {
        return Ok(ChainHead {
            id: 0,
            mac: key.genesis(),
        });
    };
    let head = ChainHead {
        id: last.id,
        mac: last.mac,
    };
    let previous = match newest {
        [last] if last.id == 1 => key.genesis(),
        [before, last] if before.id + 1 == last.id => before.mac,
        // A gap: `natterjack audit verify` names it; the key cannot be judged here.
        _ => return Ok(head),
    };
    if same(&key.link(&previous, &last.record, last.id), &last.mac) {
        Ok(head)
    } else {
        Err(
            "the audit key does not match the newest audit record: every server writing to \
             this database must use the same key (audit.key_file)"
                .to_owned(),
        )
    }
}

/// A batch linked after a head, before it is stored.
pub(super) struct Linked {
    /// The records to append.
    pub(super) batch: Vec<StoredAuditRecord>,
    /// Each job's id: its record's, or for a flush marker the newest before it.
    pub(super) ids: Vec<i64>,
    /// The head once the batch is committed (the old one for a batch of flush markers).
    pub(super) head: ChainHead,
}

/// The batch's records linked after `head`, in queue order; `None` stands for a flush
/// marker, which takes no id of its own.
pub(super) fn link<'a>(
    key: &AuditKey,
    head: ChainHead,
    jobs: impl ExactSizeIterator<Item = Option<&'a AuditRecord>>,
) -> Linked {
    let mut previous = head.mac;
    let mut next_id = head.id + 1;
    let mut ids = Vec::with_capacity(jobs.len());
    let mut batch: Vec<StoredAuditRecord> = Vec::with_capacity(jobs.len());
    for record in jobs {
        match record {
            Some(record) => {
                let mac = key.link(&previous, record, next_id);
                previous = mac;
                batch.push(StoredAuditRecord {
                    id: next_id,
                    record: record.clone(),
                    mac,
                });
                ids.push(next_id);
                next_id += 1;
            }
            None => ids.push(next_id - 1),
        }
    }
    Linked {
        batch,
        ids,
        head: ChainHead {
            id: next_id - 1,
            mac: previous,
        },
    }
}
