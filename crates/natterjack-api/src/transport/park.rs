//! Idle HTTP/1.1 connections without hyper's buffers.
//!
//! hyper keeps, for as long as an HTTP/1.1 connection lives, an 8 KiB read buffer, an 8 KiB
//! write buffer and the last response's header map (2.6 KiB for our 13 response headers):
//! about 19 KiB of the 30 KiB a kept-alive TLS connection cost in all (measured with
//! heaptrack over 10,000 idle connections, bench/load/run --only idle). Idle connections are
//! what a client holds for free, so a connection idle for a while is *parked*: once hyper
//! has sent a whole response, read the whole request body and has waited for the next
//! request head for half a second (`PARK_AFTER` in the listener), it is taken apart
//! (`into_parts`), and only the TLS stream stays. When the first byte of the next request
//! arrives, a new hyper connection is built over the same stream, with what was already
//! read put back in front of it ([`Resumable`]). A busy connection, whose next request
//! comes sooner, keeps its hyper: building one for every request would cost each of them
//! new buffers, a new header map and a new dispatcher.
//!
//! Nothing a client sees changes: hyper is only taken apart with nothing left to write
//! (its last write flushed, no shutdown begun) and nothing half read (the request body read
//! to its end); the bytes it had read ahead come back first; and the listener keeps the
//! deadlines hyper would have kept (the header-read timeout runs from the end of the last
//! response, parked or not).

use super::activity::Activity;
use axum::body::{Body, Bytes, HttpBody};
use hyper::body::{Frame, Incoming, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one HTTP/1.1 connection's hyper has left to do, as seen from its I/O and its
/// request bodies: whether it may be taken apart now without losing anything.
#[derive(Debug, Default)]
pub(crate) struct Quiet {
    /// A write since the last successful flush.
    unflushed: AtomicBool,
    /// hyper began shutting the stream down (a response with `connection: close`).
    shutting: AtomicBool,
    /// The current request's body has not been read to its end.
    body_open: AtomicBool,
    /// Requests begun when the current hyper connection was built.
    requests_at_build: AtomicU64,
}

impl Quiet {
    /// A new hyper connection is built now, when `activity` has seen `requests` requests.
    pub(crate) fn built(&self, requests: u64) {
        self.requests_at_build.store(requests, Ordering::Relaxed);
    }

    /// Whether hyper, having just returned `Pending`, may be taken apart: it served a
    /// request since it was built (so whatever it read before that is not a head it is
    /// still waiting on), no request is in flight, the whole body of the last one was read,
    /// and everything it wrote was flushed.
    pub(crate) fn settled(&self, activity: &Activity) -> bool {
        activity.idle_since().is_some()
            && activity.requests() > self.requests_at_build.load(Ordering::Relaxed)
            && !self.body_open.load(Ordering::Acquire)
            && !self.unflushed.load(Ordering::Acquire)
            && !self.shutting.load(Ordering::Acquire)
    }

    /// The body of a request that begins now; read to its end, it lets the connection
    /// park again.
    pub(crate) fn request_body(self: &Arc<Self>, body: Incoming) -> Body {
        if body.is_end_stream() {
            self.body_open.store(false, Ordering::Release);
            return Body::new(body);
        }
        self.body_open.store(true, Ordering::Release);
        Body::new(ToEnd {
            inner: body,
            quiet: Some(self.clone()),
        })
    }
}

/// A request body that tells its connection's [`Quiet`] once it has been read to its end.
struct ToEnd {
    inner: Incoming,
    quiet: Option<Arc<Quiet>>,
}

impl HttpBody for ToEnd {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Ready(Some(Err(_))) | Poll::Pending => false,
        };
        if ended && let Some(quiet) = self.quiet.take() {
            quiet.body_open.store(false, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An HTTP/1.1 connection's stream, which survives its hyper connections: the bytes the
/// last one had read but not used are read again first, and its writes are watched for
/// [`Quiet`].
pub(crate) struct Resumable<S> {
    inner: S,
    replay: Bytes,
    quiet: Arc<Quiet>,
}

impl<S> Resumable<S> {
    /// Wraps `inner`, reporting to `quiet`.
    pub(crate) fn new(inner: S, quiet: Arc<Quiet>) -> Self {
        Self {
            inner,
            replay: Bytes::new(),
            quiet,
        }
    }

    /// Whether bytes wait to be read again.
    pub(crate) fn has_replay(&self) -> bool {
        !self.replay.is_empty()
    }

    /// Puts `read` back in front of the stream. Copied, so that hyper's whole read buffer,
    /// which `read` is a slice of, is freed.
    pub(crate) fn replay(&mut self, read: &[u8]) {
        self.replay = Bytes::copy_from_slice(read);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Resumable<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replay.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.replay.len().min(buf.remaining());
        buf.put_slice(&this.replay.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Resumable<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.quiet.unflushed.store(true, Ordering::Release);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.quiet.unflushed.store(true, Ordering::Release);
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.quiet.unflushed.store(false, Ordering::Release);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.quiet.shutting.store(true, Ordering::Release);
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_put_back_are_read_first_then_the_stream() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut io = Resumable::new(near, Arc::default());
        io.replay(b"GE");
        assert!(io.has_replay());
        far.write_all(b"T / HTTP/1.1\r\n").await.unwrap();
        let mut got = vec![0; 16];
        let mut n = 0;
        while n < 16 {
            n += io.read(&mut got[n..]).await.unwrap();
        }
        assert_eq!(&got, b"GET / HTTP/1.1\r\n");
        assert!(!io.has_replay());
    }

    #[tokio::test]
    async fn a_connection_is_settled_only_once_its_writes_are_flushed_and_a_request_has_ended() {
        let activity = Arc::new(Activity::new(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let quiet = Arc::new(Quiet::default());
        quiet.built(activity.requests());
        assert!(!quiet.settled(&activity), "no request yet on this hyper");
        let busy = activity.begin();
        assert!(!quiet.settled(&activity), "a request in flight");
        drop(busy);
        assert!(quiet.settled(&activity));
        let (near, _far) = tokio::io::duplex(64);
        let mut io = Resumable::new(near, quiet.clone());
        io.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        assert!(!quiet.settled(&activity), "written, not flushed");
        io.flush().await.unwrap();
        assert!(quiet.settled(&activity));
        quiet.body_open.store(true, Ordering::Release);
        assert!(
            !quiet.settled(&activity),
            "a request body not read to its end"
        );
        quiet.body_open.store(false, Ordering::Release);
        io.shutdown().await.unwrap();
        assert!(!quiet.settled(&activity), "hyper is closing the connection");
    }
}
