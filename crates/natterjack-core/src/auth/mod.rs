//! Password authentication: Argon2id hashing with bounded concurrency, a verification cache,
//! and a login path that does the same work for unknown users as for wrong passwords.

mod authenticator;
mod cache;
mod hashing;

pub use authenticator::{Authenticator, Login, PendingVerification, Turn};
pub use cache::VerificationCache;
pub use hashing::{HashingParams, PasswordHashing};
