//! `[auth]`: password hashing cost and concurrency, the verification cache and
//! self-registration, kept together because they trade login cost against guessing cost;
//! and the identity providers beyond the local password table: which source checks Basic
//! passwords, the LDAP directory (`[auth.ldap]`) and the OpenID Connect issuers
//! (`[[auth.oidc]]`), whose own settings are documented where they are checked.

use natterjack_core::auth::{HashingParams, PasswordSource};
use natterjack_federation::ldap::LdapSettings;
use natterjack_federation::oidc::IssuerSettings;
use serde::Deserialize;

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether anonymous clients may create accounts with `POST /users`. Default true; always
    /// off when a directory checks passwords (`passwords` other than `local`), since a name
    /// registered here first would squat a directory user's name.
    pub self_registration: bool,
    /// Argon2id cost; refused below the OWASP minimum.
    pub argon2: HashingParams,
    /// Password hashes computed at once; more wait, then get 503. Default 4.
    pub max_concurrent_hashes: usize,
    /// How long a login may wait for a hashing slot, in milliseconds. Default 1000.
    pub hash_queue_wait_ms: u64,
    /// How long a successful verification is remembered, in seconds; 0 switches the cache
    /// off. Default 60.
    pub cache_ttl_secs: u64,
    /// Entries in the verification cache. Default 10000.
    pub cache_capacity: usize,
    /// Which source checks Basic passwords: `local` (default), `directory` (only
    /// `[auth.ldap]`), or `local-then-directory` (a user with a local password is checked
    /// locally only; every other name goes to the directory).
    pub passwords: PasswordSource,
    /// The LDAP directory Basic passwords are bound against (see `natterjack_federation::ldap`).
    pub ldap: Option<LdapSettings>,
    /// Trusted OpenID Connect issuers, one `[[auth.oidc]]` table each (see
    /// `natterjack_federation::oidc::IssuerSettings`).
    pub oidc: Vec<IssuerSettings>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            self_registration: true,
            argon2: HashingParams::default(),
            max_concurrent_hashes: 4,
            hash_queue_wait_ms: 1000,
            cache_ttl_secs: 60,
            cache_capacity: 10_000,
            passwords: PasswordSource::Local,
            ldap: None,
            oidc: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// A directory and the password source that uses it go together.
    pub(super) fn check_sources(&self) -> Result<(), String> {
        match (self.passwords, &self.ldap) {
            (PasswordSource::Local, Some(_)) => Err(
                "auth.ldap is set but auth.passwords is \"local\": set auth.passwords to \"directory\" or \"local-then-directory\""
                    .into(),
            ),
            (PasswordSource::Directory | PasswordSource::LocalThenDirectory, None) => Err(
                "auth.passwords names the directory, but there is no [auth.ldap] section".into(),
            ),
            _ => Ok(()),
        }
    }

    /// Settings that must be at least 1, by name.
    pub(super) fn positive(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "auth.max_concurrent_hashes",
                self.max_concurrent_hashes as u64,
            ),
            ("auth.cache_capacity", self.cache_capacity as u64),
        ]
    }
}
