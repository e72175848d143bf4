//! Raw TLS connections, as an attacker's script would open them: from a chosen loopback
//! address, with a chosen ALPN, sending nothing or only the HTTP/2 preface, and watching
//! for the server to close them.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4) and an empty SETTINGS frame.
pub const H2_PREFACE: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// HTTP/2 frame type GOAWAY.
pub const GOAWAY: u8 = 0x7;

/// How the idle connection behaves after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// ALPN `http/1.1`, then nothing.
    Http1,
    /// ALPN `h2`, then nothing, not even the preface.
    Http2Silent,
    /// ALPN `h2`, the preface and SETTINGS, then nothing.
    Http2Preface,
}

/// A TCP connection to `server` from `local` (any 127.0.0.0/8 address works on Linux).
pub async fn tcp_from(local: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(server).await
}

/// A TLS client trusting the CA in `ca`, offering `alpn`, presenting `identity` (cert, key)
/// when given.
pub fn connector(ca: &Path, alpn: &[&[u8]], identity: Option<(&Path, &Path)>) -> TlsConnector {
    TlsConnector::from(Arc::new(client_config(ca, alpn, identity)))
}

/// The configuration of [`connector`], for tests that change more of it.
pub fn client_config(
    ca: &Path,
    alpn: &[&[u8]],
    identity: Option<(&Path, &Path)>,
) -> rustls::ClientConfig {
    super::install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Completes a TLS handshake with `server` from `local`; an error means the server closed
/// the connection before or during the handshake.
pub async fn tls_from(
    connector: &TlsConnector,
    local: IpAddr,
    server: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = tcp_from(local, server).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// Opens an idle connection of `kind`; an error means the server refused it.
pub async fn idle(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    kind: Idle,
    local: IpAddr,
    server: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let alpn: &[&[u8]] = match kind {
        Idle::Http1 => &[b"http/1.1"],
        Idle::Http2Silent | Idle::Http2Preface => &[b"h2"],
    };
    let mut tls = tls_from(&connector(ca, alpn, identity), local, server).await?;
    if kind == Idle::Http2Preface {
        tls.write_all(H2_PREFACE).await?;
        tls.flush().await?;
    }
    Ok(tls)
}

/// How a connection ended, seen from the client.
#[derive(Debug)]
pub struct Ended {
    /// From the call until the server closed it.
    pub after: Duration,
    /// The HTTP/2 frame types received (empty over HTTP/1.1).
    pub frames: Vec<u8>,
}

/// Reads until the server closes the connection (or `limit` passes: `None`). When `http2`,
/// the bytes are split into frames and their types kept.
pub async fn until_closed(
    mut tls: TlsStream<TcpStream>,
    http2: bool,
    limit: Duration,
) -> Option<Ended> {
    let started = Instant::now();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed.ok()?;
    let mut frames = Vec::new();
    if http2 {
        let mut rest = &bytes[..];
        while rest.len() >= 9 {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            frames.push(rest[3]);
            rest = &rest[(9 + len).min(rest.len())..];
        }
    }
    Some(Ended {
        after: started.elapsed(),
        frames,
    })
}
