//! The storage port of browser sessions. Sessions live in the database, beside the users
//! they belong to, so that every node of a deployment sees the same ones and a revocation
//! by the operator CLI takes effect on the next request, wherever it lands.

use super::token::SessionKey;
use crate::domain::{Timestamp, UserId};
use crate::ports::{StoreError, UserRecord};
use async_trait::async_trait;
use secrecy::SecretString;

/// A session being opened.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The hash of its token.
    pub key: SessionKey,
    /// Whose it is.
    pub user: UserId,
    /// How its holder signed in (`password`, `saml`, `oidc`), for the operator's list.
    pub method: String,
    /// A fingerprint of the account's password hash when the session opened: a password
    /// change (by anyone, on any node, or by the CLI) makes every older session unusable.
    pub credential_mark: [u8; 16],
    /// Whether the account held the admin role then: a change of role renews the session.
    pub admin: bool,
    /// Whether the sign-on's identity provider made its holder an admin (a SAML or OpenID
    /// Connect group, an LDAP admin group) beyond the account's own role: kept for the
    /// session's life, as a bearer token keeps its claims until it expires.
    pub granted_admin: bool,
    /// When it opened; the absolute timeout counts from here.
    pub created_at: Timestamp,
    /// The address it was opened from.
    pub client_ip: String,
}

/// A stored session with the account it belongs to, as it is now.
#[derive(Debug)]
pub struct StoredSession {
    /// The hash of its token.
    pub key: SessionKey,
    /// The account, read with the session (its current password hash and role).
    pub user: UserRecord,
    /// How its holder signed in.
    pub method: String,
    /// See [`NewSession::credential_mark`].
    pub credential_mark: Vec<u8>,
    /// See [`NewSession::admin`].
    pub admin: bool,
    /// See [`NewSession::granted_admin`].
    pub granted_admin: bool,
    /// When it opened.
    pub created_at: Timestamp,
    /// When it was last used (to a minute: see `Sessions`).
    pub last_seen_at: Timestamp,
    /// The address it was opened from.
    pub client_ip: String,
}

/// Where sessions and pending sign-ons are kept.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session.
    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError>;
    /// The session with this key, joined with its account.
    async fn find_session(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError>;
    /// Records a use of the session, for the idle timeout.
    async fn touch_session(&self, key: &SessionKey, at: Timestamp) -> Result<(), StoreError>;
    /// Ends one session; false if there was none.
    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError>;
    /// Ends every session of an account; how many there were.
    async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError>;
    /// Every session, oldest first.
    async fn list_sessions(&self) -> Result<Vec<StoredSession>, StoreError>;
    /// Keeps what a pending sign-on must find again when the browser comes back (the SAML
    /// request id, or the OpenID Connect state, nonce and PKCE verifier), under the hash
    /// of the cookie that binds it to that browser, until `expires_at`; those expired by
    /// `now` go at the same time.
    async fn put_pending_login(
        &self,
        key: &SessionKey,
        kind: &str,
        state: &SecretString,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Takes a pending sign-on of `kind` out (at most once: it is deleted in the same
    /// statement), with its expiry.
    async fn take_pending_login(
        &self,
        key: &SessionKey,
        kind: &str,
    ) -> Result<Option<(SecretString, Timestamp)>, StoreError>;
}
