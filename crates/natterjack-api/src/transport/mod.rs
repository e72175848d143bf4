//! The first step of the pipeline for both public listeners (HTTPS for REST, mutual TLS for
//! gRPC): our own accept loop over tokio-rustls and hyper, so that every transport limit is
//! explicit and the peer address and certificate reach the pipeline.
//!
//! - [`table`]: who may hold a connection. A global cap, a lower cap per client address
//!   (IPv6 by /64), and, at the global cap, the idlest connection is evicted before a new
//!   one waits briefly or is refused; refusals are counted and logged at most once per
//!   interval.
//! - [`activity`]: whether a connection is serving a request, kept by a guard that lives
//!   until the response body is sent.
//! - [`listener`]: the accept loop and the life of one connection: the TLS handshake within
//!   its deadline, a first request within `header_read_timeout`, an idle HTTP/1.1 keep-alive
//!   connection or an HTTP/2 connection with no open stream closed (HTTP/2: GOAWAY), a
//!   maximum age, graceful shutdown (connections accepted just before the listener
//!   closed are still served their first request).
//! - [`park`]: an HTTP/1.1 connection idle for half a second holds only its TLS stream;
//!   hyper, with its buffers, is built again when the next request begins to arrive.
//! - [`refused`]: streams HTTP/2 refuses over the concurrent-stream cap, which no service
//!   sees, counted from the connection's outgoing frames.
//!
//! A connection counts as idle from the end of its last response (or from its acceptance)
//! until its next request head is complete. Idle connections are what an attacker holds for
//! free, so they are the ones closed on time and evicted first; a client being served is
//! never starved by them.

pub mod activity;
pub mod listener;
pub(crate) mod park;
pub mod proxy_protocol;
pub mod refused;
pub mod table;

use crate::pipeline::{MAX_HEADER_FIELDS, MAX_HEADER_LIST_BYTES};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use listener::{serve, serve_reporting};

/// Most header fields hyper parses in an HTTP/1.1 request (400); beyond, it answers a bare
/// 431 itself (no body, none of the pipeline's headers: the transport section of
/// docs/CONFIGURATION.md has its exact bytes). Four times the pipeline's
/// [`MAX_HEADER_FIELDS`], so that the pipeline, with its headers, problem body and audit
/// record, refuses what is merely over the limit, and hyper only what is far beyond it.
pub const MAX_TRANSPORT_HEADER_FIELDS: usize = 4 * MAX_HEADER_FIELDS;

/// Largest request head (HTTP/1.1: request line, header lines and the blank line, hyper's
/// `max_header_size`, also its read buffer) or header list (HTTP/2: the advertised
/// SETTINGS_MAX_HEADER_LIST_SIZE) the transport accepts (64 KiB); beyond, hyper or h2
/// answers a bare 431. Four times the pipeline's [`MAX_HEADER_LIST_BYTES`], for the same
/// reason as [`MAX_TRANSPORT_HEADER_FIELDS`]; it also bounds the memory one request head can
/// take, and it leaves hyper's 414 unreachable (hyper sends it for a request target over
/// 65,534 bytes, which no head within this cap can hold), a status that caches may keep
/// by default where 400 and 431 are not.
pub const MAX_TRANSPORT_HEADER_BYTES: usize = 4 * MAX_HEADER_LIST_BYTES;

/// The peer's socket address, attached to every request (rate limiting keys on it).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The name the connection's client certificate gives its holder, attached to every request
/// of the connection and worked out by the first one that asks. A TLS connection's
/// certificate cannot change, so parsing it again for every call (as mutual-TLS gRPC
/// calls would) only costs time.
#[derive(Debug, Clone, Default)]
pub struct PeerName(Arc<OnceLock<Result<String, &'static str>>>);

impl PeerName {
    /// The name, from `name_of` the first time and from memory after.
    pub fn get_or_init(
        &self,
        name_of: impl FnOnce() -> Result<String, &'static str>,
    ) -> Result<String, &'static str> {
        self.0.get_or_init(name_of).clone()
    }
}

/// What a listener speaks over TLS.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2, chosen by ALPN (`h2`, otherwise HTTP/1.1).
    Http,
    /// gRPC: HTTP/2 only, with keepalive pings so that a vanished peer is noticed.
    Grpc {
        /// Interval between pings.
        keepalive_interval: Duration,
        /// How long to wait for a ping's answer before closing.
        keepalive_timeout: Duration,
    },
}

/// Connection limits of one listener. The defaults, and why, are in the configuration
/// reference (`[rest]`, `[grpc]`).
#[derive(Debug, Clone)]
pub struct TransportLimits {
    /// Simultaneous connections. At the cap, the idlest connection is evicted; if none is
    /// idle, a new connection waits briefly, then is closed.
    pub max_connections: usize,
    /// Simultaneous connections from one client address (IPv6: one /64), below
    /// `max_connections`, so that one address cannot hold the whole pool.
    pub max_connections_per_client: usize,
    /// Peers exempt from the per-client cap: the trusted proxies, whose connections carry
    /// many clients.
    pub exempt: Vec<IpNet>,
    /// Whether a connection from one of the `exempt` peers must begin with a PROXY protocol
    /// version 2 header naming the client ([`proxy_protocol`]); other peers never send one.
    pub proxy_protocol: bool,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed, after the handshake, to complete the first request head; and, over
    /// HTTP/1.1, to receive any request head once it has begun (slowloris).
    pub header_read_timeout: Duration,
    /// An HTTP/1.1 connection idle this long between requests is closed.
    pub keep_alive_timeout: Duration,
    /// An HTTP/2 connection with no open stream for this long is sent GOAWAY and closed.
    pub http2_idle_timeout: Duration,
    /// A connection is closed gracefully after this long, idle or not (`None`: never).
    pub max_connection_age: Option<Duration>,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Time granted to open requests when the server stops accepting (`[shutdown]
    /// timeout_secs`); what is still open then is cut.
    pub shutdown_grace: Duration,
    /// Time granted to open requests when a connection reaches its maximum age.
    pub age_grace: Duration,
}

impl TransportLimits {
    /// Whether `peer` is one of the `exempt` peers: the address itself (a proxy listed as
    /// one IPv6 address is not its /64), or its IPv4 form when it came IPv4-mapped.
    pub fn exempts(&self, peer: IpAddr) -> bool {
        exempted(&self.exempt, peer)
    }
}

/// [`TransportLimits::exempts`] over a list of its own.
pub(crate) fn exempted(exempt: &[IpNet], peer: IpAddr) -> bool {
    let client = natterjack_core::rate::limit_key(peer);
    exempt
        .iter()
        .any(|net| net.contains(&peer) || net.contains(&client))
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_client: 64,
            exempt: Vec::new(),
            proxy_protocol: false,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            http2_idle_timeout: Duration::from_secs(180),
            max_connection_age: None,
            max_concurrent_streams: 100,
            shutdown_grace: Duration::from_secs(30),
            age_grace: Duration::from_secs(10),
        }
    }
}

/// One listener: its name (in logs and metrics labels), protocol and limits.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// `rest` or `grpc`.
    pub name: &'static str,
    /// What it speaks.
    pub protocol: Protocol,
    /// Its limits.
    pub limits: TransportLimits,
}

#[cfg(test)]
mod tests {
    use super::PeerName;
    use std::cell::Cell;

    #[test]
    fn a_connection_s_certificate_name_is_worked_out_once_and_shared_by_its_requests() {
        let memo = PeerName::default();
        let per_request = memo.clone();
        let parsed = Cell::new(0);
        let name_of = || {
            parsed.set(parsed.get() + 1);
            Ok("alice".to_owned())
        };
        assert_eq!(memo.get_or_init(name_of), Ok("alice".to_owned()));
        assert_eq!(per_request.get_or_init(name_of), Ok("alice".to_owned()));
        assert_eq!(parsed.get(), 1);
        // Another connection has a memo of its own.
        let other = PeerName::default();
        assert_eq!(
            other.get_or_init(|| Err("the certificate names no user")),
            Err("the certificate names no user")
        );
    }
}
