//! Where the process is in its life: serving, draining before a shutdown, or stopping.
//!
//! A node behind a load balancer must leave the pool before it stops accepting, or the
//! balancer keeps sending it requests that are refused. So shutdown has two phases, and
//! every part of the process that answers for the node reads them from this one place:
//!
//! - **Draining** (`[shutdown] drain_secs`): `GET /health` answers 503 and gRPC health
//!   `NOT_SERVING`, so the balancer's checks take the node out; every other request is
//!   served as usual, and HTTP/1.1 responses say `Connection: close`, so that clients
//!   reconnect (through the balancer) instead of keeping a connection that is about to go.
//! - **Stopping** (`[shutdown] timeout_secs`): the listeners accept no more connections,
//!   open ones finish what they are serving (HTTP/2: GOAWAY), and `WatchMessages` streams end
//!   with `UNAVAILABLE`, which a client knows to retry elsewhere.
//!
//! The phases only move forward.

use std::sync::Arc;
use tokio::sync::watch;

/// A phase of the process's life (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Ready: the normal state.
    Serving,
    /// Shutdown has begun: not ready, but still serving every request.
    Draining,
    /// No new connections; what is open finishes, watch streams end.
    Stopping,
}

/// The process's [`Phase`], shared by the health answers, the watch streams and `serve`,
/// which moves it.
#[derive(Debug, Clone)]
pub struct Lifecycle(Arc<watch::Sender<Phase>>);

impl Default for Lifecycle {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(Phase::Serving)))
    }
}

impl Lifecycle {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// Whether the node should receive new requests (what the health answers report).
    pub fn is_serving(&self) -> bool {
        self.phase() == Phase::Serving
    }

    /// Begins the drain (no effect once it has begun).
    pub fn drain(&self) {
        self.advance(Phase::Draining);
    }

    /// Begins stopping (no effect once it has begun).
    pub fn stop(&self) {
        self.advance(Phase::Stopping);
    }

    fn advance(&self, to: Phase) {
        self.0.send_if_modified(|phase| {
            let later = to > *phase;
            if later {
                *phase = to;
            }
            later
        });
    }

    /// Resolves once the phase is at least `phase`.
    pub async fn reached(&self, phase: Phase) {
        let mut seen = self.0.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = seen.wait_for(|now| *now >= phase).await;
    }

    /// A receiver of every change of phase, for those that report it (gRPC health).
    pub fn watch(&self) -> watch::Receiver<Phase> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_phases_only_move_forward_and_waiters_are_woken() {
        let life = Lifecycle::default();
        assert!(life.is_serving());
        let waiting = tokio::spawn({
            let life = life.clone();
            async move { life.reached(Phase::Stopping).await }
        });
        life.drain();
        assert_eq!(life.phase(), Phase::Draining);
        assert!(!life.is_serving());
        life.stop();
        life.drain();
        assert_eq!(life.phase(), Phase::Stopping);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
    }
}
