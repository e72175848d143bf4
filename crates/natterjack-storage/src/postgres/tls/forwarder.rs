//! The database's TLS, terminated in this process: a forwarder on a Unix socket in a private
//! directory, which sqlx reaches in plaintext (`sslmode=disable`) and which speaks TLS to
//! PostgreSQL with our rustls configuration (`trust.rs`).
//!
//! For each connection it reads the client's startup packet, opens TCP to the database,
//! sends PostgreSQL's SSLRequest, requires `S`, runs the rustls handshake, sends the startup
//! packet over TLS and then copies bytes both ways until either side closes. When the
//! database cannot be reached or its certificate is refused, the client gets a FATAL
//! ErrorResponse saying why (SQLSTATE 08001), so that the operator reads the reason
//! (`invalid peer certificate: UnknownIssuer`, a name mismatch, `ssl = off`) rather than a
//! closed socket.
//!
//! The directory is mode 0700, made for this forwarder alone, and removed with it; dropping
//! the forwarder also ends every connection it carries. Only this process's user can reach
//! the socket, and that user can read the process's memory anyway.

use super::super::errors::refuse;
use super::wire;
use natterjack_core::ports::StoreError;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long a local client has to send its startup packet.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the TCP connection to the database may take, and then the TLS request and
/// handshake on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the forwarder's connections go and what they trust.
pub(crate) struct Upstream {
    /// The URL's host: what TCP connects to.
    pub(crate) host: String,
    /// The URL's port.
    pub(crate) port: u16,
    /// The name the certificate must carry (under `verify-full`).
    pub(crate) name: ServerName<'static>,
    /// The rustls configuration trusting `database.ca_file` alone.
    pub(crate) config: Arc<ClientConfig>,
}

impl Upstream {
    fn at(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// TCP, the SSLRequest, the handshake: a TLS stream ready for the startup packet, or
    /// the reason in words for the operator.
    async fn open(&self) -> Result<TlsStream<TcpStream>, String> {
        let at = self.at();
        let mut tcp = timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| format!("connecting to the database at {at} timed out"))?
        .map_err(|e| format!("cannot connect to the database at {at}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let handshake = async {
            tcp.write_all(&wire::SSL_REQUEST)
                .await
                .map_err(|e| format!("the database at {at} closed the connection: {e}"))?;
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer)
                .await
                .map_err(|e| format!("the database at {at} closed the connection: {e}"))?;
            match &answer {
                b"S" => {}
                b"N" => {
                    return Err(format!(
                        "the database at {at} does not offer TLS, which database.ca_file requires"
                    ));
                }
                _ => {
                    return Err(format!(
                        "the database at {at} answered the TLS request with neither yes nor no"
                    ));
                }
            }
            TlsConnector::from(self.config.clone())
                .connect(self.name.clone(), tcp)
                .await
                .map_err(|e| {
                    format!(
                        "TLS to the database at {at} failed: {e} (only the certificates in database.ca_file are trusted)"
                    )
                })
        };
        timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| format!("the TLS handshake with the database at {at} timed out"))?
    }
}

/// A running forwarder. Held by every [`PgTarget`](super::super::PgTarget) that points at it,
/// so it lives as long as anything may connect through it; dropped, it stops accepting,
/// ends its connections and removes its directory.
pub(crate) struct TlsForwarder {
    dir: PathBuf,
    task: JoinHandle<()>,
}

impl TlsForwarder {
    /// Starts a forwarder to `upstream` on the current Tokio runtime. Its socket is
    /// `.s.PGSQL.<port>` in [`dir`](Self::dir), the name sqlx looks for in a socket
    /// directory.
    pub(crate) fn start(upstream: Upstream) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            refuse("TLS to the database with database.ca_file runs on the Tokio runtime; none is running")
        })?;
        let dir = private_dir()?;
        let socket = dir.join(format!(".s.PGSQL.{}", upstream.port));
        let listener = {
            let _entered = runtime.enter();
            UnixListener::bind(&socket)
        };
        let listener = match listener {
            Ok(listener) => listener,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(refuse(format!(
                    "cannot listen on {} for TLS to the database: {e}",
                    socket.display()
                )));
            }
        };
        let task = runtime.spawn(accept(listener, Arc::new(upstream)));
        Ok(Self { dir, task })
    }

    /// The directory of the socket, for sqlx's `PgConnectOptions::socket`.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TlsForwarder {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new directory only this user can enter, under the system's temporary directory.
/// `create` (not `create_all`) fails on a name that exists, so nobody can hand us theirs.
fn private_dir() -> Result<PathBuf, StoreError> {
    let base = std::env::temp_dir();
    let mut last = None;
    for _ in 0..8 {
        let dir = base.join(format!("natterjack-pg-{:016x}", rand::random::<u64>()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(e),
        }
    }
    Err(refuse(format!(
        "cannot create a private directory in {} for TLS to the database: {}",
        base.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// Accepts until aborted; the connections are tasks of a set this loop owns, so aborting
/// it ends them all.
async fn accept(listener: UnixListener, upstream: Arc<Upstream>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(forward(client, upstream.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "database TLS forwarder cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One client connection, from its startup packet to whichever side closes first.
async fn forward(mut client: UnixStream, upstream: Arc<Upstream>) {
    let Ok(Ok(startup)) = timeout(STARTUP_TIMEOUT, wire::read_startup(&mut client)).await else {
        return;
    };
    let mut server = match upstream.open().await {
        Ok(server) => server,
        Err(why) => {
            tracing::debug!(reason = %why, "database TLS forwarder refused a connection");
            let _ = client.write_all(&wire::connection_error(&why)).await;
            let _ = client.shutdown().await;
            return;
        }
    };
    if server.write_all(&startup).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
