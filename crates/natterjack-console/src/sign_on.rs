//! The single sign-on port: a provider to send the browser to, and the answer it brings
//! back turned into a principal. SAML 2.0 and OpenID Connect implement it in the binary,
//! over `natterjack-federation`, so the console knows neither XML signatures nor JWTs.

use async_trait::async_trait;
use natterjack_core::principal::Principal;
use secrecy::SecretString;
use std::net::IpAddr;

/// Why a sign-on did not give a principal. The text is audited and shown; it never holds
/// an assertion, a token or a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOnRefusal {
    /// The provider's answer failed a check (signature, audience, time, replay, state...).
    Refused(&'static str),
    /// The provider or the store could not be asked.
    Unavailable(&'static str),
}

/// One single sign-on provider.
#[async_trait]
pub trait SignOn: Send + Sync {
    /// How the audit trail and the session list name logins through it (`saml`, `oidc`).
    fn kind(&self) -> &'static str;

    /// Where to send the browser, and what must be found again when it comes back (a SAML
    /// request id; an OpenID Connect state, nonce and PKCE verifier). The console keeps
    /// the second in the database under a cookie bound to the browser.
    async fn begin(&self) -> Result<(String, SecretString), SignOnRefusal>;

    /// The principal the provider's answer names: `fields` are what the browser brought
    /// back (the form of a SAML POST, the query of an OpenID Connect redirect), `kept` what
    /// [`SignOn::begin`] returned for this browser.
    async fn finish(
        &self,
        fields: &[(String, String)],
        kept: SecretString,
        from: IpAddr,
    ) -> Result<Principal, SignOnRefusal>;
}
