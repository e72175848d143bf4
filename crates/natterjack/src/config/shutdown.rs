//! `[shutdown]`: what `serve` does on SIGTERM or SIGINT. Its own section because it spans
//! every listener: the drain that takes the node out of its load balancer's pool, then the
//! deadline for what the listeners are still serving.

use serde::Deserialize;

/// `[shutdown]`. See docs/CONFIGURATION.md, "Shutting down".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Seconds between the signal and the moment the listeners stop accepting, during which
    /// `GET /health` answers 503 and gRPC health `NOT_SERVING` while every other request is
    /// served: long enough for a load balancer's health checks to take the node out. 0 stops
    /// accepting at once. Default 5.
    pub drain_secs: u64,
    /// Seconds granted, once the listeners stop accepting, to the requests in flight; what
    /// is still running then is cut. Default 30.
    pub timeout_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_secs: 5,
            timeout_secs: 30,
        }
    }
}

impl ShutdownConfig {
    /// Settings that must be at least 1, by name.
    pub(super) fn positive(&self) -> Vec<(&'static str, u64)> {
        vec![("shutdown.timeout_secs", self.timeout_secs)]
    }
}
