//! What the pipeline refuses a request with, in no transport's terms. Each transport maps it
//! once: `rest/error.rs` to a status and problem body, `grpc/status.rs` to a gRPC status.

use natterjack_core::ServiceError;
use natterjack_core::audit::ChangesPaused;
use natterjack_core::rate::gcra;

/// Why presented credentials could not even be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// Not valid syntax for their scheme (REST answers 400: nothing was really presented).
    Malformed(&'static str),
    /// A scheme or kind this server does not take (answered like wrong credentials).
    Unsupported(&'static str),
    /// A credential sent without the proof its scheme requires for this request: a session
    /// cookie on a state change without its CSRF token, or from another site. Answered as
    /// forbidden; the cookie is not even looked up.
    Forged(&'static str),
}

impl CredentialError {
    /// The metric label and audit reason.
    pub fn reason(self) -> &'static str {
        match self {
            CredentialError::Malformed(r)
            | CredentialError::Unsupported(r)
            | CredentialError::Forged(r) => r,
        }
    }
}

/// A refusal by one of the pipeline's steps.
#[derive(Debug)]
pub enum Refusal {
    /// Step 1 (per address, per class, global) or 3 (login budgets, per principal).
    RateLimited(gcra::Refusal),
    /// Step 3: credentials that could not be tried.
    BadCredential(CredentialError),
    /// Step 3 or 4: wrong credentials, or none where the operation needs a principal.
    Unauthenticated,
    /// Step 3: a bearer token that failed a check (RFC 6750 `invalid_token`), and why.
    InvalidToken(&'static str),
    /// Step 5: state changes are paused (export backlog, low disk).
    ChangesPaused(ChangesPaused),
    /// Any step: the service refused (forbidden, invalid space id) or failed (storage down,
    /// hasher saturated, a route without a declared operation).
    Service(ServiceError),
    /// The request ran out of its time.
    TimedOut,
}

impl From<ServiceError> for Refusal {
    fn from(e: ServiceError) -> Self {
        Refusal::Service(e)
    }
}
