//! SAML 2.0 Web Browser SSO for the console, as a service provider of one IdP: SP-initiated,
//! the AuthnRequest over HTTP-Redirect, the response over HTTP-POST to the ACS.
//!
//! XML signatures are verified by libxmlsec1 through samael, never here: samael verifies
//! with the certificate of the IdP's metadata and hands back the assertion read from the
//! document reduced to what the signature covers. Around it this module adds what samael
//! leaves to its caller or checks loosely ([`ServiceProvider::finish`] lists the steps):
//! refusing any response that holds more than one assertion (signature wrapping), comments
//! or CDATA (the NameID truncation attack), a DTD or encryption; requiring `Destination`,
//! success status, `Conditions` and an audience naming this SP; checking every time bound
//! against the caller's clock; and one-time use ([`SeenAssertions`]).
//!
//! [`SamlLogins`] turns a verified identity into a principal through the same account
//! links as bearer tokens, under the source `saml:<IdP entity id>`.

mod checks;
mod identity;
mod logins;
mod metadata;
mod provider;
mod refusal;
mod request;
mod seen;
mod settings;
mod shape;

pub use identity::SamlIdentity;
pub use logins::{SamlLogins, external_identity, link_source};
pub use provider::{MAX_RESPONSE_BYTES, ServiceProvider};
pub use refusal::SamlRefusal;
pub use request::{RequestError, SamlRedirect};
pub use seen::{DEFAULT_CAPACITY, SeenAssertions};
pub use settings::SamlSettings;
