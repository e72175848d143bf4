//! Streams that HTTP/2 refuses over the concurrent-stream cap, counted.
//!
//! A client that opens more streams than `max_concurrent_streams` gets `RST_STREAM` with
//! `REFUSED_STREAM` for each one beyond the cap. h2 decides this while it reads the
//! `HEADERS` frame, before hyper sees a request: no service is called, and neither hyper nor
//! h2 reports it (no callback, no error, no event). So the connection's outgoing bytes are
//! watched instead: the server's side of an HTTP/2 connection is nothing but frames, and a
//! server sends `REFUSED_STREAM` only for this (h2 answers an oversized header block with
//! 431 and `PROTOCOL_ERROR`), so counting those frames counts exactly these refusals.
//!
//! Each refusal is counted in `natterjack_streams_refused_total` as it is sent. What the
//! refused stream asked for is unknown (h2 drops its header block undecoded), so it cannot
//! have a record of its own; a listener that asks for it gets one [`RefusedStreams`] per
//! connection that had any, when the connection ends (the gRPC listener writes it to the
//! audit log as a `summary`).

use futures_util::future::BoxFuture;
use natterjack_core::clock::{Clock, SystemClock};
use natterjack_core::domain::Timestamp;
use rustls::pki_types::CertificateDer;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// HTTP/2 frame type `RST_STREAM` (RFC 9113 §6.4).
const RST_STREAM: u8 = 0x3;

/// HTTP/2 error code `REFUSED_STREAM` (RFC 9113 §7).
const REFUSED_STREAM: u32 = 0x7;

/// Length of an HTTP/2 frame header.
const FRAME_HEADER: usize = 9;

/// What a listener learns of one connection whose streams were refused over the cap, when
/// that connection ends: enough for an audit record, nothing of the refused calls
/// themselves (h2 never decoded them).
#[derive(Debug, Clone)]
pub struct RefusedStreams {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// The certificates the peer presented (mutual TLS), if any.
    pub peer_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    /// How many streams were refused.
    pub count: u64,
    /// When the first and the last were refused.
    pub first: Timestamp,
    /// See `first`.
    pub last: Timestamp,
    /// The cap they were refused over (`max_concurrent_streams`).
    pub cap: u32,
}

/// Told about each connection that had streams refused, when it ends; the listener awaits
/// it before the connection's slot is released.
pub type ReportRefusedStreams = Arc<dyn Fn(RefusedStreams) -> BoxFuture<'static, ()> + Send + Sync>;

/// The refusals of one connection so far.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    count: AtomicU64,
    first_us: AtomicI64,
    last_us: AtomicI64,
}

impl Refusals {
    fn add(&self, n: u64) {
        let now = SystemClock.wall().micros();
        // Only the connection's writer adds, so the first addition also sets `first`.
        if self.count.fetch_add(n, Ordering::AcqRel) == 0 {
            self.first_us.store(now, Ordering::Release);
        }
        self.last_us.store(now, Ordering::Release);
    }

    /// The connection's summary, if any of its streams were refused.
    pub(crate) fn summary(
        &self,
        peer: SocketAddr,
        peer_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
        cap: u32,
    ) -> Option<RefusedStreams> {
        let count = self.count.load(Ordering::Acquire);
        (count > 0).then(|| RefusedStreams {
            peer,
            peer_certs,
            count,
            first: Timestamp::from_micros(self.first_us.load(Ordering::Acquire)),
            last: Timestamp::from_micros(self.last_us.load(Ordering::Acquire)),
            cap,
        })
    }
}

/// Where the reader of the outgoing frames stands.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a frame header; `have` bytes of it so far.
    Header {
        bytes: [u8; FRAME_HEADER],
        have: usize,
    },
    /// Skipping a payload; this many bytes are left.
    Skip(u32),
    /// Reading the error code of a `RST_STREAM`; `have` bytes of it so far.
    ErrorCode { bytes: [u8; 4], have: usize },
}

impl State {
    const START: State = State::Header {
        bytes: [0; FRAME_HEADER],
        have: 0,
    };
}

/// Splits the bytes a server writes into HTTP/2 frames, and counts its `RST_STREAM`
/// frames with `REFUSED_STREAM`. It reads nine header bytes per frame and skips payloads, so
/// it costs next to nothing per write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scanner {
    state: State,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            state: State::START,
        }
    }
}

impl Scanner {
    /// Reads the next `written` bytes; returns how many streams they refuse.
    pub(crate) fn feed(&mut self, mut written: &[u8]) -> u64 {
        let mut refused = 0;
        while !written.is_empty() {
            match &mut self.state {
                State::Header { bytes, have } => {
                    let take = (FRAME_HEADER - *have).min(written.len());
                    bytes[*have..*have + take].copy_from_slice(&written[..take]);
                    *have += take;
                    written = &written[take..];
                    if *have == FRAME_HEADER {
                        let length = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
                        self.state = match (bytes[3], length) {
                            (RST_STREAM, 4) => State::ErrorCode {
                                bytes: [0; 4],
                                have: 0,
                            },
                            (_, 0) => State::START,
                            (_, length) => State::Skip(length),
                        };
                    }
                }
                State::Skip(left) => {
                    let take = written.len().min(*left as usize);
                    // `take` is at most `left`, a u32.
                    *left -= u32::try_from(take).unwrap_or(*left);
                    written = &written[take..];
                    if *left == 0 {
                        self.state = State::START;
                    }
                }
                State::ErrorCode { bytes, have } => {
                    let take = (4 - *have).min(written.len());
                    bytes[*have..*have + take].copy_from_slice(&written[..take]);
                    *have += take;
                    written = &written[take..];
                    if *have == 4 {
                        if u32::from_be_bytes(*bytes) == REFUSED_STREAM {
                            refused += 1;
                        }
                        self.state = State::START;
                    }
                }
            }
        }
        refused
    }
}

/// An HTTP/2 server connection's I/O, whose outgoing frames are read for refused streams.
pub(crate) struct Watched<S> {
    inner: S,
    scanner: Scanner,
    listener: &'static str,
    refusals: Arc<Refusals>,
}

impl<S> Watched<S> {
    /// Wraps the I/O of one connection of `listener`; its refusals are added to `refusals`.
    pub(crate) fn new(inner: S, listener: &'static str, refusals: Arc<Refusals>) -> Self {
        Self {
            inner,
            scanner: Scanner::default(),
            listener,
            refusals,
        }
    }

    fn saw(&mut self, written: &[u8]) {
        let refused = self.scanner.feed(written);
        if refused > 0 {
            self.refusals.add(refused);
            crate::metrics::streams_refused(self.listener, refused);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.saw(&buf[..n.min(buf.len())]);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            let mut left = n;
            for buf in bufs {
                if left == 0 {
                    break;
                }
                let take = left.min(buf.len());
                this.saw(&buf[..take]);
                left -= take;
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut bytes = vec![length[1], length[2], length[3], kind, 0];
        bytes.extend_from_slice(&stream.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// What a server writes: SETTINGS, a refusal, a DATA frame whose payload looks like a
    /// refusal, a reset of another kind (CANCEL), a second refusal, an empty frame.
    fn conversation() -> Vec<u8> {
        let mut fake = frame(RST_STREAM, 9, &REFUSED_STREAM.to_be_bytes());
        fake.extend_from_slice(&[0; 7]);
        [
            frame(0x4, 0, &[0, 3, 0, 0, 0, 2]),
            frame(RST_STREAM, 5, &REFUSED_STREAM.to_be_bytes()),
            frame(0x0, 1, &fake),
            frame(RST_STREAM, 7, &8u32.to_be_bytes()),
            frame(RST_STREAM, 11, &REFUSED_STREAM.to_be_bytes()),
            frame(0x4, 0, &[]),
        ]
        .concat()
    }

    #[test]
    fn refused_streams_are_counted_and_nothing_else_however_the_writes_split_the_frames() {
        let bytes = conversation();
        assert_eq!(Scanner::default().feed(&bytes), 2);
        for cut in 0..=bytes.len() {
            let mut scanner = Scanner::default();
            let found = scanner.feed(&bytes[..cut]) + scanner.feed(&bytes[cut..]);
            assert_eq!(found, 2, "split at {cut}");
        }
        let mut scanner = Scanner::default();
        let one_by_one: u64 = bytes.iter().map(|b| scanner.feed(&[*b])).sum();
        assert_eq!(one_by_one, 2);
    }

    #[test]
    fn a_connection_without_refusals_has_no_summary_and_one_with_them_counts_them() {
        let refusals = Refusals::default();
        let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
        assert!(refusals.summary(peer, None, 2).is_none());
        refusals.add(1);
        refusals.add(2);
        let summary = refusals.summary(peer, None, 2).unwrap();
        assert_eq!(summary.count, 3);
        assert!(summary.first <= summary.last);
        assert_eq!(summary.cap, 2);
    }
}
