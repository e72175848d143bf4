//! The server's SQLite connections, lent out one store call at a time.
//!
//! sqlx's generic pool pings a connection when it is taken (by default) and always when it
//! is given back. For a network database that finds dead sockets; for SQLite each ping is
//! one more round trip to the connection's worker thread, and those thread hand-offs were
//! the largest cost of a request on two cores. A SQLite connection cannot drop off a
//! network, and its worker runs commands strictly in order, so a query or transaction
//! abandoned half-way is finished or rolled back before the next borrower's first command
//! runs. This pool therefore lends connections without pings; a connection whose worker
//! has stopped is noticed by the error of the call that found it and is not lent again.

use super::authorizer;
use super::errors::classify;
use natterjack_core::ports::StoreError;
use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::Transaction;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteConnection};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{MappedMutexGuard, MutexGuard, Semaphore, SemaphorePermit};

/// At most `size` connections, each opened on first need and under the authorizer.
pub(crate) struct Connections {
    options: SqliteConnectOptions,
    slots: Vec<Slot>,
    /// Indexes of the slots no lease holds; a permit guarantees one is here.
    free: Mutex<Vec<usize>>,
    permits: Semaphore,
    acquire_timeout: Duration,
}

/// One connection's place: empty until first used, and again after a broken connection
/// was dropped or the pool was closed.
struct Slot {
    conn: tokio::sync::Mutex<Option<SqliteConnection>>,
    broken: AtomicBool,
}

impl Connections {
    /// A pool of up to `size` (at least one) connections opened with `options`; a borrower
    /// waits at most `acquire_timeout` for one, then gets `Unavailable`.
    pub(crate) fn new(options: SqliteConnectOptions, size: u32, acquire_timeout: Duration) -> Self {
        let size = usize::try_from(size.max(1)).unwrap_or(1);
        Self {
            options,
            slots: (0..size)
                .map(|_| Slot {
                    conn: tokio::sync::Mutex::new(None),
                    broken: AtomicBool::new(false),
                })
                .collect(),
            free: Mutex::new((0..size).collect()),
            permits: Semaphore::new(size),
            acquire_timeout,
        }
    }

    /// Lends a connection, opening it first if its slot is empty or held a broken one.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, StoreError> {
        let permit = match tokio::time::timeout(self.acquire_timeout, self.permits.acquire()).await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(closed()),
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "timed out waiting for a database connection".into(),
                ));
            }
        };
        let index = self.free().pop().ok_or_else(|| {
            StoreError::Internal("a connection permit without a free slot".into())
        })?;
        // From here the slot index goes back to `free` when `Lease` or `Unlent` drops.
        let unlent = Unlent { pool: self, index };
        let slot = &self.slots[index];
        let mut conn = slot.conn.lock().await;
        if self.permits.is_closed() {
            return Err(closed());
        }
        if slot.broken.swap(false, Ordering::AcqRel) {
            *conn = None;
        }
        if conn.is_none() {
            *conn = Some(self.open().await?);
        }
        let conn = MutexGuard::try_map(conn, Option::as_mut)
            .map_err(|_| StoreError::Internal("a connection slot emptied while locked".into()))?;
        Ok(Lease {
            conn,
            unlent,
            _permit: permit,
        })
    }

    async fn open(&self) -> Result<SqliteConnection, StoreError> {
        let mut conn = self.options.connect().await.map_err(classify)?;
        authorizer::install(&mut conn).await.map_err(classify)?;
        Ok(conn)
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops lending, waits for the leases that are out, and closes every connection (the
    /// last close checkpoints the WAL).
    pub(crate) async fn close(&self) {
        self.permits.close();
        for slot in &self.slots {
            let conn = slot.conn.lock().await.take();
            if let Some(conn) = conn {
                // A connection that fails to close cleanly has been dropped all the same.
                let _ = conn.close().await;
            }
        }
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

/// Gives a slot index back to the free list, whether or not the lease was completed.
struct Unlent<'a> {
    pool: &'a Connections,
    index: usize,
}

impl Unlent<'_> {
    /// Classifies an error of a call on this slot's connection. If the error says the
    /// connection's worker has stopped (every later call would fail the same way), the slot
    /// is marked, and its next lease opens a new connection.
    fn classify(&self, e: sqlx::Error) -> StoreError {
        if matches!(e, sqlx::Error::WorkerCrashed) {
            self.pool.slots[self.index]
                .broken
                .store(true, Ordering::Release);
        }
        classify(e)
    }
}

impl Drop for Unlent<'_> {
    fn drop(&mut self) {
        self.pool.free().push(self.index);
    }
}

/// One borrowed connection. Dropping it unlocks the slot, then frees its index, then
/// releases the permit (fields drop in order), so the next borrower finds the slot free.
pub struct Lease<'a> {
    conn: MappedMutexGuard<'a, SqliteConnection>,
    unlent: Unlent<'a>,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    /// Classifies an error of a call made on this connection, and retires the connection if
    /// the error says its worker can no longer run anything.
    pub(crate) fn fail(&self, e: sqlx::Error) -> StoreError {
        self.unlent.classify(e)
    }

    /// Begins a transaction on this connection (`BEGIN`, or `statement` such as
    /// `BEGIN IMMEDIATE`); dropping the transaction uncommitted rolls it back.
    pub(crate) async fn begin(
        &mut self,
        statement: Option<&'static str>,
    ) -> Result<Transaction<'_, Sqlite>, StoreError> {
        let begun = match statement {
            None => self.conn.begin().await,
            Some(statement) => self.conn.begin_with(statement).await,
        };
        begun.map_err(|e| self.unlent.classify(e))
    }
}

impl Deref for Lease<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::{SqliteStore, options};
    use super::*;

    /// A migrated database in a temporary directory and a pool of `size` connections to it.
    async fn pool(size: u32, acquire_timeout: Duration) -> (tempfile::TempDir, Connections) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("natterjack.db");
        let kek = crate::sealing::KeyEncryptionKey::generate().unwrap();
        SqliteStore::migrate(&path, &crate::sealing::Keyring::new(kek))
            .await
            .unwrap();
        (dir, Connections::new(options(&path), size, acquire_timeout))
    }

    const INSERT_USER: &str = "INSERT INTO users (username, password_hash, is_admin, created_at) \
                               VALUES (?1, 'x', 0, 0)";

    /// `last_insert_rowid()` is per connection: it tells a reused connection from a new one.
    async fn last_insert_rowid(lease: &mut Lease<'_>) -> i64 {
        sqlx::query_scalar("SELECT last_insert_rowid()")
            .fetch_one(&mut **lease)
            .await
            .unwrap()
    }

    async fn user_count(lease: &mut Lease<'_>) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&mut **lease)
            .await
            .unwrap()
    }

    /// Fails unless the connection is outside any transaction: `BEGIN IMMEDIATE` would
    /// refuse to nest, and the insert must commit.
    async fn assert_a_new_transaction_commits(lease: &mut Lease<'_>) {
        let mut tx = lease.begin(Some("BEGIN IMMEDIATE")).await.unwrap();
        sqlx::query(INSERT_USER)
            .bind("alice")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_returned_connection_is_lent_again_and_a_retired_one_is_replaced() {
        let (_dir, conns) = pool(1, Duration::from_secs(5)).await;
        let mut lease = conns.lease().await.unwrap();
        sqlx::query(INSERT_USER)
            .bind("alice")
            .execute(&mut *lease)
            .await
            .unwrap();
        drop(lease);

        let mut lease = conns.lease().await.unwrap();
        assert_eq!(
            last_insert_rowid(&mut lease).await,
            1,
            "the same connection"
        );
        let _ = lease.fail(sqlx::Error::WorkerCrashed);
        drop(lease);

        let mut lease = conns.lease().await.unwrap();
        assert_eq!(last_insert_rowid(&mut lease).await, 0, "a new connection");
    }

    #[tokio::test]
    async fn a_transaction_abandoned_with_its_lease_is_rolled_back_before_the_next_borrower_runs() {
        let (_dir, conns) = pool(1, Duration::from_secs(5)).await;
        let mut lease = conns.lease().await.unwrap();
        let mut tx = lease.begin(Some("BEGIN IMMEDIATE")).await.unwrap();
        sqlx::query(INSERT_USER)
            .bind("mallory")
            .execute(&mut *tx)
            .await
            .unwrap();
        drop(tx);
        drop(lease);

        let mut lease = conns.lease().await.unwrap();
        let users = user_count(&mut lease).await;
        assert_eq!(users, 0);
        assert_a_new_transaction_commits(&mut lease).await;
    }

    #[tokio::test]
    async fn calls_cancelled_at_any_point_give_their_connection_back_clean() {
        let (_dir, conns) = pool(1, Duration::from_secs(5)).await;
        let mut completed = 0;
        for round in 0..40u32 {
            let call = async {
                let mut lease = conns.lease().await?;
                let mut tx = lease.begin(None).await?;
                sqlx::query(INSERT_USER)
                    .bind(format!("user{round}"))
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                tx.commit().await.map_err(classify)
            };
            // Cut off after a growing delay, so the cancellations land at different awaits:
            // opening, BEGIN, the insert, COMMIT, or not at all.
            let budget = Duration::from_micros(u64::from(round) * 50);
            if let Ok(done) = tokio::time::timeout(budget, call).await {
                done.unwrap();
                completed += 1;
            }
        }
        let mut lease = conns.lease().await.unwrap();
        let users = user_count(&mut lease).await;
        // Every call that finished left its row; a cancelled one may have too, if its
        // COMMIT ran before the cancellation reached it. No call left more than one.
        assert!(
            (completed..=40).contains(&users),
            "{users} rows, {completed} completed"
        );
        assert_a_new_transaction_commits(&mut lease).await;
    }

    #[tokio::test]
    async fn a_borrower_beyond_the_pool_size_waits_then_gets_unavailable() {
        let (_dir, conns) = pool(1, Duration::from_millis(50)).await;
        let held = conns.lease().await.unwrap();
        assert!(matches!(
            conns.lease().await,
            Err(StoreError::Unavailable(_))
        ));
        drop(held);
        assert!(conns.lease().await.is_ok());
    }

    #[tokio::test]
    async fn a_closed_pool_lends_nothing() {
        let (_dir, conns) = pool(2, Duration::from_secs(5)).await;
        drop(conns.lease().await.unwrap());
        conns.close().await;
        assert!(matches!(
            conns.lease().await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
