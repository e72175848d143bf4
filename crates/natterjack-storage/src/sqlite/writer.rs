//! The server's one writing connection, on a thread of its own, committing writes in
//! groups.
//!
//! SQLite lets one connection write at a time. Several writing connections in one process
//! only take turns on that lock, and a connection that finds it taken sleeps in SQLite's
//! busy handler (1, 2, 5, 10… ms), which under load is most of a write's time. Here every
//! write of the process (requests, audit records, re-sealing) is a job for one thread that
//! owns the one writing connection: it takes every job waiting, runs each in a savepoint of
//! one `BEGIN IMMEDIATE` transaction, commits once, and only then answers each job. A job
//! that fails is rolled back to its savepoint alone; a failed commit fails every job of the
//! group. A caller therefore learns of its write only once it is committed, and a group
//! costs one commit however many jobs it holds (group commit).

use super::errors::{classify, closed};
use natterjack_core::ports::StoreError;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Jobs per transaction at most, so one group never holds the lock for long.
const MAX_GROUP: usize = 256;

/// A write waiting for the writer thread.
trait Job: Send {
    /// Runs the write; the result is kept until the group's commit.
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Ran>;
    /// Answers without running (the group could not begin).
    fn refuse(self: Box<Self>, e: StoreError);
}

/// A write that ran, waiting for its group's commit.
trait Ran: Send {
    fn succeeded(&self) -> bool;
    /// Answers the caller: its own result if the group committed, else the commit's error.
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Pending<T, F> {
    write: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

struct Done<T> {
    result: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Ran> {
        let Pending { write, reply } = *self;
        let result = catch_unwind(AssertUnwindSafe(|| write(conn)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a database write panicked".into())));
        Box::new(Done { result, reply })
    }

    fn refuse(self: Box<Self>, e: StoreError) {
        let _ = self.reply.send(Err(e));
    }
}

impl<T: Send> Ran for Done<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        let _ = self.reply.send(commit.and(self.result));
    }
}

/// A job already answered with an error before it could run.
struct Refused;

impl Ran for Refused {
    fn succeeded(&self) -> bool {
        false
    }

    fn answer(self: Box<Self>, _: Result<(), StoreError>) {}
}

/// The handle to the writer thread.
pub(crate) struct Writer {
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer thread on `conn`. `on_rollback` runs on that thread whenever
    /// anything a job wrote is rolled back (a failed job's savepoint, or a group that failed
    /// to commit), so that state reserved by such a job outside the database can be
    /// forgotten.
    pub(crate) fn start(
        conn: Connection,
        on_rollback: impl Fn() + Send + 'static,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(&conn, &queue, &on_rollback))
            .map_err(|e| StoreError::Internal(format!("cannot start the database writer: {e}")))?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `write` on the writing connection inside the next group's transaction, and
    /// answers once that group is committed.
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        {
            let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let sender = jobs.as_ref().ok_or_else(closed)?;
            sender
                .send(Box::new(Pending { write, reply }))
                .map_err(|_| closed())?;
        }
        answer.await.map_err(|_| closed())?
    }

    /// Stops taking writes, lets the thread finish the jobs already queued, and waits for
    /// it (its connection closes with it).
    pub(crate) async fn close(&self) {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn write_loop(conn: &Connection, queue: &mpsc::Receiver<Box<dyn Job>>, on_rollback: &dyn Fn()) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
            let e = classify(e);
            for job in group {
                job.refuse(e.clone());
            }
            continue;
        }
        let ran: Vec<Box<dyn Ran>> = group
            .into_iter()
            .map(|job| in_savepoint(conn, job, on_rollback))
            .collect();
        let commit = exec(conn, "COMMIT").map_err(classify);
        if commit.is_err() {
            let _ = exec(conn, "ROLLBACK");
            on_rollback();
        }
        for done in ran {
            done.answer(commit.clone());
        }
    }
}

/// Runs one job in a savepoint, rolled back if the job failed, so that a failed job leaves
/// nothing behind and the rest of its group still commits.
fn in_savepoint(conn: &Connection, job: Box<dyn Job>, on_rollback: &dyn Fn()) -> Box<dyn Ran> {
    if let Err(e) = exec(conn, "SAVEPOINT job") {
        job.refuse(classify(e));
        return Box::new(Refused);
    }
    let done = job.run(conn);
    if !done.succeeded() {
        let _ = exec(conn, "ROLLBACK TO job");
        on_rollback();
    }
    let _ = exec(conn, "RELEASE job");
    done
}

/// Runs a statement without parameters from the connection's statement cache (these run
/// several times per group: compiling them each time would cost more than running them).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn writer() -> (tempfile::TempDir, Writer) {
        writer_counting(Arc::default())
    }

    /// A writer whose rollbacks are counted in `rollbacks`.
    fn writer_counting(rollbacks: Arc<AtomicUsize>) -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER PRIMARY KEY) STRICT",
        )
        .unwrap();
        let on_rollback = move || {
            rollbacks.fetch_add(1, Ordering::Relaxed);
        };
        (dir, Writer::start(conn, on_rollback).unwrap())
    }

    fn insert(x: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send {
        move |c| {
            c.execute("INSERT INTO t (x) VALUES (?1)", [x])
                .map(drop)
                .map_err(classify)
        }
    }

    fn count(c: &Connection) -> Result<i64, StoreError> {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .map_err(classify)
    }

    #[tokio::test]
    async fn a_failed_or_panicking_write_is_undone_alone_and_the_rest_of_its_group_commits() {
        let rollbacks = Arc::new(AtomicUsize::new(0));
        let (_dir, writer) = writer_counting(rollbacks.clone());
        writer.write(insert(1)).await.unwrap();
        // Queued together (mostly one group; each job has its own savepoint either way).
        let (a, b, c, d) = tokio::join!(
            writer.write(insert(2)),
            writer.write(|c: &Connection| {
                insert(3)(c)?;
                insert(1)(c) // a duplicate: this job fails, and its first insert is undone
            }),
            writer.write(|_: &Connection| -> Result<(), StoreError> { panic!("a bug") }),
            writer.write(insert(4)),
        );
        assert!(a.is_ok() && d.is_ok());
        assert!(matches!(b, Err(StoreError::Conflict)), "{b:?}");
        assert!(matches!(c, Err(StoreError::Internal(_))), "{c:?}");
        assert_eq!(writer.write(count).await.unwrap(), 3, "rows 1, 2 and 4");
        assert_eq!(
            rollbacks.load(Ordering::Relaxed),
            2,
            "each failed job reported"
        );
    }

    #[tokio::test]
    async fn after_close_the_queued_writes_are_done_and_new_ones_are_refused() {
        let (_dir, writer) = writer();
        let queued = writer.write(insert(1));
        let (done, ()) = tokio::join!(queued, writer.close());
        assert!(done.is_ok());
        assert!(matches!(
            writer.write(insert(2)).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
