//! Where exported records go: a syslog collector over TCP or TLS, a rotated JSON-lines
//! file, or standard output. Each sink says whether a completed write already means
//! "delivered" (files, after `fsync`) or only "handed to the network" (syslog).

use crate::config::{SinkConfig, SinkKind};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Time allowed to connect (and finish the TLS handshake) or to write one batch: a stalled
/// collector counts as down instead of stalling the exporter.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a collector, plain or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// One open destination.
pub(crate) enum Sink {
    /// A syslog collector; `conn` is `None` until connected (and after a failure).
    Syslog {
        address: String,
        tls: Option<(TlsConnector, ServerName<'static>)>,
        conn: Option<Box<dyn Stream>>,
    },
    /// A JSON-lines file, rotated beyond `max_bytes`.
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: u32,
        file: Option<(tokio::fs::File, u64)>,
    },
    /// Standard output.
    Stdout,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

impl Sink {
    /// Builds the sink from its configuration (reads the CA file; connects later).
    pub(crate) fn new(cfg: &SinkConfig) -> Result<Self, String> {
        Ok(match cfg.kind {
            SinkKind::SyslogTcp | SinkKind::SyslogTls => {
                let address = cfg.address.clone().unwrap_or_default();
                let tls = match (cfg.kind, &cfg.ca_file) {
                    (SinkKind::SyslogTls, Some(ca_file)) => Some(tls_client(
                        ca_file,
                        &address,
                        cfg.server_name.as_deref(),
                        cfg.client_cert.as_deref().zip(cfg.client_key.as_deref()),
                    )?),
                    (SinkKind::SyslogTls, None) => return Err("ca_file is required".into()),
                    _ => None,
                };
                Sink::Syslog {
                    address,
                    tls,
                    conn: None,
                }
            }
            SinkKind::JsonFile => Sink::File {
                path: cfg.path.clone().unwrap_or_default(),
                max_bytes: cfg.max_bytes.unwrap_or(100 * 1024 * 1024),
                keep: cfg.keep.unwrap_or(5),
                file: None,
            },
            SinkKind::JsonStdout => Sink::Stdout,
        })
    }

    /// Whether a completed write is already a delivery (nothing can be lost after it).
    pub(crate) fn durable_on_write(&self) -> bool {
        !matches!(self, Sink::Syslog { .. })
    }

    /// Connects (or opens the file) if not already done.
    pub(crate) async fn open(&mut self) -> io::Result<()> {
        match self {
            Sink::Syslog { conn: Some(_), .. }
            | Sink::File { file: Some(_), .. }
            | Sink::Stdout => Ok(()),
            Sink::Syslog { address, tls, conn } => {
                let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address.as_str()))
                    .await
                    .map_err(|_| timed_out())??;
                tcp.set_nodelay(true)?;
                *conn = Some(match tls {
                    Some((connector, name)) => Box::new(
                        tokio::time::timeout(IO_TIMEOUT, connector.connect(name.clone(), tcp))
                            .await
                            .map_err(|_| timed_out())??,
                    ),
                    None => Box::new(tcp),
                });
                Ok(())
            }
            Sink::File { path, file, .. } => {
                let opened = append_private(path).await?;
                let size = opened.metadata().await?.len();
                *file = Some((opened, size));
                Ok(())
            }
        }
    }

    /// Drops the connection (after a failure); the next [`Sink::open`] reconnects.
    pub(crate) fn close(&mut self) {
        match self {
            Sink::Syslog { conn, .. } => *conn = None,
            Sink::File { file, .. } => *file = None,
            Sink::Stdout => {}
        }
    }

    /// Whether the connection still looks healthy. A collector never sends anything, so
    /// readable means closed (end of stream) or broken (an error): either way what was
    /// written lately may not have arrived.
    pub(crate) async fn alive(&mut self) -> bool {
        let Sink::Syslog {
            conn: Some(conn), ..
        } = self
        else {
            return true;
        };
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), conn.read(&mut buf)).await {
            Err(_) => true,
            Ok(Ok(n)) => n > 0,
            Ok(Err(_)) => false,
        }
    }

    /// Writes one batch and pushes it out (to the network, or to the disk with `fsync`).
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Syslog { conn, .. } => {
                let conn = conn
                    .as_mut()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
                tokio::time::timeout(IO_TIMEOUT, async {
                    conn.write_all(bytes).await?;
                    conn.flush().await
                })
                .await
                .map_err(|_| timed_out())?
            }
            Sink::File {
                path,
                max_bytes,
                keep,
                file,
            } => {
                if file.as_ref().is_some_and(|(_, size)| {
                    *size > 0 && size.saturating_add(bytes.len() as u64) > *max_bytes
                }) {
                    *file = None;
                    rotate(path, *keep).await?;
                    let opened = append_private(path).await?;
                    *file = Some((opened, 0));
                }
                let (f, size) = file
                    .as_mut()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
                f.write_all(bytes).await?;
                f.sync_data().await?;
                *size += bytes.len() as u64;
                Ok(())
            }
            Sink::Stdout => {
                let mut out = tokio::io::stdout();
                out.write_all(bytes).await?;
                out.flush().await
            }
        }
    }
}

/// Opens `path` for appending, created owner-only: audit records are sensitive.
async fn append_private(path: &PathBuf) -> io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .await
}

/// `path.(keep-1)` → `path.keep`, …, `path` → `path.1`; the oldest beyond `keep` is replaced.
async fn rotate(path: &PathBuf, keep: u32) -> io::Result<()> {
    let numbered = |n: u32| {
        let mut name = path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    for n in (1..keep).rev() {
        match tokio::fs::rename(numbered(n), numbered(n + 1)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    tokio::fs::rename(path, numbered(1)).await
}

/// A TLS client that trusts only `ca_file` and checks the collector's name.
fn tls_client(
    ca_file: &std::path::Path,
    address: &str,
    server_name: Option<&str>,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<(TlsConnector, ServerName<'static>), String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("cannot read ca_file {}: {e}", ca_file.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("bad certificate in {}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("unusable CA certificate in {}: {e}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("no CA certificate in {}", ca_file.display()));
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read client_cert {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!("no certificate in client_cert {}", cert.display()));
            }
            let private = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read client_key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| format!("client_cert and client_key do not form a pair: {e}"))?
        }
    };
    let host = match server_name {
        Some(name) => name,
        None => address
            .rsplit_once(':')
            .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(address),
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host:?} is not a valid server name"))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}
