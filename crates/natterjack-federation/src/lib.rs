//! Identity providers outside Natterjack's own password table, each behind the core's
//! authentication port: an OpenID Connect issuer's bearer tokens ([`oidc`]) and an LDAP
//! directory's binds ([`ldap`]). Both reach their peer over rustls with the process's one
//! crypto provider ([`tls`]). The console's SAML 2.0 sign-on ([`saml`]) talks to its IdP
//! only through the browser; its XML signatures are checked by libxmlsec1 (with OpenSSL,
//! for SAML alone).

pub mod ldap;
pub mod oidc;
pub mod saml;
mod secret_file;
pub mod tls;
