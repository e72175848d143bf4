//! OpenID Connect: the API as a resource server (RFC 6750 bearer tokens, JWT access tokens
//! as RFC 9068 profiles them). [`BearerLogins`] verifies a token against the issuer its
//! `iss` names, among those configured in [`IssuerSettings`], and maps the issuer and `sub`
//! to a local account.

mod keys;
mod provider;
mod settings;
mod token;
mod verify;

pub use provider::BearerLogins;
pub use settings::IssuerSettings;
