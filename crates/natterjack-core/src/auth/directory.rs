//! The directory port: a password checked by binding to an external directory (LDAP)
//! instead of against a local Argon2id hash. The adapter lives outside the core; the core
//! decides which users go to the directory, counts the guesses, caches successful binds
//! and maps directory users to local accounts.

use crate::domain::Username;
use async_trait::async_trait;
use secrecy::SecretString;

/// A directory user whose password the directory just accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The entry's distinguished name, for the server log (never an account key: entries
    /// move, names stay).
    pub dn: String,
    /// Whether the directory makes this user an admin (member of the configured group).
    pub admin: bool,
}

/// Why a directory did not accept a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryError {
    /// No such user, or a wrong password: one answer for both, as for local passwords.
    Wrong,
    /// The directory could not be asked (down, timed out, TLS failure, the service account
    /// refused). Never answered as a wrong password, and never a reason to ask another
    /// source instead. The detail is for the server log only.
    Unavailable(String),
}

/// Verifies passwords by a bind to an external directory.
///
/// Implementations search the user's entry with a service account, then bind as that entry
/// with the password (search-then-bind); an unknown user costs a bind as well (to a name
/// that cannot exist), so the directory's answer time does not tell an unknown user from a
/// wrong password. The core has already refused an empty password, a password with a NUL
/// byte and a name outside the username allow list: those never reach a directory.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The name links to local accounts are recorded under, e.g. `ldap://host:389`. It
    /// must stay the same across restarts, or directory users get fresh local accounts.
    fn source(&self) -> &str;

    /// Checks `password` for `username` by a bind.
    async fn bind(
        &self,
        username: &Username,
        password: &SecretString,
    ) -> Result<DirectoryUser, DirectoryError>;
}

/// Which source checks a Basic password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordSource {
    /// Only local Argon2id hashes (the default; no directory configured).
    #[default]
    Local,
    /// Only the directory: local password hashes are never consulted.
    Directory,
    /// A user with a local password is checked locally and never against the directory
    /// (so a directory entry cannot take over a local account); every other name goes to
    /// the directory.
    LocalThenDirectory,
}
