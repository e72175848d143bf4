//! The one service layer: every transport calls these methods, with the caller first.

use crate::ServiceError;
use crate::access::SpaceAccess;
use crate::auth::{Authentication, Authenticator, CertificateLogins, LoginBudgets, PasswordLogins};
use crate::domain::{
    MessageId, MessageText, NewPassword, Permissions, SpaceId, SpaceName, Username,
};
use crate::policy::{GrantPolicy, may_change};
use crate::ports::{MemberRecord, MessagePage, MessageRecord, SpaceRecord, Store};
use crate::principal::{AdminAccess, Caller, Principal};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;
use zeroize::Zeroizing;

/// Behaviour switches of the service layer, from the `[access]` and `[auth]` configuration.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSettings {
    /// Who may change permissions (the escalation rule).
    pub grant_policy: GrantPolicy,
    /// Whether anonymous callers may create accounts.
    pub self_registration: bool,
}

/// The application: the operations of the API over a [`Store`], with authorisation built in.
pub struct Service {
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    settings: ServiceSettings,
    /// Messages posted through this process, and those other nodes posted, for watchers
    /// (`WatchMessages`).
    posted: broadcast::Sender<MessageRecord>,
    /// The ids of the latest messages handed to the watchers, whichever way they came
    /// (posted here, or announced by the database: see [`crate::feed`]), so that a message
    /// that comes both ways is handed on once, by whichever comes first.
    delivered: Mutex<crate::feed::HandedOn>,
}

/// Messages the feed holds for its slowest watcher; one that falls further behind is told
/// it lagged (and the gRPC adapter cuts it off).
const FEED_CAPACITY: usize = 1024;

/// How many of the latest messages handed on a node remembers, to skip their second
/// arrival: far more than are posted in the milliseconds an announcement takes.
const DELIVERED: usize = 4 * FEED_CAPACITY;

impl Service {
    /// Assembles the service from its ports.
    pub fn new(store: Arc<dyn Store>, auth: Authenticator, settings: ServiceSettings) -> Self {
        Self {
            store,
            auth: Arc::new(auth),
            settings,
            posted: broadcast::channel(FEED_CAPACITY).0,
            delivered: Mutex::new(crate::feed::HandedOn::new(DELIVERED)),
        }
    }

    /// The identity providers of this service: password logins, their guesses counted
    /// against `budgets` (`None` when rate limiting is off), and client certificates. Every
    /// transport authenticates through what this returns.
    pub fn authentication(&self, budgets: Option<Arc<LoginBudgets>>) -> Authentication {
        Authentication::default()
            .with(Arc::new(PasswordLogins::new(self.auth.clone(), budgets)))
            .with(Arc::new(CertificateLogins::new(self.store.clone())))
    }

    /// New messages of the space, as they are posted through this process (needs `r`).
    /// The receiver is bounded: a watcher that falls [`FEED_CAPACITY`] messages behind
    /// gets `Lagged` instead of holding memory.
    pub fn watch_messages(
        &self,
        access: &SpaceAccess,
    ) -> Result<broadcast::Receiver<MessageRecord>, ServiceError> {
        access.require(Permissions::READ)?;
        Ok(self.posted.subscribe())
    }

    /// Hands `message` to the watchers unless it was handed on already (it came the other
    /// way first). Nobody watching is not an error.
    fn deliver(&self, message: MessageRecord) {
        let first = self
            .delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(message.id);
        if first {
            let _ = self.posted.send(message);
        }
    }

    /// The authenticator, for the authentication step of each transport's pipeline.
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Whether the database answers: the readiness probe.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }

    /// Verifies credentials (see [`Authenticator::authenticate`]).
    pub async fn authenticate(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<Principal, ServiceError> {
        self.auth.authenticate(username, password).await
    }

    /// Creates an account. Anonymous callers may do so only while self-registration is on;
    /// admins (and the operator CLI) always may.
    pub async fn register(
        &self,
        caller: &Caller,
        admin: Option<AdminAccess>,
        username: Username,
        password: SecretString,
    ) -> Result<Username, ServiceError> {
        if admin.is_none() && !self.settings.self_registration {
            return Err(match caller {
                Caller::Anonymous => ServiceError::Forbidden("self-registration is disabled"),
                Caller::User(_) => ServiceError::Forbidden("only admins may create accounts"),
            });
        }
        let password = NewPassword::parse(password, &username)?;
        let hash = self.hash(&password).await?;
        let record = self
            .store
            .create_user(&username, &hash)
            .await
            .map_err(|e| match e {
                crate::ports::StoreError::Conflict => ServiceError::Conflict("username is taken"),
                other => other.into(),
            })?;
        Ok(record.username)
    }

    /// Replaces a user's password (operator CLI or admin), dropping cached verifications.
    pub async fn change_password(
        &self,
        _admin: AdminAccess,
        username: &Username,
        password: SecretString,
    ) -> Result<(), ServiceError> {
        let user = self.existing_user(username).await?;
        let password = NewPassword::parse(password, &user.username)?;
        let hash = self.hash(&password).await?;
        self.store.set_password_hash(user.id, &hash).await?;
        self.auth.forget(user.id);
        Ok(())
    }

    /// Grants or removes the global admin role.
    pub async fn set_admin(
        &self,
        _admin: AdminAccess,
        username: &Username,
        grant: bool,
    ) -> Result<(), ServiceError> {
        let user = self.existing_user(username).await?;
        self.store.set_admin(user.id, grant).await?;
        Ok(())
    }

    /// Links an external identity (an issuer and its `sub`, or a directory and a username)
    /// to the existing account `username`, so that the identity logs in as that account.
    /// Only the operator may: a link decides who an outside identity acts as.
    pub async fn link_identity(
        &self,
        _admin: AdminAccess,
        username: &Username,
        source: &str,
        subject: &str,
    ) -> Result<(), ServiceError> {
        if source.is_empty() || subject.is_empty() {
            return Err(ServiceError::Conflict(
                "source and subject must not be empty",
            ));
        }
        let user = self.existing_user(username).await?;
        self.store
            .link_identity(user.id, source, subject)
            .await
            .map_err(|e| match e {
                crate::ports::StoreError::Conflict => {
                    ServiceError::Conflict("this identity is linked already")
                }
                other => other.into(),
            })
    }

    /// The user named `username`, or `NotFound`.
    async fn existing_user(
        &self,
        username: &Username,
    ) -> Result<crate::ports::UserRecord, ServiceError> {
        self.store
            .find_user(username)
            .await?
            .ok_or(ServiceError::NotFound("no such user"))
    }

    async fn hash(&self, password: &NewPassword) -> Result<String, ServiceError> {
        let bytes = Zeroizing::new(password.secret().expose_secret().as_bytes().to_vec());
        self.auth.hashing().hash(bytes).await
    }

    /// Creates a space owned by the caller, who receives `rwd`. A different `owner` is
    /// refused: nobody creates spaces on someone else's behalf.
    pub async fn create_space(
        &self,
        caller: &Principal,
        name: SpaceName,
        owner: Option<Username>,
    ) -> Result<SpaceRecord, ServiceError> {
        let is_caller = |o: &Username| o.as_str().eq_ignore_ascii_case(caller.username().as_str());
        if owner.is_some_and(|o| !is_caller(&o)) {
            return Err(ServiceError::Forbidden("owner must be the caller"));
        }
        Ok(self.store.create_space(&name, caller.id()).await?)
    }

    /// The spaces where the caller holds any permission.
    pub async fn list_spaces(&self, caller: &Principal) -> Result<Vec<SpaceRecord>, ServiceError> {
        Ok(self.store.spaces_of(caller.id()).await?)
    }

    /// The access check: what `caller` holds on `space`, refused unless it includes
    /// `needed` and is not empty (`Permissions::NONE` means "any membership"). A space that
    /// does not exist is refused the same way as one the caller cannot see, so ids cannot
    /// be probed.
    pub async fn authorize(
        &self,
        caller: &Principal,
        space: SpaceId,
        needed: Permissions,
    ) -> Result<SpaceAccess, ServiceError> {
        let held = self.store.permissions_of(space, caller.id()).await?;
        let access = SpaceAccess::new(caller.clone(), space, held);
        access.require(needed)?;
        Ok(access)
    }

    /// The space itself (needs `r`).
    pub async fn get_space(&self, access: &SpaceAccess) -> Result<SpaceRecord, ServiceError> {
        access.require(Permissions::READ)?;
        self.store
            .find_space(access.space())
            .await?
            .ok_or(ServiceError::NotFound("no such space"))
    }

    /// Posts a message as the caller (needs `w`).
    pub async fn post_message(
        &self,
        access: &SpaceAccess,
        body: MessageText,
    ) -> Result<MessageRecord, ServiceError> {
        access.require(Permissions::WRITE)?;
        let posted = self
            .store
            .insert_message(access.space(), access.principal().id(), &body)
            .await?;
        self.deliver(posted.clone());
        Ok(posted)
    }

    /// A page of messages, newest first (needs `r`).
    pub async fn list_messages(
        &self,
        access: &SpaceAccess,
        page: MessagePage,
    ) -> Result<Vec<MessageRecord>, ServiceError> {
        access.require(Permissions::READ)?;
        Ok(self.store.messages_in(access.space(), page).await?)
    }

    /// One message of the space (needs `r`); a message of another space is "not found".
    pub async fn get_message(
        &self,
        access: &SpaceAccess,
        id: MessageId,
    ) -> Result<MessageRecord, ServiceError> {
        access.require(Permissions::READ)?;
        self.store
            .find_message(access.space(), id)
            .await?
            .ok_or(ServiceError::NotFound("no such message in this space"))
    }

    /// Deletes a message of the space (needs `d`).
    pub async fn delete_message(
        &self,
        access: &SpaceAccess,
        id: MessageId,
    ) -> Result<(), ServiceError> {
        access.require(Permissions::DELETE)?;
        if self.store.delete_message(access.space(), id).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound("no such message in this space"))
        }
    }

    /// The members of the space and what they hold (needs `r`).
    pub async fn list_members(
        &self,
        access: &SpaceAccess,
    ) -> Result<Vec<MemberRecord>, ServiceError> {
        access.require(Permissions::READ)?;
        Ok(self.store.members_of(access.space()).await?)
    }

    /// Adds `permissions` to what `target` holds, under the escalation rule.
    pub async fn grant(
        &self,
        access: &SpaceAccess,
        target: &Username,
        permissions: Permissions,
    ) -> Result<MemberRecord, ServiceError> {
        may_change(self.settings.grant_policy, access.held(), permissions)
            .map_err(ServiceError::Forbidden)?;
        let user = self.existing_user(target).await?;
        let now = self
            .store
            .grant(
                access.space(),
                user.id,
                permissions,
                access.principal().id(),
            )
            .await?;
        Ok(MemberRecord {
            username: user.username,
            permissions: now,
        })
    }

    /// Removes `permissions` (all the target holds when `None`) under the escalation rule.
    /// The space owner's permissions cannot be revoked, so a space always has a moderator.
    pub async fn revoke(
        &self,
        access: &SpaceAccess,
        target: &Username,
        permissions: Option<Permissions>,
    ) -> Result<Permissions, ServiceError> {
        // Apply the rule to what is known before looking at the target, so a caller who may
        // not revoke learns nothing about who exists or who is a member.
        let policy = self.settings.grant_policy;
        let upper_bound = permissions.unwrap_or(match policy {
            GrantPolicy::FullOnly => Permissions::ALL,
            GrantPolicy::Subset => access.held(),
        });
        may_change(policy, access.held(), upper_bound).map_err(ServiceError::Forbidden)?;
        let user = self.existing_user(target).await?;
        let held = self.store.permissions_of(access.space(), user.id).await?;
        if held.is_empty() {
            return Err(ServiceError::NotFound(
                "that user is not a member of this space",
            ));
        }
        let removing = permissions.unwrap_or(held);
        may_change(policy, access.held(), removing).map_err(ServiceError::Forbidden)?;
        let space = self
            .store
            .find_space(access.space())
            .await?
            .ok_or(ServiceError::NotFound("no such space"))?;
        if space
            .owner
            .as_str()
            .eq_ignore_ascii_case(user.username.as_str())
        {
            return Err(ServiceError::Forbidden(
                "the owner's permissions cannot be revoked",
            ));
        }
        Ok(self.store.revoke(access.space(), user.id, removing).await?)
    }
}

/// Messages other nodes posted reach this node's watchers: each announced message not
/// handed on yet is read (it must still exist, in the space it was announced in) and
/// handed on. A message posted here may be announced before its post returns; then the
/// announcement hands it on and the post finds it done.
#[async_trait::async_trait]
impl crate::feed::PostedSink for Service {
    async fn posted(&self, space: SpaceId, message: MessageId) {
        let handed_on = self
            .delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(message);
        if handed_on || self.posted.receiver_count() == 0 {
            return;
        }
        match self.store.find_message(space, message).await {
            Ok(Some(record)) => self.deliver(record),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "a message posted on another node could not be read for its watchers")
            }
        }
    }
}
