//! The export lease on SQLite: an exclusive `flock` on a lock file beside the database, one
//! file per sink (`DATABASE.export-SINK.lock`).
//!
//! Several `serve` processes on one host may share a SQLite file, so "SQLite is one node"
//! would not be true enough to grant the lease unconditionally: two servers would both
//! export. A `flock` is what a file database can offer instead: it is held by the open file,
//! and the kernel drops it the moment the holder's process ends, however it ends, so
//! take-over after `kill -9` takes one retry. It only works between processes of one host,
//! which is the only way to share a SQLite file safely anyway.
//!
//! Deleting or replacing the lock file would let a second process lock a new file while the
//! holder still holds the old one, so the holder checks, each time it confirms its lease,
//! that the path still names the file it locked; when it does not, the lease counts as lost.

use async_trait::async_trait;
use natterjack_core::audit::{ExportLease, ExportLeases};
use natterjack_core::ports::StoreError;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The leases of the sinks exporting one SQLite database.
pub struct SqliteExportLeases {
    database: PathBuf,
}

impl SqliteExportLeases {
    /// Leases whose lock files sit beside `database` (the directory the server already
    /// writes, with the database's journal files).
    pub fn beside(database: &Path) -> Self {
        Self {
            database: database.to_path_buf(),
        }
    }
}

impl ExportLeases for SqliteExportLeases {
    fn lease(&self, sink: &str) -> Box<dyn ExportLease> {
        // Sink names are letters, digits, '-' and '_' (checked with the configuration);
        // anything else is replaced anyway so that a name can never leave the directory.
        let safe: String = sink
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut name = self.database.as_os_str().to_owned();
        name.push(format!(".export-{safe}.lock"));
        Box::new(FileLease {
            path: PathBuf::from(name),
            file: None,
        })
    }
}

/// One sink's lease: the lock file, open and locked while held.
struct FileLease {
    path: PathBuf,
    file: Option<File>,
}

fn unavailable(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("export lease: {what}: {e}"))
}

impl FileLease {
    /// Whether the path still names the open file (same device and inode).
    fn still_named(path: &Path, file: &File) -> Result<bool, StoreError> {
        let open = file
            .metadata()
            .map_err(|e| unavailable("cannot read the lock file", e))?;
        Ok(match std::fs::metadata(path) {
            Ok(named) => named.dev() == open.dev() && named.ino() == open.ino(),
            Err(_) => false,
        })
    }

    fn try_take(&self) -> Result<Option<File>, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| unavailable("cannot open the lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(unavailable("cannot lock the file", e)),
        }
        // The file may have been replaced between the open and the lock: then this lock
        // guards nothing another process would look at.
        if Self::still_named(&self.path, &file)? {
            Ok(Some(file))
        } else {
            Ok(None)
        }
    }
}

#[async_trait]
impl ExportLease for FileLease {
    async fn hold(&mut self) -> Result<bool, StoreError> {
        if let Some(file) = &self.file {
            if Self::still_named(&self.path, file)? {
                return Ok(true);
            }
            self.file = None;
            return Err(StoreError::Unavailable(format!(
                "export lease: {} was removed or replaced",
                self.path.display()
            )));
        }
        self.file = self.try_take()?;
        Ok(self.file.is_some())
    }

    async fn release(&mut self) {
        // Closing the file drops its lock.
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn one_lease_of_a_sink_at_a_time_and_the_next_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let leases = SqliteExportLeases::beside(&dir.path().join("natterjack.db"));
        let mut first = leases.lease("siem");
        let mut second = leases.lease("siem");
        let mut other = leases.lease("elastic");
        assert!(first.hold().await.unwrap());
        assert!(first.hold().await.unwrap(), "confirming keeps it");
        assert!(!second.hold().await.unwrap());
        assert!(other.hold().await.unwrap(), "each sink has its own lease");
        first.release().await;
        assert!(second.hold().await.unwrap());
    }

    #[tokio::test]
    async fn a_removed_lock_file_loses_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let leases = SqliteExportLeases::beside(&dir.path().join("natterjack.db"));
        let mut lease = leases.lease("siem");
        assert!(lease.hold().await.unwrap());
        std::fs::remove_file(dir.path().join("natterjack.db.export-siem.lock")).unwrap();
        assert!(lease.hold().await.is_err());
        assert!(lease.hold().await.unwrap(), "the next call starts over");
    }
}
