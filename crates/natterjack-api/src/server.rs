//! The HTTPS listener: our own accept loop over tokio-rustls and hyper-util, so that
//! transport limits are explicit and the peer address reaches the pipeline.

use crate::pipeline::{MAX_HEADER_FIELDS, MAX_HEADER_LIST_BYTES};
use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Most header fields hyper parses in an HTTP/1.1 request (400); beyond, it answers a bare
/// 431 itself. Four times the pipeline's [`MAX_HEADER_FIELDS`], so that the pipeline, with
/// its headers, problem body and audit record, refuses what is merely over the limit, and
/// hyper only what is far beyond it.
pub const MAX_TRANSPORT_HEADER_FIELDS: usize = 4 * MAX_HEADER_FIELDS;

/// Largest request head (HTTP/1.1: hyper's read buffer) or header list (HTTP/2: the
/// advertised SETTINGS_MAX_HEADER_LIST_SIZE) the transport accepts (64 KiB); beyond, hyper
/// or h2 answers a bare 431. Four times the pipeline's [`MAX_HEADER_LIST_BYTES`], for the
/// same reason as [`MAX_TRANSPORT_HEADER_FIELDS`]; it also bounds the memory one request
/// head can take.
pub const MAX_TRANSPORT_HEADER_BYTES: usize = 4 * MAX_HEADER_LIST_BYTES;

/// The peer's socket address, attached to every request (rate limiting keys on it).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Transport limits. Defaults are documented in the configuration reference.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    /// Simultaneous connections; further ones are closed at once.
    pub max_connections: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to receive a request's headers (HTTP/1.1; slowloris).
    pub header_read_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Time granted to open requests when shutting down.
    pub shutdown_grace: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_concurrent_streams: 100,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then lets open requests
/// finish for up to `shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: TransportLimits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(MAX_TRANSPORT_HEADER_FIELDS)
        .max_buf_size(MAX_TRANSPORT_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(MAX_TRANSPORT_HEADER_BYTES as u32);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls_stream =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        crate::metrics::tls_handshake_failure("error");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        crate::metrics::tls_handshake_failure("timeout");
                        return;
                    }
                };
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                app.clone().oneshot(req.map(Body::new))
            });
            let connection = builder.serve_connection(TokioIo::new(tls_stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within the shutdown grace period");
    }
}
