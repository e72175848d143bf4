//! Authentication as a port of the core: a [`Credential`] in, a
//! [`crate::principal::Principal`] or an [`AuthFailure`] out, through the
//! [`IdentityProvider`]s of [`Authentication`].
//!
//! - [`PasswordLogins`]: Argon2id with bounded concurrency ([`PasswordHashing`]), a
//!   verification cache, single-flight verification of identical credentials, a dummy hash
//!   for unknown users, and the guess budgets ([`LoginBudgets`]) counted before any hashing.
//! - [`CertificateLogins`]: the user a verified client certificate names.

mod authenticator;
mod budgets;
mod cache;
mod directory;
mod hashing;
mod identity;
mod linked;
mod password_login;

pub use authenticator::{Authenticator, Login, PendingVerification, Turn};
pub use budgets::{Guess, LoginBudgets};
pub use cache::VerificationCache;
pub use directory::{Directory, DirectoryError, DirectoryUser, PasswordSource};
pub use hashing::{HashingParams, PasswordHashing};
pub use identity::{AuthFailure, Authentication, Credential, IdentityProvider};
pub use linked::{ExternalIdentity, LinkedAccounts, Provisioning};
pub use password_login::{CertificateLogins, PasswordLogins};
