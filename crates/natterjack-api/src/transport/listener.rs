//! The accept loop of the public listeners, and the life of one connection: admission, the
//! TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, and the deadlines that close it.

use super::activity::{Activity, Tracked};
use super::park::{Quiet, Resumable};
use super::proxy_protocol;
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

/// How long an HTTP/1.1 connection must have been idle (from the end of its last response)
/// before it is parked (see [`super::park`]).
///
/// Parking frees hyper's buffers, but building hyper again costs the next request new
/// buffers, a new header map and a new dispatcher: parking between every two requests made
/// a busy keep-alive client measurably slower. A client that keeps its connection busy
/// sends its next request within milliseconds, so half a second spares it that cost
/// entirely; a connection quiet for longer pays one rebuild after a wait that dwarfs it.
/// Idle connections are what an attacker holds for free, and they are parked after half a
/// second; to keep one from being parked the attacker must send it a request twice a
/// second, which is load like any other client's, seen and rate limited as such.
const PARK_AFTER: Duration = Duration::from_millis(500);

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
    /// Set at the shutdown deadline: connections still serving are cut then, after the
    /// listener has counted what they were serving (their own timers would race the count).
    cut: tokio::sync::watch::Sender<bool>,
    /// Told about each connection that had streams refused over the cap.
    report_refused: Option<ReportRefusedStreams>,
}

/// Serves `app` over TLS on `listener` until `shutdown` completes; then stops accepting,
/// asks every connection to finish its open requests and close (HTTP/1.1: after the
/// current request; HTTP/2: GOAWAY), and waits up to the shutdown grace, after which what
/// is still open is cut.
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
    let (name, grace) = (spec.name, spec.limits.shutdown_grace);
    let shared = Arc::new(Shared::new(tls, app, spec, report_refused));
    let accepted = |(stream, peer): (TcpStream, SocketAddr)| {
        let (shared, table) = (shared.clone(), table.clone());
        let arrival = table.arrival();
        tokio::spawn(async move {
            let admitted = table.admit(peer.ip()).await;
            drop(arrival);
            if let Ok(slot) = admitted {
                shared.connection(stream, peer, slot).await;
            }
        });
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            next = listener.accept() => match next {
                Ok(pair) => accepted(pair),
                Err(e) => {
                    // Out of file descriptors, typically: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    // Connections the kernel completed but the loop has not taken yet would be reset when
    // the socket closes, after their clients believed them open: take them, to be served.
    // Through the socket itself, not tokio's readiness, which may not know of them yet.
    if let Ok(listener) = listener.into_std() {
        while let Ok((stream, peer)) = listener.accept() {
            match stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream))
            {
                Ok(stream) => accepted((stream, peer)),
                Err(e) => tracing::debug!(%peer, error = %e, "a last connection was lost"),
            }
        }
    }
    tracing::info!(listener = name, "stopped accepting connections");
    shared.stopping.store(true, Ordering::Release);
    table.close_all();
    if tokio::time::timeout(grace, table.drained()).await.is_ok() {
        tracing::info!(listener = name, "all requests finished");
        return;
    }
    // Count what is in flight, then cut it, and give the connections a moment to go.
    tracing::warn!(
        listener = name,
        requests = table.in_flight(),
        connections = table.open(),
        "requests cut at the shutdown deadline"
    );
    shared.cut.send_replace(true);
    let _ = tokio::time::timeout(IDLE_DRAIN, table.drained()).await;
}

/// Resolves once `activity` is asked to close by eviction (not by shutdown: see
/// [`Shared::must_close`]).
async fn evicted(activity: &Activity, shared: &Shared) {
    loop {
        let changed = activity.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if activity.is_closing() && !shared.is_stopping() {
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
            cut: tokio::sync::watch::Sender::new(false),
            report_refused,
        }
    }

    fn asked(&self) -> Close {
        if self.is_stopping() {
            Close::Shutdown
        } else {
            Close::Evicted
        }
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Whether a connection asked to close must close now. At shutdown, one over HTTP/1.1
    /// that has not sent its first request is the exception: its client believes it is
    /// connected and may be sending that request already, so it is served that one
    /// request (answered with `Connection: close`) within its usual deadlines, instead of
    /// being closed under a request the client would have to guess it may retry. Over
    /// HTTP/2 the GOAWAY tells the client which streams were not processed, so a fresh
    /// connection is closed at once. A connection still in its TLS handshake is let finish
    /// it (within `handshake_timeout`) for the same reason.
    fn must_close(&self, activity: &Activity, http1: bool) -> bool {
        activity.is_closing() && !(http1 && self.is_stopping() && activity.requests() == 0)
    }

    /// One connection, from its TLS handshake until it closes.
    ///
    /// The handshake and hyper's connection are boxed, so that the task of an idle
    /// connection holds neither (the task's future is as large as its largest state, for
    /// the connection's whole life), and an idle HTTP/1.1 connection is parked (see
    /// [`super::park`]).
    async fn connection(&self, mut stream: TcpStream, mut peer: SocketAddr, slot: Slot) {
        let name = self.spec.name;
        let activity = slot.activity().clone();
        // Small responses and RPC frames should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        if self.spec.limits.proxy_protocol && self.spec.limits.exempts(peer.ip()) {
            let header = tokio::time::timeout(
                self.spec.limits.handshake_timeout,
                proxy_protocol::read_header(&mut stream),
            );
            match header.await {
                Ok(Ok(client)) => peer = client.unwrap_or(peer),
                Ok(Err(bad)) => {
                    tracing::debug!(%peer, reason = bad.label(), "PROXY header refused");
                    crate::metrics::tls_handshake_failure(name, bad.label());
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "PROXY header timed out");
                    crate::metrics::tls_handshake_failure(name, "timeout");
                    return;
                }
            }
        }
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
            () = evicted(&activity, self) => {
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
            #[cfg(test)]
            tests::count(peer, |c| c.built += 1);
            let mut conn = Box::pin(http1.serve_connection(TokioIo::new(io), service));
            let idle = limits.keep_alive_timeout;
            match self
                .drive(conn.as_mut(), activity, idle, peer, aged, Some(quiet))
                .await
            {
                Driven::Ended => return,
                Driven::Settled => {
                    #[cfg(test)]
                    tests::count(peer, |c| c.parked += 1);
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
        // hyper's header-read timer would have run during the wait too.
        let idle = limits.keep_alive_timeout.min(limits.header_read_timeout);
        let close = loop {
            let changed = activity.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.must_close(activity, true) {
                break self.asked();
            }
            let (due, sleep) = first_of([self.idle_until(activity, idle), aged]);
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
                () = sleep, if due => {
                    if let Some(close) = self.passed(activity, idle, aged) {
                        break close;
                    }
                }
            }
        };
        self.closing(peer, close);
        let _ = tokio::time::timeout(IDLE_DRAIN, io.shutdown()).await;
        None
    }

    /// When an idle HTTP/1.1 connection is due to be parked: [`PARK_AFTER`] after its last
    /// response; `None` while a request is in flight.
    fn park_at(activity: &Activity) -> Option<Instant> {
        activity
            .idle_since()
            .map(|since| Instant::from_std(since + PARK_AFTER))
    }

    /// Why an idle connection is closed: it never began a request, or it went quiet after one.
    fn idle_close(activity: &Activity) -> Close {
        if activity.requests() == 0 {
            Close::FirstRequest
        } else {
            Close::Idle
        }
    }

    /// When an idle connection is due to close: `header_read_timeout` after its handshake
    /// if it has served nothing yet, else `idle` after its last response; `None` while busy.
    fn idle_until(&self, activity: &Activity, idle: Duration) -> Option<Instant> {
        activity
            .idle_deadline(self.spec.limits.header_read_timeout, idle)
            .map(Instant::from_std)
    }

    /// The deadline that has passed, if any: the maximum age `aged`, then idleness.
    fn passed(&self, activity: &Activity, idle: Duration, aged: Option<Instant>) -> Option<Close> {
        let now = Instant::now();
        if aged.is_some_and(|at| now >= at) {
            return Some(Close::Age);
        }
        self.idle_until(activity, idle)
            .is_some_and(|at| now >= at)
            .then(|| Self::idle_close(activity))
    }

    /// Counts and logs the server's close of a connection.
    fn closing(&self, peer: SocketAddr, close: Close) {
        crate::metrics::connection_closed(self.spec.name, close.label());
        tracing::debug!(%peer, reason = close.label(), "closing connection");
    }

    /// Serves `conn` until it ends by itself or one of its deadlines passes: no first
    /// request within `header_read_timeout`, idle for `idle`, its maximum age `aged`, or a
    /// request to close (eviction, shutdown). Then shuts it down gracefully (HTTP/2: GOAWAY)
    /// and drops it once it has drained, or its drain time is up. With `park` (HTTP/1.1),
    /// it returns [`Driven::Settled`] instead once the connection has been idle for
    /// [`PARK_AFTER`] and hyper may be taken apart.
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
            if self.must_close(activity, park.is_some()) {
                break self.asked();
            }
            // An idle HTTP/1.1 connection wakes up to be parked once it has been idle for
            // PARK_AFTER. Once that moment has passed it is no longer a deadline: hyper is
            // then taken apart the next time it returns `Pending` settled (for instance once
            // its last write is flushed), which happens only when something wakes it.
            let park_at = park
                .and_then(|_| Self::park_at(activity))
                .filter(|at| *at > Instant::now());
            let (due, sleep) = first_of([self.idle_until(activity, idle), aged, park_at]);
            // Whether hyper may be taken apart, asked afresh at every poll: a request may
            // have begun and ended since `park_at` was worked out.
            let parkable = || {
                park.is_some_and(|quiet| quiet.settled(activity))
                    && Self::park_at(activity).is_some_and(|at| Instant::now() >= at)
            };
            let served = std::future::poll_fn(|cx| match conn.as_mut().poll(cx) {
                Poll::Ready(ended) => Poll::Ready(Some(ended)),
                Poll::Pending if parkable() => Poll::Ready(None),
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
                () = sleep, if due => {
                    if let Some(close) = self.passed(activity, idle, aged) {
                        break close;
                    }
                }
            }
        };
        self.closing(peer, close);
        conn.as_mut().graceful_shutdown();
        let drain = match close {
            Close::Shutdown => {
                // Until the listener cuts it at the deadline; the timer is only a backstop.
                let mut cut = self.cut.subscribe();
                let finished = async {
                    tokio::select! {
                        _ = conn => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                };
                let _ = tokio::time::timeout(limits.shutdown_grace + IDLE_DRAIN, finished).await;
                return Driven::Ended;
            }
            Close::Age => limits.age_grace,
            Close::FirstRequest | Close::Idle | Close::Evicted => IDLE_DRAIN,
        };
        let _ = tokio::time::timeout(drain, conn).await;
        Driven::Ended
    }
}

/// A timer for the earliest of `deadlines`, and whether there is one (without one, the
/// timer is a day away and is not to be polled).
fn first_of<const N: usize>(deadlines: [Option<Instant>; N]) -> (bool, tokio::time::Sleep) {
    let first = deadlines.into_iter().flatten().min();
    let at = first.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
    (first.is_some(), tokio::time::sleep_until(at))
}

/// What serves the requests of one connection: the app, with the peer's address,
/// certificates and certificate name attached to every request, the connection kept busy
/// until each response has been sent, and (HTTP/1.1) the request bodies watched for
/// [`Quiet`].
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportLimits;
    use axum::body::Bytes;
    use axum::routing::{get, post};
    use std::collections::HashMap;
    use std::sync::Mutex;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream as ClientTls;

    /// What happened to one HTTP/1.1 connection's hyper, by the client's address.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Counts {
        /// hyper connections built (the first request's, and one after each park).
        pub(super) built: u32,
        /// Times hyper was taken apart and the connection parked.
        pub(super) parked: u32,
    }

    /// By peer address, so that tests running at the same time do not see each other's.
    static COUNTS: Mutex<Option<HashMap<SocketAddr, Counts>>> = Mutex::new(None);

    pub(super) fn count(peer: SocketAddr, f: impl FnOnce(&mut Counts)) {
        let mut counts = COUNTS.lock().unwrap();
        f(counts.get_or_insert_default().entry(peer).or_default());
    }

    fn counts(peer: SocketAddr) -> Counts {
        let mut counts = COUNTS.lock().unwrap();
        *counts.get_or_insert_default().entry(peer).or_default()
    }

    /// A listener on 127.0.0.1 with a self-signed certificate, and a client config trusting it.
    async fn listen() -> (SocketAddr, TlsConnector) {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = key.cert.der().clone();
        let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()),
        );
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], private)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/echo", post(|body: Bytes| async move { body }));
        let spec = ListenerSpec {
            name: "rest",
            protocol: Protocol::Http,
            limits: TransportLimits::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            Arc::new(server),
            app,
            spec,
            std::future::pending(),
        ));
        (addr, TlsConnector::from(Arc::new(client)))
    }

    /// Reads one response and returns its body.
    async fn response(tls: &mut ClientTls<TcpStream>, pending: &mut Vec<u8>) -> String {
        loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(pending[..end].to_vec()).unwrap();
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .unwrap()
                    .parse()
                    .unwrap();
                if pending.len() >= end + 4 + length {
                    let body =
                        String::from_utf8(pending[end + 4..end + 4 + length].to_vec()).unwrap();
                    pending.drain(..end + 4 + length);
                    return body;
                }
            }
            let mut buf = [0u8; 4096];
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed by the server");
            pending.extend_from_slice(&buf[..n]);
        }
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n";

    /// Parking must cost a busy client nothing (no new hyper between back-to-back
    /// requests) and lose nothing for an idle one (requests after a park, pipelined or
    /// with a late body, are served as before).
    #[tokio::test]
    async fn a_busy_connection_keeps_its_hyper_and_an_idle_one_is_parked_and_still_served() {
        let (addr, connector) = listen().await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let peer = tcp.local_addr().unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let mut pending = Vec::new();

        // Back to back: one hyper for all of them.
        for _ in 0..20 {
            tls.write_all(GET).await.unwrap();
            assert_eq!(response(&mut tls, &mut pending).await, "ok");
        }
        assert_eq!(
            counts(peer),
            Counts {
                built: 1,
                parked: 0
            }
        );

        // Idle past the delay: parked.
        tokio::time::sleep(PARK_AFTER + Duration::from_millis(300)).await;
        assert_eq!(
            counts(peer),
            Counts {
                built: 1,
                parked: 1
            }
        );

        // Two requests in one write: one new hyper serves both, the second from what it
        // read ahead.
        tls.write_all(&[GET, GET].concat()).await.unwrap();
        assert_eq!(response(&mut tls, &mut pending).await, "ok");
        assert_eq!(response(&mut tls, &mut pending).await, "ok");
        assert_eq!(
            counts(peer),
            Counts {
                built: 2,
                parked: 1
            }
        );

        // Parked again; then a request whose body comes after its head.
        tokio::time::sleep(PARK_AFTER + Duration::from_millis(300)).await;
        assert_eq!(
            counts(peer),
            Counts {
                built: 2,
                parked: 2
            }
        );
        tls.write_all(b"POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5\r\n\r\n")
            .await
            .unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        tls.write_all(b"hello").await.unwrap();
        assert_eq!(response(&mut tls, &mut pending).await, "hello");
        assert_eq!(
            counts(peer),
            Counts {
                built: 3,
                parked: 2
            }
        );

        // Taken apart with the second of two pipelined requests half sent: what hyper had
        // read of it goes at once to a new hyper, which waits for the rest.
        tls.write_all(&[GET, &GET[..7]].concat()).await.unwrap();
        assert_eq!(response(&mut tls, &mut pending).await, "ok");
        tokio::time::sleep(PARK_AFTER + Duration::from_millis(300)).await;
        assert_eq!(
            counts(peer),
            Counts {
                built: 4,
                parked: 3
            }
        );
        tls.write_all(&GET[7..]).await.unwrap();
        assert_eq!(response(&mut tls, &mut pending).await, "ok");
        assert_eq!(
            counts(peer),
            Counts {
                built: 4,
                parked: 3
            }
        );
        assert!(pending.is_empty());
    }
}
