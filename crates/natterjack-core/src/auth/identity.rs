//! The authentication port: a [`Credential`] goes in, a [`Principal`] or an [`AuthFailure`]
//! comes out. Transports only parse headers or certificates into a credential; which
//! providers verify it, and how guesses are budgeted, is decided here, once.

use crate::ServiceError;
use crate::audit::{AuthMethod, LimitedBy};
use crate::principal::Principal;
use crate::rate::gcra::Refusal;
use crate::session::SessionToken;
use async_trait::async_trait;
use secrecy::SecretString;
use std::net::IpAddr;
use std::sync::Arc;

/// What a client presented to prove who it is. Secrets stay in `secrecy` types; `Debug`
/// shows the kind and the claimed name only.
pub enum Credential {
    /// A username and password (HTTP Basic).
    Password {
        /// The name as sent, not yet parsed: an unknown or malformed name is verified
        /// against a dummy hash like any other.
        username: String,
        /// The password.
        password: SecretString,
    },
    /// The subject of a client certificate that the TLS layer has already verified against
    /// the client CA.
    Certificate {
        /// The name the certificate holds.
        name: String,
    },
    /// An OAuth 2.0 bearer token (RFC 6750): a JWT access token of an OpenID Connect issuer.
    Bearer {
        /// The token as sent; never logged, audited or shown in `Debug`.
        token: SecretString,
    },
    /// A browser session of the console: the token of its `__Host-` cookie.
    Session {
        /// The token as sent; only its hash is ever stored, logged or audited.
        token: SessionToken,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .finish_non_exhaustive(),
            Credential::Certificate { name } => {
                f.debug_struct("Certificate").field("name", name).finish()
            }
            Credential::Bearer { .. } => f.debug_struct("Bearer").finish_non_exhaustive(),
            Credential::Session { token } => f
                .debug_struct("Session")
                .field("key", &token.key())
                .finish(),
        }
    }
}

impl Credential {
    /// How the audit trail names this kind of credential.
    pub fn method(&self) -> AuthMethod {
        match self {
            Credential::Password { .. } => AuthMethod::Basic,
            Credential::Certificate { .. } => AuthMethod::Mtls,
            Credential::Bearer { .. } => AuthMethod::Bearer,
            Credential::Session { .. } => AuthMethod::Session,
        }
    }

    /// The account the credential claims, as sent (nothing for a token, whose claims mean
    /// nothing before its signature is checked).
    pub fn claimed(&self) -> &str {
        match self {
            Credential::Password { username, .. } => username,
            Credential::Certificate { name } => name,
            Credential::Bearer { .. } | Credential::Session { .. } => "",
        }
    }
}

/// Why a credential did not yield a principal. Each transport maps it once: 401 or
/// UNAUTHENTICATED, 429 or RESOURCE_EXHAUSTED, 503 or UNAVAILABLE.
#[derive(Debug)]
pub enum AuthFailure {
    /// Wrong or unknown: the same answer whatever was wrong, so nothing tells an unknown
    /// account from a wrong password.
    Wrong,
    /// Refused for a reason the audit trail may name: a bearer token that failed a check
    /// (`expired`, `wrong audience`, ...), or a verified identity that maps to no account.
    /// The token itself is never recorded.
    Refused(&'static str),
    /// A login budget refused the try before any verification work.
    Limited {
        /// The refusing policy and when to retry.
        refusal: Refusal,
        /// The policy and key, for the audit trail's coalescing.
        limited_by: LimitedBy,
    },
    /// The verifier could not answer: the hasher is saturated, storage failed, or the
    /// directory or issuer cannot be reached.
    Unavailable(ServiceError),
}

/// Something that can verify a kind of credential: the local password store (or a directory
/// bind), the client certificate check, an OpenID Connect issuer's tokens. Transports only
/// parse a credential; no transport changes when a provider is added.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// Verifies `credential` presented from `from`, or `None` when this provider does not
    /// handle its kind, so that the next one is asked.
    async fn identify(
        &self,
        credential: &Credential,
        from: IpAddr,
    ) -> Option<Result<Principal, AuthFailure>>;
}

/// The providers of one process, asked in order; a credential that none handles is
/// [`AuthFailure::Wrong`].
#[derive(Clone, Default)]
pub struct Authentication {
    providers: Vec<Arc<dyn IdentityProvider>>,
}

impl Authentication {
    /// Authentication by these providers, asked in this order.
    pub fn new(providers: Vec<Arc<dyn IdentityProvider>>) -> Self {
        Self { providers }
    }

    /// Adds a provider, asked after those already there.
    #[must_use]
    pub fn with(mut self, provider: Arc<dyn IdentityProvider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// Verifies a credential presented from `from`.
    pub async fn authenticate(
        &self,
        credential: &Credential,
        from: IpAddr,
    ) -> Result<Principal, AuthFailure> {
        for provider in &self.providers {
            if let Some(answer) = provider.identify(credential, from).await {
                return answer;
            }
        }
        Err(AuthFailure::Wrong)
    }
}
