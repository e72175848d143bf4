//! The audit chain's secrets on disk, outside the database: the HMAC key and the anchored
//! chain head, both 0600 in the data directory unless configured elsewhere.
//!
//! Someone who can rewrite the database but not these files cannot forge a valid record or
//! hide a removed tail. An operator who wants the anchor out of reach of the database host
//! entirely points `audit.head_file` at storage the server can write but an intruder on the
//! database cannot, and ships a copy of every record to a SIEM (`[[audit.sinks]]`, see
//! [`crate::export`]).

use natterjack_core::audit::{AuditKey, ChainHead, HeadAnchor};
use rand::RngCore;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Writes `contents` to `path` through a 0600 temporary file and an atomic rename, so a
/// process crash leaves either the old or the new contents, never a torn file. With
/// `durable`, the data is flushed to disk before the rename (the key, written once). The
/// head anchor, rewritten after every batch, skips the flush: after a process crash it can
/// only lag behind the database, which verification accepts; after a power loss either file
/// may lose its newest writes, which can make an untouched log look truncated (see
/// docs/THREAT_MODEL.md).
fn write_private_atomically(path: &Path, contents: &str, durable: bool) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        if durable {
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, path)
}

/// Loads the chain key, creating it when there is none and the log is still empty. A
/// missing key for a non-empty log is an error: a new key would make every existing
/// record look forged.
pub fn load_or_create_key(path: &Path, log_is_empty: bool) -> Result<AuditKey, String> {
    if path.exists() {
        crate::dev_ca::check_private(path)?;
        let text =
            fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let bytes =
            unhex32(&text).ok_or_else(|| format!("{} must hold 64 hex digits", path.display()))?;
        return Ok(AuditKey::new(bytes));
    }
    if !log_is_empty {
        return Err(format!(
            "the audit key {} is missing but the audit log has records; restore the key to keep the chain verifiable",
            path.display()
        ));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    write_private_atomically(path, &format!("{}\n", hex(&bytes)), true)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(AuditKey::new(bytes))
}

/// The chain head anchored in a 0600 file as `ID HEX-MAC`.
pub struct FileAnchor {
    path: PathBuf,
}

impl FileAnchor {
    /// An anchor stored at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl HeadAnchor for FileAnchor {
    fn store(&self, head: &ChainHead) -> std::io::Result<()> {
        write_private_atomically(
            &self.path,
            &format!("{} {}\n", head.id, hex(&head.mac)),
            false,
        )
    }

    fn load(&self) -> std::io::Result<Option<ChainHead>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let invalid =
            || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed audit head file");
        let (id, mac) = text.trim().split_once(' ').ok_or_else(invalid)?;
        let id = id.parse::<i64>().map_err(|_| invalid())?;
        let mac = unhex32(mac).ok_or_else(invalid)?;
        Ok(Some(ChainHead { id, mac }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_bad_lengths() {
        let bytes = [0xabu8; 32];
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex32("abc"), None);
        assert_eq!(unhex32(&"zz".repeat(32)), None);
    }
}
