//! `[tls]`: the server certificate and key, or none for the development CA, and how often
//! `serve` looks for a replaced pair. Its own file so that the one place deciding between
//! production and development certificates is easy to find.

use serde::Deserialize;
use std::path::PathBuf;

/// `[tls]`: without `cert` and `key`, a development CA and certificate are generated in the
/// data directory. Either pair is reloaded while `serve` runs (`crate::tls::reload`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert: Option<PathBuf>,
    /// PEM private key of the server (keep it 0600).
    pub key: Option<PathBuf>,
    /// How often, in seconds, `serve` reads the pair to see whether it changed (SIGHUP
    /// reloads at once). Default 5: a renewed certificate is served within seconds, at the
    /// cost of reading two small files.
    pub reload_check_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            reload_check_secs: 5,
        }
    }
}

impl TlsConfig {
    /// Settings that must be at least 1, by name.
    pub(super) fn positive(&self) -> Vec<(&'static str, u64)> {
        vec![("tls.reload_check_secs", self.reload_check_secs)]
    }
}
