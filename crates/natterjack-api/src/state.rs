use crate::lifecycle::Lifecycle;
use crate::pipeline::rate_limit::RateLimits;
use natterjack_core::audit::AuditLog;
use natterjack_core::auth::{Authentication, IdentityProvider};
use natterjack_core::clock::SharedClock;
use natterjack_core::service::Service;
use std::sync::Arc;

/// What every request handler and pipeline step shares: the one service layer, the
/// identity providers, the rate-limit policies, the audit log and the process's phase.
#[derive(Clone)]
pub struct AppState {
    /// The service layer, shared with the other transports.
    pub service: Arc<Service>,
    /// The identity providers every transport authenticates through.
    pub authentication: Arc<Authentication>,
    /// The rate-limit policies of this process.
    pub limits: Arc<RateLimits>,
    /// The audit log writer.
    pub audit: Arc<AuditLog>,
    /// The clock every step reads (records' times and durations).
    pub clock: SharedClock,
    /// Serving, draining or stopping: what the health answers report, and when watch
    /// streams end (`serve` moves it on SIGTERM).
    pub lifecycle: Lifecycle,
}

impl AppState {
    /// The state of one process: authentication is the service's own providers, with
    /// guesses counted against the login budgets of `limits`.
    pub fn new(
        service: Arc<Service>,
        limits: Arc<RateLimits>,
        audit: Arc<AuditLog>,
        clock: SharedClock,
    ) -> Self {
        let authentication = Arc::new(service.authentication(limits.login_budgets()));
        Self {
            service,
            authentication,
            limits,
            audit,
            clock,
            lifecycle: Lifecycle::default(),
        }
    }

    /// The same state with one more identity provider (an OpenID Connect issuer's tokens),
    /// asked after the service's own.
    #[must_use]
    pub fn with_provider(mut self, provider: Arc<dyn IdentityProvider>) -> Self {
        self.authentication = Arc::new((*self.authentication).clone().with(provider));
        self
    }
}
