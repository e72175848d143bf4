//! The accept loop of the public listeners, and the life of one connection: admission, the
//! TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, and the deadlines that close it.

use super::activity::{Activity, Tracked};
use super::park::{Quiet, Resumable};
use super::refused::{Refusals, ReportRefusedStreams, Watched};
use super::table::{ConnectionTable, Slot};
use super::{
    ListenerSpec, MAX_TRANSPORT_HEADER_BYTES, MAX_TRANSPORT_HEADER_FIELDS, PeerAddr, PeerName,
    Protocol,
};
use axum::Router;
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
use tower::ServiceExt;

/// How long a connection closed for idleness or eviction gets to take its GOAWAY (HTTP/2)
/// or to finish a request head it has begun, before it is dropped.
const IDLE_DRAIN: Duration = Duration::from_secs(1);

/// Why the server closes a connection (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// No complete request head within `header_read_timeout` of the handshake.
    FirstRequest,
    /// Idle past the keep-alive (HTTP/1.1) or idle (HTTP/2) timeout.
    Idle,
    /// Evicted to make room at the listener's cap.
    Evicted,
    /// Reached its maximum age.
    Age,
    /// The server is stopping.
    Shutdown,
}

impl Close {
    fn label(self) -> &'static str {
        match self {
            Close::FirstRequest => "first_request",
            Close::Idle => "idle",
            Close::Evicted => "evicted",
            Close::Age => "age",
            Close::Shutdown => "shutdown",
        }
    }
}

/// What every connection of one listener shares.
struct Shared {
    acceptor: TlsAcceptor,
    app: Router,
    spec: ListenerSpec,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    stopping: AtomicBool,
    /// Told about each connection that had streams refused over the cap.
    report_refused: Option<ReportRefusedStreams>,
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then asks every
/// connection to finish its open requests and close, waiting up to the shutdown grace.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    spec: ListenerSpec,
    shutdown: impl Future<Output = ()>,
) {
    serve_reporting(listener, tls, app, spec, None, shutdown).await;
}

/// [`serve`], telling `report_refused` about each connection that had streams refused over
/// the concurrent-stream cap when it ends: no service sees those streams, so this is the
/// only way a listener can record them.
pub async fn serve_reporting(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    spec: ListenerSpec,
    report_refused: Option<ReportRefusedStreams>,
    shutdown: impl Future<Output = ()>,
) {
    let table = ConnectionTable::new(spec.name, &spec.limits);
    table.spawn_log_flush();
    let grace = spec.limits.shutdown_grace;
    let shared = Arc::new(Shared::new(tls, app, spec, report_refused));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, typically: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (shared, table) = (shared.clone(), table.clone());
        tokio::spawn(async move {
            if let Ok(slot) = table.admit(peer.ip()).await {
                shared.connection(stream, peer, slot).await;
            }
        });
    }
    drop(listener);
    shared.stopping.store(true, Ordering::Release);
    table.close_all();
    if tokio::time::timeout(grace + IDLE_DRAIN, table.drained())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within the shutdown grace period");
    }
}

/// Resolves once `activity` is asked to close.
async fn asked_to_close(activity: &Activity) {
    loop {
        let changed = activity.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if activity.is_closing() {
            return;
        }
        changed.await;
    }
}

impl Shared {
    fn new(
        tls: Arc<rustls::ServerConfig>,
        app: Router,
        spec: ListenerSpec,
        report_refused: Option<ReportRefusedStreams>,
    ) -> Self {
        let limits = &spec.limits;
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(MAX_TRANSPORT_HEADER_FIELDS)
            // The head's cap, exact: `max_buf_size` alone is checked only between reads, so
            // a head that arrives in large reads could pass it by up to one read.
            .max_header_size(MAX_TRANSPORT_HEADER_BYTES)
            .max_buf_size(MAX_TRANSPORT_HEADER_BYTES)
            .keep_alive(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(MAX_TRANSPORT_HEADER_BYTES as u32);
        if let Protocol::Grpc {
            keepalive_interval,
            keepalive_timeout,
        } = spec.protocol
        {
            h2.keep_alive_interval(Some(keepalive_interval))
                .keep_alive_timeout(keepalive_timeout);
        }
        Self {
            acceptor: TlsAcceptor::from(tls),
            app,
            spec,
            http1: h1,
            http2: h2,
            stopping: AtomicBool::new(false),
            report_refused,
        }
    }

    fn asked(&self) -> Close {
        if self.stopping.load(Ordering::Acquire) {
            Close::Shutdown
        } else {
            Close::Evicted
        }
    }

    /// One connection, from its TLS handshake until it closes.
    ///
    /// The handshake and hyper's connection are boxed, so that the task of an idle
    /// connection holds neither (the task's future is as large as its largest state, for
    /// the connection's whole life), and an idle HTTP/1.1 connection is parked (see
    /// [`super::park`]).
    async fn connection(&self, stream: TcpStream, peer: SocketAddr, slot: Slot) {
        let name = self.spec.name;
        let activity = slot.activity().clone();
        // Small responses and RPC frames should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let handshake = Box::pin(tokio::time::timeout(
            self.spec.limits.handshake_timeout,
            self.acceptor.accept(stream),
        ));
        let tls = tokio::select! {
            done = handshake => match done {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    crate::metrics::tls_handshake_failure(name, "error");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    crate::metrics::tls_handshake_failure(name, "timeout");
                    return;
                }
            },
            () = asked_to_close(&activity) => {
                crate::metrics::connection_closed(name, self.asked().label());
                return;
            }
        };
        activity.handshake_done();
        let limits = &self.spec.limits;
        let aged = limits.max_connection_age.map(|age| Instant::now() + age);
        let http2 = match self.spec.protocol {
            Protocol::Grpc { .. } => true,
            Protocol::Http => tls.get_ref().1.alpn_protocol() == Some(b"h2"),
        };
        // The peer's certificates for tonic's `Request::peer_certs`, and its address.
        let info = tls.connect_info();
        let peer_certs = info.peer_certs();
        let quiet = Arc::new(Quiet::default());
        let service = ConnService {
            app: self.app.clone(),
            info,
            peer_name: PeerName::default(),
            activity: activity.clone(),
            quiet: quiet.clone(),
            peer,
        };
        if http2 {
            // Streams refused over the cap never reach `service`: they are seen here.
            let refusals = Arc::new(Refusals::default());
            let io = TokioIo::new(Watched::new(tls, name, refusals.clone()));
            let mut conn = Box::pin(self.http2.serve_connection(io, service));
            let idle = limits.http2_idle_timeout;
            self.drive(conn.as_mut(), &activity, idle, peer, aged, None)
                .await;
            if let Some(report) = &self.report_refused
                && let Some(refused) =
                    refusals.summary(peer, peer_certs, limits.max_concurrent_streams)
            {
                report(refused).await;
            }
        } else {
            let io = Resumable::new(tls, quiet.clone());
            self.serve_http1(io, service, &activity, &quiet, peer, aged)
                .await;
        }
    }

    /// Serves HTTP/1.1 on `io`, parking it between requests: hyper is built when a request
    /// begins to arrive, and taken apart again once it is settled (see [`super::park`]).
    async fn serve_http1(
        &self,
        mut io: Resumable<TlsStream<TcpStream>>,
        mut service: ConnService,
        activity: &Activity,
        quiet: &Quiet,
        peer: SocketAddr,
        aged: Option<Instant>,
    ) {
        let limits = &self.spec.limits;
        loop {
            if !io.has_replay() {
                match self.park(&mut io, activity, peer, aged).await {
                    Some(first) => io.replay(&[first]),
                    None => return,
                }
            }
            // hyper's header-read timer would have run since the connection went idle:
            // only what is left of it is given to the new one.
            let mut http1 = self.http1.clone();
            http1.header_read_timeout(activity.head_time_left(limits.header_read_timeout));
            quiet.built(activity.requests());
            let mut conn = Box::pin(http1.serve_connection(TokioIo::new(io), service));
            let idle = limits.keep_alive_timeout;
            match self
                .drive(conn.as_mut(), activity, idle, peer, aged, Some(quiet))
                .await
            {
                Driven::Ended => return,
                Driven::Settled => {
                    let parts = Pin::into_inner(conn).into_parts();
                    io = parts.io.into_inner();
                    if !parts.read_buf.is_empty() {
                        io.replay(&parts.read_buf);
                    }
                    service = parts.service;
                }
            }
        }
    }

    /// Waits, holding nothing but the TLS stream, for the first byte of the next request
    /// head, and returns it; or closes the connection when it is asked to close or one of
    /// its deadlines passes (the same as [`Shared::drive`]'s, with hyper's header-read
    /// timeout among them), and returns `None`, as it does when the client closes it.
    async fn park(
        &self,
        io: &mut Resumable<TlsStream<TcpStream>>,
        activity: &Activity,
        peer: SocketAddr,
        aged: Option<Instant>,
    ) -> Option<u8> {
        let limits = &self.spec.limits;
        let close = loop {
            let changed = activity.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if activity.is_closing() {
                break self.asked();
            }
            let idle_until = activity
                .idle_deadline(
                    limits.header_read_timeout,
                    limits.keep_alive_timeout.min(limits.header_read_timeout),
                )
                .map(Instant::from_std);
            let deadline = [idle_until, aged].into_iter().flatten().min();
            let sleep = tokio::time::sleep_until(
                deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400)),
            );
            let mut first = [0u8; 1];
            tokio::select! {
                read = io.read(&mut first) => match read {
                    Ok(0) => {
                        // Closed by the client: close our side too, as hyper would.
                        let _ = tokio::time::timeout(IDLE_DRAIN, io.shutdown()).await;
                        return None;
                    }
                    Ok(_) => return Some(first[0]),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                        return None;
                    }
                },
                () = &mut changed => {}
                () = sleep, if deadline.is_some() => {
                    let now = Instant::now();
                    if aged.is_some_and(|at| now >= at) {
                        break Close::Age;
                    }
                    if idle_until.is_some_and(|at| now >= at) {
                        break Self::idle_close(activity);
                    }
                }
            }
        };
        crate::metrics::connection_closed(self.spec.name, close.label());
        tracing::debug!(%peer, reason = close.label(), "closing connection");
        let _ = tokio::time::timeout(IDLE_DRAIN, io.shutdown()).await;
        None
    }

    /// Why an idle connection is closed: it never began a request, or it went quiet after one.
    fn idle_close(activity: &Activity) -> Close {
        if activity.requests() == 0 {
            Close::FirstRequest
        } else {
            Close::Idle
        }
    }

    /// Serves `conn` until it ends by itself or one of its deadlines passes: no first
    /// request within `header_read_timeout`, idle for `idle`, its maximum age `aged`, or a
    /// request to close (eviction, shutdown). Then shuts it down gracefully (HTTP/2: GOAWAY)
    /// and drops it once it has drained, or its drain time is up. With `park` (HTTP/1.1),
    /// it returns [`Driven::Settled`] instead as soon as hyper may be taken apart.
    async fn drive<C>(
        &self,
        mut conn: Pin<&mut C>,
        activity: &Activity,
        idle: Duration,
        peer: SocketAddr,
        aged: Option<Instant>,
        park: Option<&Quiet>,
    ) -> Driven
    where
        C: GracefulConnection<Error = hyper::Error>,
    {
        let limits = &self.spec.limits;
        let close = loop {
            let changed = activity.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if activity.is_closing() {
                break self.asked();
            }
            let idle_until = activity
                .idle_deadline(limits.header_read_timeout, idle)
                .map(Instant::from_std);
            let deadline = [idle_until, aged].into_iter().flatten().min();
            let sleep = tokio::time::sleep_until(
                deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400)),
            );
            let served = std::future::poll_fn(|cx| match conn.as_mut().poll(cx) {
                Poll::Ready(ended) => Poll::Ready(Some(ended)),
                Poll::Pending if park.is_some_and(|quiet| quiet.settled(activity)) => {
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            });
            tokio::select! {
                served = served => {
                    let Some(ended) = served else {
                        return Driven::Settled;
                    };
                    if let Err(e) = ended {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                        // hyper's own deadline (an HTTP/1.1 head, an unanswered HTTP/2
                        // ping) closed a connection with nothing in flight: the same close
                        // as ours, counted the same way.
                        if e.is_timeout() && activity.idle_since().is_some() {
                            crate::metrics::connection_closed(
                                self.spec.name,
                                Self::idle_close(activity).label(),
                            );
                        }
                    }
                    return Driven::Ended;
                }
                () = &mut changed => {}
                () = sleep, if deadline.is_some() => {
                    let now = Instant::now();
                    if aged.is_some_and(|at| now >= at) {
                        break Close::Age;
                    }
                    let due = activity
                        .idle_deadline(limits.header_read_timeout, idle)
                        .is_some_and(|at| now >= Instant::from_std(at));
                    if due {
                        break Self::idle_close(activity);
                    }
                }
            }
        };
        crate::metrics::connection_closed(self.spec.name, close.label());
        tracing::debug!(%peer, reason = close.label(), "closing connection");
        conn.as_mut().graceful_shutdown();
        let drain = match close {
            Close::Shutdown | Close::Age => limits.shutdown_grace,
            Close::FirstRequest | Close::Idle | Close::Evicted => IDLE_DRAIN,
        };
        let _ = tokio::time::timeout(drain, conn).await;
        Driven::Ended
    }
}

/// What serves the requests of one connection: the app, with the peer's address,
/// certificates and certificate name attached to every request, the connection kept busy until each response
/// has been sent, and (HTTP/1.1) the request bodies watched for [`Quiet`].
#[derive(Clone)]
struct ConnService {
    app: Router,
    info: TlsConnectInfo<TcpConnectInfo>,
    /// One per connection: its requests share the name worked out from its certificate.
    peer_name: PeerName,
    activity: Arc<Activity>,
    quiet: Arc<Quiet>,
    peer: SocketAddr,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<Tracked>;
    type Error = Infallible;
    /// Boxed: hyper keeps room for this future for the connection's whole life (656 bytes
    /// unboxed), while a box lives only as long as its request.
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(PeerAddr(self.peer));
        req.extensions_mut().insert(self.info.clone());
        req.extensions_mut().insert(self.peer_name.clone());
        let busy = self.activity.begin();
        let req = req.map(|body| self.quiet.request_body(body));
        let response = self.app.clone().oneshot(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Tracked::new(body, busy)))
        })
    }
}

/// How [`Shared::drive`] gave a connection back.
enum Driven {
    /// It is closed, or closing by itself.
    Ended,
    /// HTTP/1.1 only: hyper is settled between requests and may be taken apart.
    Settled,
}
