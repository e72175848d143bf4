//! Whether a connection is serving a request, and since when it has been idle.
//!
//! A request counts from the moment its head is complete (hyper calls the service) until
//! its response body has been sent or dropped, so a long response (a gRPC watch stream)
//! keeps its connection busy, and a slowly sent request head does not.

use axum::body::{Body, Bytes, HttpBody};
use natterjack_core::clock::{Clock, SystemClock};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The shared state of one open connection: read by its driver (deadlines) and by the
/// connection table (whom to evict), written by its requests.
#[derive(Debug)]
pub struct Activity {
    client: IpAddr,
    epoch: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Nanoseconds from `epoch` to the moment the connection last became idle.
    idle_since: AtomicU64,
    closing: AtomicBool,
    changed: Notify,
}

impl Activity {
    /// A connection from `client`, idle from now.
    pub(crate) fn new(client: IpAddr) -> Self {
        Self {
            client,
            epoch: SystemClock.now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// The client address (as keyed by the per-client cap).
    pub(crate) fn client(&self) -> IpAddr {
        self.client
    }

    fn nanos_now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Marks a request as begun; the connection is busy until the guard is dropped. The
    /// driver is not woken: a deadline that passes while a request is in flight is checked
    /// again and found not due, so only the end of the last request needs to wake it.
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Starts the idle clock again, at the end of the TLS handshake: the first request head
    /// is due `header_read_timeout` after it, not after the connection was admitted.
    pub(crate) fn handshake_done(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            self.idle_since.store(self.nanos_now(), Ordering::Release);
        }
    }

    /// Requests in flight on this connection now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Requests begun on this connection so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Since when the connection has been idle, or `None` while a request is in flight.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.epoch + Duration::from_nanos(self.idle_since.load(Ordering::Acquire)))
    }

    /// When an idle connection is due to be closed: `first_request` after acceptance if it
    /// has served nothing yet, else `idle` after its last response; `None` while busy.
    pub(crate) fn idle_deadline(&self, first_request: Duration, idle: Duration) -> Option<Instant> {
        let since = self.idle_since()?;
        Some(
            since
                + if self.requests() == 0 {
                    first_request
                } else {
                    idle
                },
        )
    }

    /// What is left of `header_read` for the next request head. hyper runs its header-read
    /// timer from the moment an HTTP/1.1 connection waits for a head, that is from the
    /// moment it became idle; a hyper connection built later, for a connection that was
    /// parked in between, gets only the rest. All of it while a request is in flight.
    pub(crate) fn head_time_left(&self, header_read: Duration) -> Duration {
        self.idle_since().map_or(header_read, |since| {
            (since + header_read).saturating_duration_since(SystemClock.now())
        })
    }

    /// Asks the connection's driver to close it (eviction or shutdown).
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Whether the connection was asked to close.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Resolves at the next change the driver must act on: the last request in flight
    /// finished, or a request to close.
    /// Register (`enable`) before reading the state, so that no change is missed.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

/// Holds its connection busy; dropped when the response has been sent (or abandoned).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        // Stamp the time first: a reader that sees no request in flight must also see when
        // the connection became idle.
        activity
            .idle_since
            .store(activity.nanos_now(), Ordering::Release);
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity.changed.notify_waiters();
        }
    }
}

/// A response body that keeps its connection busy until it is finished or dropped.
pub(crate) struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl Tracked {
    /// Wraps `inner`, holding `busy` for as long as it lives.
    pub(crate) fn new(inner: Body, busy: Busy) -> Self {
        Self { inner, _busy: busy }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_connection_is_idle_from_its_handshake_until_a_request_begins_and_again_once_its_response_is_gone()
     {
        let activity = Arc::new(Activity::new(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let first = Duration::from_secs(10);
        let idle = Duration::from_secs(75);
        let admitted = activity.idle_since().unwrap();
        assert_eq!(activity.idle_deadline(first, idle), Some(admitted + first));
        std::thread::sleep(Duration::from_millis(2));
        activity.handshake_done();
        let accepted = activity.idle_since().unwrap();
        assert!(
            accepted > admitted,
            "the clock restarts after the handshake"
        );
        assert_eq!(activity.idle_deadline(first, idle), Some(accepted + first));
        let busy = activity.begin();
        let second = activity.begin();
        assert_eq!(activity.idle_deadline(first, idle), None);
        drop(busy);
        assert_eq!(
            activity.idle_deadline(first, idle),
            None,
            "one request still in flight"
        );
        drop(second);
        let since = activity.idle_since().unwrap();
        assert!(since >= accepted);
        assert_eq!(activity.idle_deadline(first, idle), Some(since + idle));
        assert_eq!(activity.requests(), 2);
    }

    #[tokio::test]
    async fn the_driver_is_woken_when_the_last_request_ends_and_when_asked_to_close() {
        let activity = Arc::new(Activity::new(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let busy = activity.begin();
        let changed = activity.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        drop(busy);
        tokio::time::timeout(Duration::from_secs(1), changed)
            .await
            .expect("woken by the end of the request");
        let changed = activity.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        activity.close();
        tokio::time::timeout(Duration::from_secs(1), changed)
            .await
            .expect("woken by the close");
        assert!(activity.is_closing());
    }
}
