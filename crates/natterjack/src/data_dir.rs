//! The data directory, which holds the SQLite database, the audit key and head, and the
//! development CA's private keys. Storage, assembly and `certs` all create it before writing
//! there, so it is made (and its permissions checked) in one place.

use crate::start_error::StartError;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Creates the data directory (0700) if needed; an existing one readable by others is
/// tightened, since it holds the database and private keys.
pub fn ensure_data_dir(dir: &Path) -> Result<(), StartError> {
    fs::create_dir_all(dir)
        .map_err(|e| StartError::Other(format!("cannot create {}: {e}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| StartError::Other(format!("cannot restrict {}: {e}", dir.display())))
}
