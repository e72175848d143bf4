//! Why a console login through the issuer did not happen. Each refusal has a short, fixed
//! reason for the audit trail and the logs: never a code, a token or a claim value, so that
//! recording a refusal never records a secret or something an attacker chose.

/// A refused or impossible authorization code login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum LoginRefusal {
    /// The `state` returned to the callback is not the one of the browser's pending login:
    /// a forged or crossed callback (login CSRF). No request is made to the issuer.
    StateMismatch,
    /// The callback's redirect URI is not the one the login began with.
    RedirectMismatch,
    /// The stored pending login could not be read back (changed or truncated).
    PendingUnreadable,
    /// The issuer's token endpoint refused the code: used already, expired, issued to another
    /// client, for another redirect URI, or the PKCE verifier does not match. The reason
    /// names the OAuth error code.
    CodeRefused(&'static str),
    /// The token response held no ID token (the issuer did not treat this as OpenID Connect).
    NoIdToken,
    /// The ID token failed a check (signature, algorithm, `typ`, `iss`, `aud`, `azp`, times,
    /// `sub`); the reason names which.
    IdToken(&'static str),
    /// The ID token's `nonce` is not the pending login's: a token of another login.
    NonceMismatch,
    /// The verified identity maps to no account this issuer may log in (not linked, no
    /// usable username to provision).
    Account(&'static str),
    /// The issuer (or the account store) could not be asked or gave no usable answer; the
    /// login may work later. The reason names what failed; details go to the log.
    Unavailable(&'static str),
}

impl LoginRefusal {
    /// The short reason for the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::StateMismatch => "state does not match",
            Self::RedirectMismatch => "redirect URI does not match",
            Self::PendingUnreadable => "pending login unreadable",
            Self::CodeRefused(reason)
            | Self::IdToken(reason)
            | Self::Account(reason)
            | Self::Unavailable(reason) => reason,
            Self::NoIdToken => "no ID token in the token response",
            Self::NonceMismatch => "nonce does not match",
        }
    }

    /// Whether the refusal is a failure of the issuer or of this server rather than of the
    /// login (the console answers 503 rather than 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// The audit reason for an OAuth error code of the token endpoint (RFC 6749 §5.2).
pub(crate) fn token_error(code: &str) -> &'static str {
    match code {
        "invalid_grant" => "code refused by the issuer: invalid_grant",
        "invalid_client" => "code refused by the issuer: invalid_client",
        "unauthorized_client" => "code refused by the issuer: unauthorized_client",
        "invalid_request" => "code refused by the issuer: invalid_request",
        "unsupported_grant_type" => "code refused by the issuer: unsupported_grant_type",
        "invalid_scope" => "code refused by the issuer: invalid_scope",
        _ => "code refused by the issuer",
    }
}
