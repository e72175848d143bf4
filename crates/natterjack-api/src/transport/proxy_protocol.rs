//! The PROXY protocol, version 2 (the binary header of haproxy.org's `proxy-protocol.txt`):
//! how a load balancer that passes TLS through (HAProxy in TCP mode, `send-proxy-v2`) tells
//! a node the client's address, which the node would otherwise see as the balancer's.
//!
//! A header is read only from a peer in `rate_limit.trusted_proxies`, and from such a peer
//! it is required: anyone else could name any address in it. It is read before the TLS
//! handshake, within the handshake's time, and is at most [`MAX_HEADER`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The twelve bytes every version 2 header starts with.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The most bytes of addresses and TLVs a header may announce. HAProxy sends 12 (IPv4) or
/// 36 (IPv6) bytes of addresses plus any TLVs it is configured to add; a few hundred at
/// most. A larger length is refused rather than read.
pub const MAX_HEADER: usize = 1024;

/// Why a header was refused (the connection is then closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadHeader {
    /// The connection ended or failed before the header was complete.
    Truncated,
    /// It does not start with the version 2 signature and version.
    NotVersion2,
    /// A command other than `LOCAL` and `PROXY`.
    UnknownCommand,
    /// The announced length is over [`MAX_HEADER`] or too short for its addresses.
    BadLength,
}

impl BadHeader {
    /// The metric label and log text.
    pub fn label(self) -> &'static str {
        match self {
            BadHeader::Truncated => "proxy_header_truncated",
            BadHeader::NotVersion2 => "proxy_header_missing",
            BadHeader::UnknownCommand => "proxy_header_command",
            BadHeader::BadLength => "proxy_header_length",
        }
    }
}

/// Reads one header from `stream` and returns the client's address it names: `None` for
/// a `LOCAL` header (the balancer's own connection, such as a health check) and for an
/// address family other than TCP over IPv4 or IPv6, where the peer's own address stands.
pub async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Option<SocketAddr>, BadHeader> {
    let mut fixed = [0u8; 16];
    stream
        .read_exact(&mut fixed)
        .await
        .map_err(|_| BadHeader::Truncated)?;
    if fixed[..12] != SIGNATURE || fixed[12] >> 4 != 2 {
        return Err(BadHeader::NotVersion2);
    }
    let command = fixed[12] & 0x0f;
    let family = fixed[13];
    let length = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if length > MAX_HEADER {
        return Err(BadHeader::BadLength);
    }
    let mut rest = vec![0u8; length];
    stream
        .read_exact(&mut rest)
        .await
        .map_err(|_| BadHeader::Truncated)?;
    match command {
        0 => Ok(None),
        1 => source(family, &rest),
        _ => Err(BadHeader::UnknownCommand),
    }
}

/// The source address of a `PROXY` header's address block; TLVs after it are ignored.
fn source(family: u8, block: &[u8]) -> Result<Option<SocketAddr>, BadHeader> {
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    match family {
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 => {
            if block.len() < 12 {
                return Err(BadHeader::BadLength);
            }
            let ip = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port(8))))
        }
        // TCP over IPv6.
        0x21 => {
            if block.len() < 36 {
                return Err(BadHeader::BadLength);
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&block[..16]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port(32),
            )))
        }
        // UNSPEC, UDP or Unix sockets: nothing a client address can be taken from.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        h.extend_from_slice(block);
        h
    }

    async fn read(bytes: &[u8]) -> Result<Option<SocketAddr>, BadHeader> {
        let mut input = bytes;
        read_header(&mut input).await
    }

    #[tokio::test]
    async fn a_proxy_header_names_the_client_and_leaves_what_follows_unread() {
        let mut block = vec![192, 0, 2, 7, 10, 0, 0, 1];
        block.extend_from_slice(&51_000u16.to_be_bytes());
        block.extend_from_slice(&8443u16.to_be_bytes());
        block.extend_from_slice(&[0x04, 0, 1, 0x42]); // a TLV, ignored
        let mut bytes = header(1, 0x11, &block);
        bytes.extend_from_slice(b"\x16\x03\x01"); // the TLS ClientHello that follows
        let mut input = &bytes[..];
        let client = read_header(&mut input).await.unwrap();
        assert_eq!(client, Some("192.0.2.7:51000".parse().unwrap()));
        assert_eq!(input, b"\x16\x03\x01");

        let mut v6 = "2001:db8::9".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        v6.extend_from_slice(&[0; 16]);
        v6.extend_from_slice(&443u16.to_be_bytes());
        v6.extend_from_slice(&8443u16.to_be_bytes());
        assert_eq!(
            read(&header(1, 0x21, &v6)).await.unwrap(),
            Some("[2001:db8::9]:443".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn a_local_header_or_an_unspecified_family_keeps_the_peers_own_address() {
        assert_eq!(read(&header(0, 0x00, &[])).await, Ok(None));
        assert_eq!(read(&header(1, 0x00, &[])).await, Ok(None));
        assert_eq!(read(&header(1, 0x31, &[0; 216])).await, Ok(None));
    }

    #[tokio::test]
    async fn anything_but_a_whole_version_2_header_is_refused() {
        // A TLS ClientHello where the header should be: a client that is not the proxy.
        let hello = [0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3, 0, 0, 0, 0, 0];
        assert_eq!(read(&hello).await, Err(BadHeader::NotVersion2));
        // Version 1 (text).
        assert_eq!(
            read(b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 8443\r\n").await,
            Err(BadHeader::NotVersion2)
        );
        let mut v3 = header(1, 0x11, &[0; 12]);
        v3[12] = 0x31;
        assert_eq!(read(&v3).await, Err(BadHeader::NotVersion2));
        assert_eq!(
            read(&header(2, 0x11, &[0; 12])).await,
            Err(BadHeader::UnknownCommand)
        );
        assert_eq!(
            read(&header(1, 0x11, &[0; 8])).await,
            Err(BadHeader::BadLength)
        );
        assert_eq!(
            read(&header(1, 0x11, &vec![0; MAX_HEADER + 1])).await,
            Err(BadHeader::BadLength)
        );
        let whole = header(1, 0x11, &[0; 12]);
        for cut in [0, 5, 15, 16, 20] {
            assert_eq!(
                read(&whole[..cut]).await,
                Err(BadHeader::Truncated),
                "{cut}"
            );
        }
    }
}
