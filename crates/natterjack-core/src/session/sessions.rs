//! Opening, resuming and ending browser sessions, with their timeouts and the rules that
//! end them early: logout, a password change, a revocation by the operator, a change of
//! role (which renews the session under a new token rather than keeping the old one).

use super::port::{NewSession, SessionStore, StoredSession};
use super::token::{SessionKey, SessionToken};
use crate::ServiceError;
use crate::auth::{AuthFailure, Credential, IdentityProvider};
use crate::clock::SharedClock;
use crate::domain::{Timestamp, UserId};
use crate::ports::{Store, StoreError, UserRecord};
use crate::principal::Principal;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A session's last use is written at most this often: a page view does not cost a write,
/// and the idle timeout is kept to within this much.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Renewed tokens not yet handed to their browser: at most this many are held (the console
/// takes each one in the request that made it).
const MAX_RENEWALS: usize = 1024;

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Unused this long, a session ends.
    pub idle: Duration,
    /// This long after it opened, a session ends however busy it is.
    pub absolute: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 60 * 60),
        }
    }
}

/// Why a presented session does not authenticate; each is audited by its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// No such session (never was, logged out, or revoked by the operator).
    Unknown,
    /// Unused longer than the idle timeout.
    Idle,
    /// Older than the absolute timeout.
    Expired,
    /// The account's password changed after the session opened.
    PasswordChanged,
}

impl SessionEnd {
    /// The audit trail's reason.
    pub fn reason(self) -> &'static str {
        match self {
            SessionEnd::Unknown => "unknown or revoked session",
            SessionEnd::Idle => "session idle too long",
            SessionEnd::Expired => "session expired",
            SessionEnd::PasswordChanged => "session ended by a password change",
        }
    }
}

/// A session that was presented and holds.
#[derive(Debug)]
pub struct Resumed {
    /// Who it belongs to, with their role as it is now.
    pub principal: Principal,
    /// The key it goes by from now on (a renewed session's new key).
    pub key: SessionKey,
}

/// The sessions of one process, over the shared store.
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    users: Arc<dyn Store>,
    settings: SessionSettings,
    clock: SharedClock,
    renewals: Mutex<HashMap<SessionKey, SessionToken>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The fingerprint of a password hash that a session remembers (see
/// [`NewSession::credential_mark`]).
fn credential_mark(user: &UserRecord) -> [u8; 16] {
    let digest = Sha256::digest(user.password_hash.as_bytes());
    let mut mark = [0u8; 16];
    mark.copy_from_slice(&digest[..16]);
    mark
}

fn unavailable(e: StoreError) -> ServiceError {
    e.into()
}

impl Sessions {
    /// Sessions kept in `store`, for the accounts of `users`, lasting as `settings` say.
    pub fn new(
        store: Arc<dyn SessionStore>,
        users: Arc<dyn Store>,
        settings: SessionSettings,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            users,
            settings,
            clock,
            renewals: Mutex::new(HashMap::new()),
        }
    }

    /// How long sessions last.
    pub fn settings(&self) -> SessionSettings {
        self.settings
    }

    /// Opens a session for `principal`, who has just signed in by `method` from `from`.
    /// Always under a new token: whatever cookie the browser had before is not kept.
    pub async fn open(
        &self,
        principal: &Principal,
        method: &str,
        from: IpAddr,
    ) -> Result<(SessionToken, SessionKey), ServiceError> {
        let user = self
            .users
            .find_user(principal.username())
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let token = SessionToken::generate();
        let key = token.key();
        self.store
            .create_session(&NewSession {
                key,
                user: user.id,
                method: method.to_owned(),
                credential_mark: credential_mark(&user),
                admin: user.admin,
                granted_admin: principal.admin_access().is_some() && !user.admin,
                created_at: self.clock.wall(),
                client_ip: from.to_string(),
            })
            .await
            .map_err(unavailable)?;
        Ok((token, key))
    }

    /// The session a browser presented, if it still holds: within both timeouts, opened
    /// after the account's last password change. A session whose account changed role is
    /// renewed: it is replaced by one under a new token (same opening time, so the absolute
    /// timeout does not move), which [`Sessions::take_renewal`] hands to the browser.
    pub async fn resume(&self, token: &SessionToken) -> Result<Resumed, ResumeFailure> {
        let key = token.key();
        let session = self
            .store
            .find_session(&key)
            .await
            .map_err(|e| ResumeFailure::Unavailable(e.into()))?
            .ok_or(ResumeFailure::Ended(SessionEnd::Unknown))?;
        let now = self.clock.wall();
        if let Some(end) = self.ended(&session, now) {
            // Gone for good: removed now rather than left for the operator's list.
            let _ = self.store.delete_session(&key).await;
            return Err(ResumeFailure::Ended(end));
        }
        let principal = Principal::new(
            session.user.id,
            session.user.username.clone(),
            session.user.admin || session.granted_admin,
        );
        if session.admin != session.user.admin {
            let renewed = self.renew(&session).await?;
            return Ok(Resumed {
                principal,
                key: renewed,
            });
        }
        if elapsed(session.last_seen_at, now) >= TOUCH_EVERY {
            self.store
                .touch_session(&key, now)
                .await
                .map_err(|e| ResumeFailure::Unavailable(e.into()))?;
        }
        Ok(Resumed { principal, key })
    }

    fn ended(&self, session: &StoredSession, now: Timestamp) -> Option<SessionEnd> {
        if elapsed(session.created_at, now) >= self.settings.absolute {
            Some(SessionEnd::Expired)
        } else if elapsed(session.last_seen_at, now) >= self.settings.idle {
            Some(SessionEnd::Idle)
        } else if session.credential_mark.as_slice() != credential_mark(&session.user) {
            Some(SessionEnd::PasswordChanged)
        } else {
            None
        }
    }

    async fn renew(&self, old: &StoredSession) -> Result<SessionKey, ResumeFailure> {
        let token = SessionToken::generate();
        let key = token.key();
        self.store
            .create_session(&NewSession {
                key,
                user: old.user.id,
                method: old.method.clone(),
                credential_mark: credential_mark(&old.user),
                admin: old.user.admin,
                granted_admin: old.granted_admin,
                created_at: old.created_at,
                client_ip: old.client_ip.clone(),
            })
            .await
            .map_err(|e| ResumeFailure::Unavailable(e.into()))?;
        let _ = self.store.delete_session(&old.key).await;
        if let Ok(mut renewals) = self.renewals.lock() {
            if renewals.len() >= MAX_RENEWALS {
                renewals.clear();
            }
            renewals.insert(old.key, token);
        }
        Ok(key)
    }

    /// The new token of the session presented under `old` if resuming it renewed it, for
    /// the browser's cookie (at most once: the request that renewed it takes it).
    pub fn take_renewal(&self, old: &SessionKey) -> Option<SessionToken> {
        self.renewals.lock().ok()?.remove(old)
    }

    /// Ends the session (logout).
    pub async fn close(&self, key: &SessionKey) -> Result<bool, ServiceError> {
        self.store.delete_session(key).await.map_err(unavailable)
    }

    /// Ends every session of an account (the operator's revocation).
    pub async fn close_all_of(&self, user: UserId) -> Result<u64, ServiceError> {
        self.store
            .delete_sessions_of(user)
            .await
            .map_err(unavailable)
    }

    /// Every stored session, oldest first, for the operator.
    pub async fn list(&self) -> Result<Vec<StoredSession>, ServiceError> {
        self.store.list_sessions().await.map_err(unavailable)
    }

    /// The store, for pending sign-ons.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }
}

/// Why [`Sessions::resume`] failed.
#[derive(Debug)]
pub enum ResumeFailure {
    /// The session does not hold.
    Ended(SessionEnd),
    /// The store could not be asked.
    Unavailable(ServiceError),
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::from_micros(u64::try_from(now.micros().saturating_sub(since.micros())).unwrap_or(0))
}

/// Sessions as an identity provider: a [`Credential::Session`] becomes its principal.
pub struct SessionLogins(pub Arc<Sessions>);

#[async_trait]
impl IdentityProvider for SessionLogins {
    async fn identify(
        &self,
        credential: &Credential,
        _from: IpAddr,
    ) -> Option<Result<Principal, AuthFailure>> {
        let Credential::Session { token } = credential else {
            return None;
        };
        Some(match self.0.resume(token).await {
            Ok(resumed) => Ok(resumed.principal),
            Err(ResumeFailure::Ended(end)) => Err(AuthFailure::Refused(end.reason())),
            Err(ResumeFailure::Unavailable(e)) => Err(AuthFailure::Unavailable(e)),
        })
    }
}
