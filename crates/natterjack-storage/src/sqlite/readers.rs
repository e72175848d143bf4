//! The server's reading connections, used on the caller's own thread.
//!
//! A primary-key read in SQLite takes a few microseconds. Handing it to another thread and
//! back (what an async driver does for every statement) costs more than that on two
//! cores, so reads run right where they are asked for, on a connection taken from a small
//! set. In WAL mode a reader never waits for the writer, so a read holds its thread only
//! for the read itself. Scans that may take long (the key usage count of a rotation, the
//! export's pages) go through [`Readers::read_blocking`] instead, on the blocking pool.

use super::connect;
use super::errors::{classify, closed};
use natterjack_core::ports::StoreError;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

/// Up to `size` read-only connections, each opened on first need.
pub(crate) struct Readers {
    path: PathBuf,
    slots: Vec<Mutex<Option<Connection>>>,
    /// Where the next caller starts looking for a free slot, so callers spread out.
    next: AtomicUsize,
    closed: AtomicBool,
}

impl Readers {
    /// A set of up to `size` (at least one) reading connections to `path`.
    pub(crate) fn new(path: PathBuf, size: u32) -> Self {
        let size = usize::try_from(size.max(1)).unwrap_or(1);
        Self {
            path,
            slots: (0..size).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `f` on a free reading connection, on this thread. When every connection is in
    /// use (more threads reading at once than connections), waits for one: reads are short.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut slot = self.slot();
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        if slot.is_none() {
            *slot = Some(connect::reader(&self.path)?);
        }
        let conn = slot
            .as_ref()
            .ok_or_else(|| StoreError::Internal("a reading connection went missing".into()))?;
        let result = f(conn).map_err(classify);
        if matches!(result, Err(StoreError::Unavailable(_))) {
            // Busy or an I/O error: open a fresh connection next time, in case this one is
            // the problem (a read-only connection holds nothing worth keeping).
            *slot = None;
        }
        result
    }

    /// [`Readers::read`] from async code: first a unit of the task's cooperative budget
    /// (Tokio's, which yields to the scheduler once it is spent), since the read itself never
    /// yields: a task reading in a loop would otherwise keep its worker thread, and the
    /// timers and tasks queued behind it, forever.
    pub(crate) async fn read_async<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        tokio::task::consume_budget().await;
        self.read(f)
    }

    /// [`Readers::read`] on the blocking pool, for a read that may take long.
    pub(crate) async fn read_blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || readers.read(f))
            .await
            .map_err(|e| StoreError::Internal(format!("a read stopped: {e}")))?
    }

    fn slot(&self) -> MutexGuard<'_, Option<Connection>> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            match self.slots[(start + i) % n].try_lock() {
                Ok(slot) => return slot,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.slots[start]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses every later read and closes the connections (waiting for reads in progress).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for slot in &self.slots {
            slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
    }
}
