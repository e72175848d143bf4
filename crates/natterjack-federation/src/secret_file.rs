//! Reading a secret (a bind password, a client secret) from its own file at start-up, so
//! that it is neither in the configuration file nor in the process's arguments or
//! environment.

use secrecy::SecretString;
use std::path::Path;

/// The secret in `path`, without one trailing newline (`\n` or `\r\n`). Refuses an
/// unreadable, empty, multi-line or NUL-holding file; the error never quotes the file's
/// content. Warns (naming `what`) when every user may read the file.
pub(crate) fn read_secret_file(path: &Path, what: &str) -> Result<SecretString, String> {
    let mut secret = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if secret.ends_with('\n') {
        secret.pop();
        if secret.ends_with('\r') {
            secret.pop();
        }
    }
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    if secret.contains(['\0', '\n']) {
        return Err(format!(
            "{} must hold the secret on one line, without NUL",
            path.display()
        ));
    }
    warn_if_readable_by_others(path, what);
    Ok(SecretString::from(secret))
}

/// Logs a warning when other users may read the secret's file.
#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o007 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the {what} file is readable by every user; make it 0600 or 0640"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _what: &str) {}
