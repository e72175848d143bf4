//! OpenID Connect: the API as a resource server (RFC 6750 bearer tokens, JWT access tokens
//! as RFC 9068 profiles them), and the web console as a client logging people in with the
//! authorization code flow. [`BearerLogins`] verifies a token against the issuer its `iss`
//! names, among those configured in [`IssuerSettings`], and maps the issuer and `sub` to a
//! local account; [`CodeFlow`] (configured by [`ConsoleOidcSettings`]) logs a browser in
//! through one of those issuers, mapping its ID token to an account by the same rule.

mod client_settings;
mod code_flow;
mod id_token;
mod keys;
mod pending;
mod provider;
mod refusal;
mod settings;
mod token;
mod verify;

pub use client_settings::{ConsoleClient, ConsoleOidcSettings};
pub use code_flow::CodeFlow;
pub use pending::PendingLogin;
pub use provider::BearerLogins;
pub use refusal::LoginRefusal;
pub use settings::IssuerSettings;
