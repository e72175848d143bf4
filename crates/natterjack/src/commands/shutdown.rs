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

/// Waits for a signal of `signals`, drains for `drain`, then moves `lifecycle` to stopping
/// and tells the listeners through `stop`.
pub(super) async fn sequence(
    mut signals: Signals,
    lifecycle: Lifecycle,
    drain: Duration,
    stop: tokio::sync::watch::Sender<bool>,
) {
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

/// SIGTERM and SIGINT, as one stream. The handlers are registered when this is made, which
/// `serve` does before it announces its listeners: a signal that came between the
/// announcement and the registration would end the process at once, without a drain.
pub(super) struct Signals {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Registers the handlers; without them (an error the system should never give), a
    /// signal ends the process at once, as it would without `serve` handling it.
    pub(super) fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let handlers = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .map_err(|e| tracing::warn!(error = %e, "cannot handle SIGTERM and SIGINT"))
                .ok();
            Self { handlers }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves at the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        #[cfg(unix)]
        match self.handlers.as_mut() {
            Some((term, interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = interrupt.recv() => {},
                }
            }
            None => std::future::pending().await,
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
