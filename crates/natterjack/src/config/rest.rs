//! `[rest]`: the public HTTPS listener's address, deadlines and connection caps. Kept apart
//! from the other sections so the listener's limits and their defaults read in one place.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[rest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestConfig {
    /// Listen address (port 0: any free port). Default 127.0.0.1:8443.
    pub listen: SocketAddr,
    /// Whole-request time limit in seconds (408 beyond). Default 30.
    pub request_timeout_secs: u64,
    /// Simultaneous connections; at the cap the idlest is evicted. Default 1024.
    pub max_connections: usize,
    /// Simultaneous connections per client address (IPv6: per /64); trusted proxies are
    /// exempt. Default 64.
    pub max_connections_per_client: usize,
    /// TLS handshake time limit in seconds. Default 10.
    pub handshake_timeout_secs: u64,
    /// Time limit for a request head, in seconds: the first one counts from the end of the
    /// handshake. Default 10.
    pub header_read_timeout_secs: u64,
    /// An HTTP/1.1 connection idle this long between requests is closed. Default 75.
    pub keep_alive_timeout_secs: u64,
    /// An HTTP/2 connection with no open stream this long gets GOAWAY. Default 180.
    pub http2_idle_timeout_secs: u64,
    /// Concurrent HTTP/2 streams per connection. Default 100.
    pub max_concurrent_streams: u32,
    /// Whether connections from `rate_limit.trusted_proxies` begin with a PROXY protocol
    /// version 2 header naming the client (a load balancer passing TLS through). Default
    /// false.
    pub proxy_protocol: bool,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            request_timeout_secs: 30,
            max_connections: 1024,
            max_connections_per_client: 64,
            handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            keep_alive_timeout_secs: 75,
            http2_idle_timeout_secs: 180,
            max_concurrent_streams: 100,
            proxy_protocol: false,
        }
    }
}

impl RestConfig {
    /// Settings that must be at least 1, by name.
    pub(super) fn positive(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("rest.request_timeout_secs", self.request_timeout_secs),
            ("rest.handshake_timeout_secs", self.handshake_timeout_secs),
            (
                "rest.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("rest.max_connections", self.max_connections as u64),
            (
                "rest.max_connections_per_client",
                self.max_connections_per_client as u64,
            ),
            ("rest.keep_alive_timeout_secs", self.keep_alive_timeout_secs),
            ("rest.http2_idle_timeout_secs", self.http2_idle_timeout_secs),
            (
                "rest.max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
            ),
        ]
    }
}
