//! `[tls]`: the server certificate and key, or none for the development CA. Its own file so
//! that the one place deciding between production and development certificates is easy to find.

use serde::Deserialize;
use std::path::PathBuf;

/// `[tls]`: without `cert` and `key`, a development CA and certificate are generated in the
/// data directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert: Option<PathBuf>,
    /// PEM private key of the server (keep it 0600).
    pub key: Option<PathBuf>,
}
