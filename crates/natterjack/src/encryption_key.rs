//! The key-encryption key, from wherever the configuration says: the environment, a 0600
//! file, or an operator's command. The development default is a file in the data
//! directory, generated for a database that holds no data key yet, like the development CA.

use crate::config::Config;
use crate::start_error::StartError;
use natterjack_storage::sealing::{DataKeyRow, KeyEncryptionKey};
use secrecy::ExposeSecret;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long `encryption.key_command` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

fn other(message: String) -> StartError {
    StartError::Other(message)
}

/// The fingerprints of the key-encryption keys that wrapped `stored`, for the operator.
pub fn kek_ids(stored: &[DataKeyRow]) -> String {
    let mut keks: Vec<&str> = stored.iter().map(|k| k.kek_id.as_str()).collect();
    keks.dedup();
    keks.join(", ")
}

/// What the database's data keys say about the key that wrapped them, for errors.
fn wrapped_by(stored: &[DataKeyRow]) -> String {
    let ids: Vec<String> = stored.iter().map(|k| k.id.to_string()).collect();
    format!(
        "data keys {} wrapped by key-encryption key {}",
        ids.join(", "),
        kek_ids(stored)
    )
}

/// Loads the key-encryption key. `stored` are the database's data keys (empty for a new
/// database): a missing default key file is generated only when there are none.
pub async fn load(cfg: &Config, stored: &[DataKeyRow]) -> Result<KeyEncryptionKey, StartError> {
    let enc = &cfg.encryption;
    if let Some(value) = &enc.key {
        return KeyEncryptionKey::parse_hex(value.expose_secret())
            .map_err(|e| other(format!("encryption.key: {e}")));
    }
    if let Some(command) = &enc.key_command {
        return from_command(command).await;
    }
    let path = cfg.encryption_key_path();
    if path.exists() || enc.key_file.is_some() {
        return from_file(&path, stored);
    }
    if !stored.is_empty() {
        return Err(other(format!(
            "the key-encryption key {} is missing but the database holds {}: restore the key file (or configure encryption.key, key_file or key_command)",
            path.display(),
            wrapped_by(stored)
        )));
    }
    let kek = KeyEncryptionKey::generate().map_err(|e| other(e.to_string()))?;
    write_new(&path, &kek)?;
    tracing::warn!(
        path = %path.display(),
        kek_id = kek.id(),
        "generated a development key-encryption key: it opens every message and space name, so back it up apart from the database (see docs/OPERATIONS.md)"
    );
    Ok(kek)
}

/// Reads a key file, refusing one that others can read and naming the data keys it was
/// expected to open when it is missing.
pub fn from_file(path: &Path, stored: &[DataKeyRow]) -> Result<KeyEncryptionKey, StartError> {
    if !path.exists() {
        let held = if stored.is_empty() {
            String::new()
        } else {
            format!(" (the database holds {})", wrapped_by(stored))
        };
        return Err(other(format!(
            "no key-encryption key at {}{held}",
            path.display()
        )));
    }
    crate::dev_ca::check_private(path).map_err(other)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| other(format!("cannot read {}: {e}", path.display())))?,
    );
    KeyEncryptionKey::parse_hex(&text).map_err(|e| other(format!("{}: {e}", path.display())))
}

/// Writes a new key file, 0600, refusing to replace an existing one.
pub fn write_new(path: &Path, kek: &KeyEncryptionKey) -> Result<(), StartError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| other(format!("cannot create {}: {e}", path.display())))?;
    let mut text = kek.to_hex();
    text.push('\n');
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| other(format!("cannot write {}: {e}", path.display())))
}

async fn from_command(command: &[String]) -> Result<KeyEncryptionKey, StartError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| other("encryption.key_command is empty".into()))?;
    let mut child = tokio::process::Command::new(program);
    child
        .args(args)
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = child.output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .map_err(|_| {
            other(format!(
                "encryption.key_command {program} did not finish within {} s",
                COMMAND_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| other(format!("cannot run encryption.key_command {program}: {e}")))?;
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        return Err(other(format!(
            "encryption.key_command {program} failed ({}): {first}",
            output.status
        )));
    }
    let text = std::str::from_utf8(&stdout)
        .map_err(|_| other(format!("encryption.key_command {program} printed no text")))?;
    KeyEncryptionKey::parse_hex(text)
        .map_err(|e| other(format!("encryption.key_command {program}: {e}")))
}
