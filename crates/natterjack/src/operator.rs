//! The operator's capability, minted in this one place.
//!
//! Whoever runs the `natterjack` CLI against the data directory, or reaches the admin socket
//! (mode 0600, in that directory), already holds the database file, so they act with admin
//! authority and no credential. That bypass of authentication must never be reachable
//! from a network transport by accident: `clippy.toml` forbids the constructor everywhere,
//! this module alone allows itself the call, and the library crates only receive the
//! capability from here (the admin socket's service is built with it).

use natterjack_core::principal::AdminAccess;

/// The local operator's capability, for the CLI and the admin socket.
#[allow(clippy::disallowed_methods)]
pub(crate) fn capability() -> AdminAccess {
    AdminAccess::dangerous_local_operator()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") {
                rust_files(&path, into);
            } else if path.extension().is_some_and(|e| e == "rs") {
                into.push(path);
            }
        }
    }

    #[test]
    fn only_the_binary_mints_the_operator_capability_outside_tests() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        rust_files(&root.join("crates"), &mut files);
        assert!(files.len() > 50, "found only {} source files", files.len());
        let minting: Vec<_> = files
            .iter()
            .filter(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                text.contains("::dangerous_local_operator()")
            })
            .filter(|f| !f.components().any(|c| c.as_os_str() == "tests"))
            .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
            .collect();
        assert_eq!(
            minting,
            ["crates/natterjack/src/operator.rs"],
            "the operator's capability is minted outside the binary's one place"
        );
    }
}
