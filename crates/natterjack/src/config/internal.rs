//! `[internal]`: the operators' listeners (the Admin socket and the metrics address). Apart
//! from `[grpc]` because these are never public: a different audience with different limits.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[internal]`: the operators' listeners. The Admin service and reflection are on a Unix
/// socket (mode 0600), `GET /metrics` on a loopback TCP address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalConfig {
    /// Whether to serve them. Default true.
    pub enabled: bool,
    /// Loopback listen address of `GET /metrics`. Default 127.0.0.1:9090.
    pub listen: SocketAddr,
    /// The Admin socket. Default `<data_dir>/admin.sock`.
    pub admin_socket: Option<PathBuf>,
    /// Serve Admin and reflection on `listen` too, where any local process (any user) can
    /// reach them. Default false.
    pub admin_over_tcp: bool,
}

impl Default for InternalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            admin_socket: None,
            admin_over_tcp: false,
        }
    }
}
