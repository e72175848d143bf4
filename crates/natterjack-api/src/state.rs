use crate::pipeline::rate_limit::RateLimits;
use natterjack_core::audit::AuditLog;
use natterjack_core::service::Service;
use std::sync::Arc;

/// What every request handler and pipeline step shares: the one service layer and the
/// rate-limit policies.
#[derive(Clone)]
pub struct AppState {
    /// The service layer, shared with the other transports.
    pub service: Arc<Service>,
    /// The rate-limit policies of this process.
    pub limits: Arc<RateLimits>,
    /// The audit log writer.
    pub audit: Arc<AuditLog>,
}
