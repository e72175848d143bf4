//! The Admin service's Unix socket: created owner-only, refusing to take over a socket
//! that another running server still answers on.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::net::UnixListener;

/// Binds the socket at `path` with mode 0600. A file left there by a server that is gone is
/// replaced; a socket that still accepts connections stops start-up, naming the path.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "the admin socket {} is in use by another running server (internal.admin_socket)",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| {
            format!(
                "cannot remove the stale admin socket {}: {e}",
                path.display()
            )
        })?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on the admin socket {}: {e}", path.display()))?;
    // The data directory is 0700 already, so nobody else could reach the socket before this.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict the admin socket {}: {e}", path.display()))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_is_owner_only_and_a_live_one_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let live = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            bind(&path)
                .unwrap_err()
                .contains("in use by another running server")
        );
        drop(live);
        // A stale socket file, whose server is gone, is replaced.
        assert!(bind(&path).is_ok());
    }
}
