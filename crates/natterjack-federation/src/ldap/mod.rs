//! The LDAP adapter of the core's directory port ([`natterjack_core::auth::Directory`]):
//! Basic-auth passwords checked by search-then-bind against a directory such as OpenLDAP.
//!
//! A pooled connection bound as the service account searches the user's entry (the name
//! RFC 4515-escaped into the configured filter); the password is then checked by a bind as
//! that entry on a fresh connection, and admin rights by a search of the configured group.
//! Every connection is TLS (LDAPS or StartTLS) unless plaintext to a loopback directory was
//! explicitly allowed.

mod connection;
mod directory;
mod endpoint;
mod error;
pub mod escape;
mod filter;
mod pool;
mod search;
mod secret;
mod settings;

pub use directory::LdapDirectory;
pub use error::LdapSetupError;
pub use settings::{DEFAULT_USER_FILTER, LdapSettings, USERNAME_PLACEHOLDER};
