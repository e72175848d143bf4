//! Opening SQLite connections: the same settings for every connection, and the three kinds
//! the store uses (owner, writer, reader).

use super::authorizer;
use super::errors::classify;
use natterjack_core::ports::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// How long a statement waits for a lock held by another process (the operator's key
/// commands, another server on the same file) before it fails with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection: every statement of the store fits, so each is
/// compiled (and checked by the authorizer) once per connection.
const STATEMENT_CACHE: usize = 64;

/// A connection with the settings every connection shares: write-ahead log, `NORMAL`
/// synchronisation (a commit survives a crash of the process; the WAL is synced at each
/// checkpoint), foreign keys on.
fn open(path: &Path, create: bool) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(classify)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(classify)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(classify)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A connection without the authorizer, for migrations and the operator's key changes.
pub(crate) fn owner(path: &Path, create: bool) -> Result<Connection, StoreError> {
    open(path, create)
}

/// The server's one writing connection, under the authorizer.
pub(crate) fn writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = open(path, false)?;
    authorizer::install(&mut conn).map_err(classify)?;
    Ok(conn)
}

/// A reading connection: `query_only` (SQLite refuses every write on it), then the
/// authorizer, which also stops the pragma from being switched off again.
pub(crate) fn reader(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = open(path, false)?;
    conn.pragma_update(None, "query_only", "ON")
        .map_err(classify)?;
    authorizer::install(&mut conn).map_err(classify)?;
    Ok(conn)
}
