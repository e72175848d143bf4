use natterjack_core::service::Service;
use std::sync::Arc;

/// What every request handler and pipeline step shares: the one service layer.
#[derive(Clone)]
pub struct AppState {
    /// The service layer, shared with the other transports.
    pub service: Arc<Service>,
}
