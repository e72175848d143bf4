//! Who is calling.

use crate::domain::{UserId, Username};

/// An authenticated user, produced only by the authentication step of the pipeline (or by
/// the operator CLI, which runs with the operator's own file-system authority).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    id: UserId,
    username: Username,
    admin: bool,
}

impl Principal {
    /// Builds a principal for a user whose credentials were just verified.
    pub(crate) fn new(id: UserId, username: Username, admin: bool) -> Self {
        Self {
            id,
            username,
            admin,
        }
    }

    /// The user's row id.
    pub fn id(&self) -> UserId {
        self.id
    }

    /// The user's name.
    pub fn username(&self) -> &Username {
        &self.username
    }

    /// The capability to perform administrative operations, present only for admins.
    pub fn admin_access(&self) -> Option<AdminAccess> {
        self.admin.then_some(AdminAccess { _private: () })
    }
}

/// Proof that the caller may perform administrative operations. Only
/// [`Principal::admin_access`] and [`AdminAccess::local_operator`] create one.
#[derive(Debug, Clone, Copy)]
pub struct AdminAccess {
    _private: (),
}

impl AdminAccess {
    /// The operator at the console: whoever can run the `natterjack` CLI against the data
    /// directory already holds the database file, so the CLI acts with admin authority.
    /// Never call this from a network transport.
    pub fn local_operator() -> Self {
        Self { _private: () }
    }
}

/// The identity attached to a request: a verified user, or nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials were presented.
    Anonymous,
    /// Credentials were presented and verified.
    User(Principal),
}

impl Caller {
    /// The principal, if authenticated.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Anonymous => None,
            Caller::User(p) => Some(p),
        }
    }
}
