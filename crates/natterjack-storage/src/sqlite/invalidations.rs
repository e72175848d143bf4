//! The read cache's invalidation source on SQLite: the schema-8 triggers move a counter
//! (`cache_epoch`) on every change to users, memberships and linked identities, whichever
//! process makes it, and this source reads it every poll interval. When it moves, the whole
//! cache is dropped: such changes are rare, and the counter does not say what changed.
//!
//! A server's own writes drop their entries at once (the cache sees them go by); this
//! source is what bounds the staleness of changes made by another process, such as the
//! operator's CLI, to one poll interval. A read of one row in a cached page on the
//! caller's thread costs a few microseconds, so polling often is cheap.

use super::readers::Readers;
use async_trait::async_trait;
use natterjack_core::store_cache::{Invalidation, InvalidationSink, InvalidationSource};
use std::sync::Arc;
use std::time::Duration;

/// Polls the cache epoch of one SQLite database.
pub struct SqliteInvalidations {
    readers: Arc<Readers>,
    poll: Duration,
}

impl SqliteInvalidations {
    pub(super) fn new(readers: Arc<Readers>, poll: Duration) -> Self {
        Self { readers, poll }
    }

    fn epoch(&self) -> Result<i64, natterjack_core::ports::StoreError> {
        self.readers.read(|c| {
            c.prepare_cached("SELECT n FROM cache_epoch WHERE id = 1")?
                .query_row([], |r| r.get(0))
        })
    }
}

#[async_trait]
impl InvalidationSource for SqliteInvalidations {
    async fn run(&self, sink: Arc<dyn InvalidationSink>) {
        let mut seen: Option<i64> = None;
        loop {
            match (self.epoch(), seen) {
                (Ok(now), None) => {
                    // First reading, or the first after a failure: start from an empty cache.
                    sink.connected();
                    seen = Some(now);
                }
                (Ok(now), Some(before)) if now != before => {
                    sink.invalidate(Invalidation::Everything);
                    seen = Some(now);
                }
                (Ok(_), Some(_)) => {}
                (Err(e), _) => {
                    if seen.is_some() {
                        tracing::warn!(error = %e, "cannot read the cache epoch: reads bypass the cache until it can");
                        sink.disconnected();
                    }
                    seen = None;
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

impl super::SqliteStore {
    /// The invalidation source of this store's database, reading the epoch every `poll`.
    pub fn invalidations(&self, poll: Duration) -> SqliteInvalidations {
        SqliteInvalidations::new(self.readers.clone(), poll)
    }
}
