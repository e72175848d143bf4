//! Row ids chosen before the insert. A sealed value's associated data names its row, so a
//! store needs the id before it can seal what goes into the row; asking the database for
//! it first would cost an extra statement and a transaction on every write. Instead each
//! store reserves ids in blocks from the `row_ids` table (one `UPDATE … RETURNING` per
//! block, a trigger refusing to move it back) and inserts with an explicit id.
//!
//! Ids stay unique across processes and are never reused, deleted rows included, so no
//! old ciphertext can ever match a new row. They are increasing per process but, as with
//! PostgreSQL sequences, not in commit order across concurrent writers, and a restart
//! leaves a gap of the unused rest of a block.

use std::ops::Range;
use std::sync::{Mutex, PoisonError};

/// Ids reserved per `row_ids` update.
pub(crate) const BLOCK: i64 = 32;

/// The tables whose ids are reserved.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowTable {
    /// `spaces`.
    Spaces,
    /// `messages`.
    Messages,
}

impl RowTable {
    /// The key of its `row_ids` row.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RowTable::Spaces => "spaces",
            RowTable::Messages => "messages",
        }
    }
}

/// The ids a store holds reserved and unused, per table.
#[derive(Debug, Default)]
pub(crate) struct IdBlocks {
    spaces: Mutex<Range<i64>>,
    messages: Mutex<Range<i64>>,
}

impl IdBlocks {
    fn slot(&self, table: RowTable) -> &Mutex<Range<i64>> {
        match table {
            RowTable::Spaces => &self.spaces,
            RowTable::Messages => &self.messages,
        }
    }

    /// The next reserved id, if any is left.
    pub(crate) fn take(&self, table: RowTable) -> Option<i64> {
        self.slot(table)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next()
    }

    /// Takes the first id of a newly reserved block ending before `end` and keeps the
    /// rest (replacing whatever was left, which only leaves a gap).
    pub(crate) fn refill(&self, table: RowTable, end: i64) -> i64 {
        let first = end - BLOCK;
        *self
            .slot(table)
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = first + 1..end;
        first
    }

    /// Drops every reserved id. For a block whose reservation may have been rolled back
    /// (its transaction failed): another process could reserve the same ids again.
    pub(crate) fn forget(&self) {
        for table in [RowTable::Spaces, RowTable::Messages] {
            *self
                .slot(table)
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = 0..0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_hands_out_each_id_once_then_asks_for_another() {
        let ids = IdBlocks::default();
        assert_eq!(ids.take(RowTable::Messages), None);
        assert_eq!(ids.refill(RowTable::Messages, 1 + BLOCK), 1);
        let rest: Vec<i64> = std::iter::from_fn(|| ids.take(RowTable::Messages)).collect();
        assert_eq!(rest, (2..1 + BLOCK).collect::<Vec<_>>());
        assert_eq!(
            ids.take(RowTable::Spaces),
            None,
            "tables have their own blocks"
        );
    }
}
