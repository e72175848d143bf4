//! The authentication schemes' syntax, shared by REST's `Authorization` header and gRPC's
//! `authorization` metadata: [`basic`] (RFC 7617) and [`bearer`] (RFC 6750). A transport
//! only parses; what a credential proves is decided by the core's identity providers.

pub mod basic;
pub mod bearer;

use basic::{CredentialsError, basic_value};
use natterjack_core::auth::Credential;

/// The credential of one `Authorization` value, Bearer or Basic.
pub fn credential(value: &str) -> Result<Credential, CredentialsError> {
    match bearer::bearer_token(value) {
        Some(Ok(token)) => Ok(Credential::Bearer { token }),
        Some(Err(())) => Err(CredentialsError::Malformed),
        None => basic_value(value).map(Credential::from),
    }
}
