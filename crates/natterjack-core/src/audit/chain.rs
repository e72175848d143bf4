//! The HMAC-SHA-256 chain over audit records.
//!
//! `mac_n = HMAC(k, mac_{n-1} ‖ canonical(record_n, n))`, starting from `mac_0 = HMAC(k,
//! "natterjack audit chain v1")`. The key lives outside the database, so someone who can
//! write the database cannot compute a valid MAC for an edited, inserted or reordered
//! record; deleting records breaks the chain at the next one, and deleting the newest
//! records is caught by comparing with the head anchored outside the database.

use super::{AuditStore, StoredAuditRecord};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The chain key. No `Debug`, zeroised on drop.
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl AuditKey {
    /// Wraps 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.as_ref()) else {
            // HMAC takes keys of any length; this cannot happen.
            return [0u8; 32];
        };
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The MAC before the first record.
    pub fn genesis(&self) -> [u8; 32] {
        self.mac(&[b"natterjack audit chain v1"])
    }

    /// The MAC of record `id` following `previous`.
    pub fn link(&self, previous: &[u8; 32], record: &super::AuditRecord, id: i64) -> [u8; 32] {
        self.mac(&[previous, &record.canonical(id)])
    }
}

/// The newest record of a chain: its id and MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// Record id.
    pub id: i64,
    /// Its MAC.
    pub mac: [u8; 32],
}

/// The result of `natterjack audit verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyReport {
    /// Every record chains and the tail matches the anchored head.
    Intact {
        /// Records checked.
        records: u64,
    },
    /// The first record that does not verify, and why.
    Broken {
        /// Its id (for a truncated tail: the first missing id).
        first_bad_id: i64,
        /// What is wrong.
        reason: String,
    },
}

/// Compares two MACs in constant time.
pub(crate) fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Walks the whole chain in id order and compares its end with the anchored head.
///
/// The anchor may lag behind the database by the batches written after it was last
/// updated (a crash between commit and anchor write): records past the anchor are accepted
/// when they chain correctly from it. An anchor *beyond* the database means records were
/// removed from the tail.
pub async fn verify(
    key: &AuditKey,
    store: &dyn AuditStore,
    anchor: Option<ChainHead>,
) -> Result<VerifyReport, crate::ports::StoreError> {
    let mut previous = key.genesis();
    let mut expected_id = 1i64;
    // An anchor at 0 was written before the first record: nothing to find.
    let mut anchor_seen = anchor.is_some_and(|a| a.id == 0);
    // Start below any id, so rows forged with an id of 0 or less are read (and refused) too.
    let mut after = i64::MIN;
    loop {
        let page: Vec<StoredAuditRecord> = store.audit_in_order(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for stored in page {
            if stored.id != expected_id {
                return Ok(VerifyReport::Broken {
                    first_bad_id: stored.id,
                    reason: format!("record {expected_id} is missing before it"),
                });
            }
            let mac = key.link(&previous, &stored.record, stored.id);
            if !same(&mac, &stored.mac) {
                return Ok(VerifyReport::Broken {
                    first_bad_id: stored.id,
                    reason: "its MAC does not match its content and position in the chain".into(),
                });
            }
            if let Some(head) = anchor.filter(|h| h.id == stored.id) {
                if !same(&head.mac, &stored.mac) {
                    return Ok(VerifyReport::Broken {
                        first_bad_id: stored.id,
                        reason: "it differs from the anchored chain head".into(),
                    });
                }
                anchor_seen = true;
            }
            previous = mac;
            after = stored.id;
            expected_id += 1;
        }
    }
    if anchor.is_none() && expected_id > 1 {
        return Ok(VerifyReport::Broken {
            first_bad_id: expected_id,
            reason: "the chain head anchor is missing, so a removed tail could not be detected"
                .into(),
        });
    }
    if !anchor_seen && anchor.is_some() {
        let head_id = anchor.map_or(0, |h| h.id);
        return Ok(VerifyReport::Broken {
            first_bad_id: expected_id,
            reason: format!(
                "the log ends before the anchored head (record {head_id}): its tail was removed"
            ),
        });
    }
    Ok(VerifyReport::Intact {
        records: u64::try_from(expected_id - 1).unwrap_or(0),
    })
}
