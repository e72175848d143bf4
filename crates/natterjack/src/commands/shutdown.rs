//! The shutdown sequence of `serve`, on SIGTERM or SIGINT: drain, then stop accepting.
//!
//! A node behind a load balancer must fail its health checks before it refuses
//! connections, or the balancer keeps sending it clients that it refuses. So the signal
//! starts a drain ([`natterjack_api::lifecycle`]): `/health` answers 503 and gRPC health
//! `NOT_SERVING` for `[shutdown] drain_secs` while everything else is served. A second
//! signal during the drain cuts it short, for an operator who wants the node gone now
//! (the requests in flight still get their `timeout_secs`); later signals change nothing,
//! and SIGKILL remains. Then the listeners stop (see `serve`).

use natterjack_api::lifecycle::Lifecycle;
use std::time::Duration;

/// Waits for the signal, drains for `drain`, then moves `lifecycle` to stopping and tells
/// the listeners through `stop`.
pub(super) async fn sequence(
    lifecycle: Lifecycle,
    drain: Duration,
    stop: tokio::sync::watch::Sender<bool>,
) {
    let mut signals = Signals::new();
    signals.next().await;
    lifecycle.drain();
    tracing::info!(
        drain_secs = drain.as_secs(),
        "draining: /health reports not ready; requests are still served"
    );
    if !drain.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(drain) => {}
            () = signals.next() => tracing::info!("a second signal: the drain is cut short"),
        }
    }
    lifecycle.stop();
    let _ = stop.send(true);
}

/// SIGTERM and SIGINT, as one stream; the SIGTERM handler is registered once, so that no
/// second signal is missed between two waits.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| tracing::warn!(error = %e, "cannot handle SIGTERM"))
                .ok(),
        }
    }

    /// Resolves at the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            tokio::select! {
                _ = interrupt => {},
                _ = term.recv() => {},
            }
            return;
        }
        let _ = interrupt.await;
    }
}
