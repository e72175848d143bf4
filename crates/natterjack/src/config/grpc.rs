//! `[grpc]`: the public gRPC listener (mutual TLS), its connection limits and the
//! `WatchMessages` stream bounds.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[grpc]`: the public gRPC listener. Every limit is explicit; see docs/CONFIGURATION.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Whether to serve gRPC at all. Default true.
    pub enabled: bool,
    /// Listen address (port 0: any free port). Default 127.0.0.1:8444.
    pub listen: SocketAddr,
    /// PEM CA that client certificates must chain to. Default: the development CA
    /// (`<data_dir>/ca.pem`); required when `[tls]` names production certificates.
    pub client_ca: Option<PathBuf>,
    /// Simultaneous connections; at the cap the idlest is evicted. Default 1024.
    pub max_connections: usize,
    /// Simultaneous connections per client address (IPv6: per /64). Default 64.
    pub max_connections_per_client: usize,
    /// Seconds after the handshake within which the first call must begin. Default 10.
    pub header_read_timeout_secs: u64,
    /// A connection with no open call this long gets GOAWAY. Default 180.
    pub idle_timeout_secs: u64,
    /// Largest message, in bytes. Default 65536.
    pub max_message_bytes: usize,
    /// Concurrent streams per connection. Default 100.
    pub max_concurrent_streams: u32,
    /// Whether connections from `rate_limit.trusted_proxies` begin with a PROXY protocol
    /// version 2 header naming the client (a load balancer passing TLS through). Default
    /// false.
    pub proxy_protocol: bool,
    /// HTTP/2 keepalive ping interval, seconds. Default 30.
    pub keepalive_interval_secs: u64,
    /// Seconds to wait for a keepalive answer before closing. Default 10.
    pub keepalive_timeout_secs: u64,
    /// Seconds after which a connection is closed gracefully. Default 3600.
    pub max_connection_age_secs: u64,
    /// Deadline of a unary call, seconds. Default 30.
    pub request_timeout_secs: u64,
    /// `WatchMessages`: maximum stream duration, seconds. Default 3600.
    pub watch_max_duration_secs: u64,
    /// `WatchMessages`: messages per second per stream. Default 50.
    pub watch_messages_per_sec: u32,
    /// `WatchMessages`: open streams per user. Default 4.
    pub watch_max_per_principal: usize,
    /// `WatchMessages`: messages buffered per watcher before it is cut off. Default 64.
    pub watch_buffer: usize,
    /// `WatchMessages`: seconds between permission re-checks. Default 10.
    pub watch_recheck_secs: u64,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            client_ca: None,
            max_connections: 1024,
            max_connections_per_client: 64,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 180,
            max_message_bytes: 64 * 1024,
            max_concurrent_streams: 100,
            proxy_protocol: false,
            keepalive_interval_secs: 30,
            keepalive_timeout_secs: 10,
            max_connection_age_secs: 3600,
            request_timeout_secs: 30,
            watch_max_duration_secs: 3600,
            watch_messages_per_sec: 50,
            watch_max_per_principal: 4,
            watch_buffer: 64,
            watch_recheck_secs: 10,
        }
    }
}

impl GrpcConfig {
    /// Settings that must be at least 1, by name.
    pub(super) fn positive(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("grpc.max_connections", self.max_connections as u64),
            (
                "grpc.max_connections_per_client",
                self.max_connections_per_client as u64,
            ),
            (
                "grpc.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("grpc.idle_timeout_secs", self.idle_timeout_secs),
            ("grpc.max_message_bytes", self.max_message_bytes as u64),
            (
                "grpc.max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
            ),
            ("grpc.keepalive_interval_secs", self.keepalive_interval_secs),
            ("grpc.keepalive_timeout_secs", self.keepalive_timeout_secs),
            ("grpc.max_connection_age_secs", self.max_connection_age_secs),
            ("grpc.request_timeout_secs", self.request_timeout_secs),
            ("grpc.watch_max_duration_secs", self.watch_max_duration_secs),
            (
                "grpc.watch_messages_per_sec",
                u64::from(self.watch_messages_per_sec),
            ),
            (
                "grpc.watch_max_per_principal",
                self.watch_max_per_principal as u64,
            ),
            ("grpc.watch_buffer", self.watch_buffer as u64),
            ("grpc.watch_recheck_secs", self.watch_recheck_secs),
        ]
    }
}
