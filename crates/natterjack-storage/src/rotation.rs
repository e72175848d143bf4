//! Key rotation as both backends offer it: what each data key seals, and re-sealing in
//! bounded batches while the server serves traffic.
//!
//! A batch re-seals rows whose key is not the current one, walking each table by id
//! from a cursor, and updates a row only if its key is still the one it read: two
//! re-sealers (two nodes, or a node and `natterjack migrate`) never undo each other, and a
//! pass killed halfway simply starts again from the lowest id.

use async_trait::async_trait;
use natterjack_core::ports::StoreError;

/// The rows sealed under one data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    /// The key id.
    pub key: u32,
    /// Whether new writes use it.
    pub current: bool,
    /// Whether its wrapped bytes were erased.
    pub destroyed: bool,
    /// Messages sealed under it.
    pub messages: u64,
    /// Space names sealed under it.
    pub spaces: u64,
}

/// Where a re-sealing pass has got to: the highest id handled in each table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealCursor {
    /// Spaces up to this id are done.
    pub spaces: i64,
    /// Messages up to this id are done.
    pub messages: i64,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealBatch {
    /// Rows now under the current key.
    pub resealed: u64,
    /// Rows that did not open (damaged or under a destroyed key), skipped and logged.
    pub unreadable: u64,
    /// Where the next batch starts.
    pub cursor: ResealCursor,
    /// Whether the pass reached the end of both tables.
    pub finished: bool,
}

/// Rotation as the server's store offers it (as the app role, under the authorizer).
#[async_trait]
pub trait Resealing: Send + Sync + 'static {
    /// Reads the data keys again: a new current key (made by `natterjack keys rotate` in
    /// another process) is used by the next write.
    async fn reload_keys(&self) -> Result<(), StoreError>;
    /// Re-seals at most `limit` rows of each table after `cursor` that are not under the
    /// current key, in one transaction.
    async fn reseal_batch(
        &self,
        cursor: ResealCursor,
        limit: u32,
    ) -> Result<ResealBatch, StoreError>;
    /// Rows per data key, every key listed (destroyed ones too).
    async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError>;
}

/// Why a key may not be destroyed yet, if it may not.
pub(crate) fn refuse_destroying(found: &KeyUsage) -> Result<(), StoreError> {
    let key = found.key;
    if found.destroyed {
        return Err(StoreError::Internal(format!(
            "data key {key} is destroyed already"
        )));
    }
    if found.current {
        return Err(StoreError::Internal(format!(
            "data key {key} is the current key: rotate first (`natterjack keys rotate`)"
        )));
    }
    if found.messages + found.spaces > 0 {
        return Err(StoreError::Internal(format!(
            "data key {key} still seals {} messages and {} space names: wait until re-sealing has finished (`natterjack keys status`)",
            found.messages, found.spaces
        )));
    }
    Ok(())
}

/// What a whole pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealPass {
    /// Rows moved under the current key.
    pub resealed: u64,
    /// Rows that did not open and stay under their old key.
    pub unreadable: u64,
}

/// Re-seals every row not under the current key, batch after batch from the lowest id,
/// pausing `pause` between batches so that requests keep the database; `progress` sees
/// each batch.
pub async fn reseal_pass(
    store: &dyn Resealing,
    limit: u32,
    pause: std::time::Duration,
    mut progress: impl FnMut(&ResealBatch) + Send,
) -> Result<ResealPass, StoreError> {
    let mut cursor = ResealCursor::default();
    let mut pass = ResealPass::default();
    loop {
        let batch = store.reseal_batch(cursor, limit).await?;
        pass.resealed += batch.resealed;
        pass.unreadable += batch.unreadable;
        progress(&batch);
        if batch.finished {
            return Ok(pass);
        }
        cursor = batch.cursor;
        tokio::time::sleep(pause).await;
    }
}
