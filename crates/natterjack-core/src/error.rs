//! The service layer's error vocabulary, mapped to status codes once per transport.

use crate::domain::FieldError;

/// Why an operation did not happen. Every variant's text is safe to show a client: storage
/// details are logged where they occur and reduced to [`ServiceError::Internal`] or
/// [`ServiceError::Unavailable`] here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A field broke its allow list.
    #[error("invalid input: {0}")]
    Invalid(FieldError),
    /// The operation needs an authenticated caller, or the credentials were wrong.
    #[error("authentication required")]
    Unauthenticated,
    /// The caller is known but not allowed; the reason is audited and shown.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The named thing does not exist (within the space the caller may see).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// The thing to create exists already.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Too many password verifications are running; try again after the given seconds.
    #[error("busy")]
    Busy {
        /// Seconds after which a retry is reasonable.
        retry_after_secs: u32,
    },
    /// Storage cannot be reached right now.
    #[error("temporarily unavailable")]
    Unavailable,
    /// An identity provider (the directory, an OpenID Connect issuer) cannot be asked right
    /// now. Never answered as wrong credentials: the client retries, it does not re-type a
    /// password. The text names the provider kind, for the audit trail.
    #[error("identity provider unavailable: {0}")]
    ProviderUnavailable(&'static str),
    /// Something failed that the client cannot fix; details are in the server log.
    #[error("internal error")]
    Internal,
    /// A stored value did not open (encryption at rest): answered like [`Self::Internal`],
    /// but the audit record names the place and the key (never the content), so an
    /// operator can find the damaged row.
    #[error("internal error")]
    Unreadable(String),
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        ServiceError::Invalid(e)
    }
}

impl From<crate::ports::StoreError> for ServiceError {
    fn from(e: crate::ports::StoreError) -> Self {
        use crate::ports::StoreError;
        match e {
            StoreError::Conflict => ServiceError::Conflict("already exists"),
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "storage unavailable");
                ServiceError::Unavailable
            }
            StoreError::Internal(detail) => {
                tracing::error!(error = %detail, "storage failure");
                ServiceError::Internal
            }
            StoreError::Unreadable(detail) => {
                tracing::error!(error = %detail, "sealed value unreadable");
                ServiceError::Unreadable(detail)
            }
        }
    }
}
