//! The storage port: everything the service layer needs from a database, and nothing more.
//!
//! Implementations live in `natterjack-storage`; they use prepared statements with bound
//! parameters only, and they scope every query on space content by the space id.

use crate::domain::{
    Limit, MessageId, MessageText, Permissions, SpaceId, SpaceName, Timestamp, UserId, Username,
};
use async_trait::async_trait;

/// A storage failure, classified for the service layer. The detail strings are for the
/// server log only and never reach a client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write.
    #[error("conflict")]
    Conflict,
    /// The database could not be reached or is busy; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, a corrupt row, a refused statement.
    #[error("storage failure: {0}")]
    Internal(String),
    /// A sealed value that does not open (altered, moved to another row, under a destroyed
    /// or unknown key). The text names the place and the key, never the content, so it is
    /// logged and audited as it is.
    #[error("sealed value unreadable: {0}")]
    Unreadable(String),
}

/// A stored user account.
pub struct UserRecord {
    /// Row id.
    pub id: UserId,
    /// Canonical name as stored.
    pub username: Username,
    /// The Argon2id PHC string.
    pub password_hash: String,
    /// Whether the user holds the global admin role.
    pub admin: bool,
}

/// The stored hash of an account that has no local password (one created for an external
/// identity): not a PHC string, so nothing verifies against it, and a Basic login for
/// such an account is verified against the dummy hash like an unknown name.
pub const NO_LOCAL_PASSWORD: &str = "!";

impl UserRecord {
    /// Whether the account can log in with a local password.
    pub fn has_local_password(&self) -> bool {
        self.password_hash != NO_LOCAL_PASSWORD
    }
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .field("admin", &self.admin)
            .finish()
    }
}

/// A stored space.
#[derive(Debug, Clone)]
pub struct SpaceRecord {
    /// Row id.
    pub id: SpaceId,
    /// Display name.
    pub name: SpaceName,
    /// The creator, whose `rwd` cannot be revoked.
    pub owner: Username,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A stored message.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    /// Row id.
    pub id: MessageId,
    /// The space it belongs to.
    pub space: SpaceId,
    /// Who posted it.
    pub author: Username,
    /// The text.
    pub body: MessageText,
    /// When it was posted.
    pub created_at: Timestamp,
}

/// A member of a space with what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member.
    pub username: Username,
    /// Their permissions (never empty: an empty set is no membership).
    pub permissions: Permissions,
}

/// Which page of a space's messages to read, newest first.
#[derive(Debug, Clone, Copy)]
pub struct MessagePage {
    /// Only messages posted at or after this time.
    pub since: Option<Timestamp>,
    /// Only messages with an id below this one (the cursor of the previous page).
    pub after: Option<MessageId>,
    /// At most this many.
    pub limit: Limit,
}

/// The persistence port of the service layer.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a user; `Conflict` if the name exists (case-insensitively).
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<UserRecord, StoreError>;
    /// Finds a user by name, case-insensitively.
    async fn find_user(&self, username: &Username) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces a user's password hash (password change, or re-hash with new parameters).
    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> Result<(), StoreError>;
    /// Grants or removes the global admin role.
    async fn set_admin(&self, user: UserId, admin: bool) -> Result<(), StoreError>;
    /// The account an external identity (`source`, `subject`) is linked to.
    async fn find_linked_user(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError>;
    /// Links an external identity to an existing account; `Conflict` if it is linked already.
    async fn link_identity(
        &self,
        user: UserId,
        source: &str,
        subject: &str,
    ) -> Result<(), StoreError>;
    /// Creates an account without a local password ([`NO_LOCAL_PASSWORD`]) and links the
    /// identity to it, atomically; `Conflict` if the name or the identity is taken.
    async fn create_linked_user(
        &self,
        username: &Username,
        source: &str,
        subject: &str,
    ) -> Result<UserRecord, StoreError>;

    /// Creates a space and gives `owner` `rwd` on it, atomically.
    async fn create_space(
        &self,
        name: &SpaceName,
        owner: UserId,
    ) -> Result<SpaceRecord, StoreError>;
    /// Spaces where `user` holds any permission, newest first.
    async fn spaces_of(&self, user: UserId) -> Result<Vec<SpaceRecord>, StoreError>;
    /// One space.
    async fn find_space(&self, space: SpaceId) -> Result<Option<SpaceRecord>, StoreError>;

    /// What `user` holds on `space` (`NONE` if not a member or no such space).
    async fn permissions_of(&self, space: SpaceId, user: UserId)
    -> Result<Permissions, StoreError>;
    /// All members of a space, by name.
    async fn members_of(&self, space: SpaceId) -> Result<Vec<MemberRecord>, StoreError>;
    /// Adds `add` to what `user` holds on `space`, recording who granted it.
    async fn grant(
        &self,
        space: SpaceId,
        user: UserId,
        add: Permissions,
        by: UserId,
    ) -> Result<Permissions, StoreError>;
    /// Removes `remove` from what `user` holds; a membership left empty is deleted.
    async fn revoke(
        &self,
        space: SpaceId,
        user: UserId,
        remove: Permissions,
    ) -> Result<Permissions, StoreError>;

    /// Stores a message in a space.
    async fn insert_message(
        &self,
        space: SpaceId,
        author: UserId,
        body: &MessageText,
    ) -> Result<MessageRecord, StoreError>;
    /// A page of a space's messages, newest first.
    async fn messages_in(
        &self,
        space: SpaceId,
        page: MessagePage,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// One message, only if it belongs to `space`.
    async fn find_message(
        &self,
        space: SpaceId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Deletes a message of `space`; false if there was none.
    async fn delete_message(&self, space: SpaceId, id: MessageId) -> Result<bool, StoreError>;

    /// Answers once the database does (a trivial query): readiness probes report
    /// "not ready" while this fails, so a load balancer stops sending requests that would
    /// only get 503.
    async fn ping(&self) -> Result<(), StoreError>;
}
