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
/// [`Principal::admin_access`] and [`AdminAccess::dangerous_local_operator`] create one.
#[derive(Debug, Clone, Copy)]
pub struct AdminAccess {
    _private: (),
}

impl AdminAccess {
    /// The operator at the console: whoever can run the `natterjack` CLI against the data
    /// directory, or reach the admin socket (mode 0600), already holds the database file, so
    /// they act with admin authority without any credential.
    ///
    /// A bypass of authentication, hence the name: `clippy.toml` forbids calling it, and
    /// only the binary crate's operator entry points (the CLI and the admin socket it
    /// binds) allow themselves the call. A network transport receives the capability from
    /// the binary or not at all:
    ///
    /// ```compile_fail
    /// // Outside this crate there is no other way to make one.
    /// let forged = natterjack_core::principal::AdminAccess { _private: () };
    /// ```
    pub fn dangerous_local_operator() -> Self {
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
