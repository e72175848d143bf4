//! Every operation of the API, with the permission it needs, declared once for every
//! transport. A match over the enum, so a new operation does not compile until its need is
//! written down; each transport maps its own names onto it (`rest::operations`,
//! `grpc::operations`), and a test enumerates every REST route and gRPC method against it.

use natterjack_core::domain::Permissions;

/// What a caller must hold before an operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: anyone may call it (the service may still look at who calls).
    Nothing,
    /// An authenticated principal; the service decides what they may see.
    Principal,
    /// These permissions on the space the request addresses ([`Permissions::NONE`]: any
    /// membership, the escalation rule then decides).
    Space(Permissions),
    /// The local operator (the admin socket), who authenticated by reaching it.
    Operator,
}

/// The operations of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Liveness and readiness.
    Health,
    /// The OpenAPI document.
    OpenApi,
    /// Account creation (anonymous only while self-registration is on).
    Register,
    /// The audit trail (admins only; the service checks the role).
    ListAudit,
    /// Create a space.
    CreateSpace,
    /// The caller's spaces.
    ListSpaces,
    /// One space.
    GetSpace,
    /// Post a message.
    PostMessage,
    /// A page of messages.
    ListMessages,
    /// One message.
    GetMessage,
    /// Delete (moderate) a message.
    DeleteMessage,
    /// The members of a space.
    ListMembers,
    /// Grant permissions (the escalation rule applies).
    GrantPermissions,
    /// Revoke permissions (the escalation rule applies).
    RevokePermissions,
    /// A stream of a space's new messages.
    WatchMessages,
    /// The operator creates a user.
    OperatorCreateUser,
    /// The operator grants or takes the admin role.
    OperatorSetAdmin,
    /// The operator reads the audit trail.
    OperatorQueryAudit,
    /// A console page anyone may load: the login form, the stylesheet, the SAML metadata.
    ConsolePage,
    /// A console login with a username and password: opens a browser session.
    ConsoleLogin,
    /// A console logout: ends the browser session.
    ConsoleLogout,
    /// The start of a single sign-on: the browser is sent to its identity provider.
    SignOnStart,
    /// The end of a single sign-on: the provider's answer opens a browser session.
    SignOnFinish,
}

impl Operation {
    /// What the caller must hold: the one permission table of the API.
    pub fn need(self) -> Need {
        use Operation::*;
        match self {
            Health | OpenApi | Register | ConsolePage | SignOnStart | SignOnFinish => Need::Nothing,
            ListAudit | CreateSpace | ListSpaces | ConsoleLogin | ConsoleLogout => Need::Principal,
            GetSpace | ListMessages | GetMessage | ListMembers | WatchMessages => {
                Need::Space(Permissions::READ)
            }
            PostMessage => Need::Space(Permissions::WRITE),
            DeleteMessage => Need::Space(Permissions::DELETE),
            GrantPermissions | RevokePermissions => Need::Space(Permissions::NONE),
            OperatorCreateUser | OperatorSetAdmin | OperatorQueryAudit => Need::Operator,
        }
    }

    /// Whether it may change state: its intent is then recorded durably before it runs.
    pub fn changes_state(self) -> bool {
        use Operation::*;
        match self {
            Register | CreateSpace | PostMessage | DeleteMessage | GrantPermissions
            | RevokePermissions | OperatorCreateUser | OperatorSetAdmin | ConsoleLogin
            | ConsoleLogout | SignOnStart | SignOnFinish => true,
            Health | OpenApi | ListAudit | ListSpaces | GetSpace | ListMessages | GetMessage
            | ListMembers | WatchMessages | OperatorQueryAudit | ConsolePage => false,
        }
    }
}
