//! Identity providers outside Natterjack's own password table, each behind the core's
//! authentication port: an OpenID Connect issuer's bearer tokens ([`oidc`]) and an LDAP
//! directory's binds ([`ldap`]). Both reach their peer over rustls with the process's one
//! crypto provider ([`tls`]).

pub mod ldap;
pub mod oidc;
mod secret_file;
pub mod tls;
