//! The `Admin` service of the internal listener: the operator's user administration and
//! audit query, with the authority of the local operator (like the CLI). It is never added
//! to the public listener; reaching the internal one is the operator's privilege.

use super::call::{GrpcState, Op};
use super::convert;
use super::proto::admin_server::Admin;
use super::proto::{
    CreateUserRequest, QueryAuditRequest, QueryAuditResponse, SetAdminRequest, User,
};
use super::status::GrpcError;
use natterjack_core::audit::AuditQuery;
use natterjack_core::domain::{FieldError, Username};
use natterjack_core::principal::{AdminAccess, Caller};
use secrecy::SecretString;
use tonic::{Request, Response, Status};

impl std::fmt::Debug for CreateUserRequest {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// The `Admin` service over the shared state, acting with the operator's authority.
pub struct AdminService {
    state: GrpcState,
    operator: AdminAccess,
}

impl AdminService {
    /// The service for the internal listener. `operator` is the capability the binary
    /// minted for its admin socket; no network transport holds one.
    pub fn new(state: GrpcState, operator: AdminAccess) -> Self {
        Self { state, operator }
    }
}

fn user_op(method: &'static str, username: &str) -> Op {
    Op {
        method,
        target: format!("username={username}"),
        space: None,
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_user(&self, req: Request<CreateUserRequest>) -> Result<Response<User>, Status> {
        let op = user_op("CreateUser", &req.get_ref().username);
        let service = self.state.app.service.clone();
        let operator = self.operator;
        self.state
            .unary(req, "Admin", op, |_, msg| async move {
                let name = Username::parse(&msg.username)?;
                let password = SecretString::from(msg.password);
                let created = service
                    .register(&Caller::Anonymous, Some(operator), name, password)
                    .await?;
                Ok(User {
                    username: created.as_str().to_owned(),
                    admin: false,
                })
            })
            .await
    }

    async fn set_admin(&self, req: Request<SetAdminRequest>) -> Result<Response<User>, Status> {
        let op = user_op("SetAdmin", &req.get_ref().username);
        let service = self.state.app.service.clone();
        let operator = self.operator;
        self.state
            .unary(req, "Admin", op, |_, msg| async move {
                let name = Username::parse(&msg.username)?;
                service.set_admin(operator, &name, msg.admin).await?;
                Ok(User {
                    username: name.as_str().to_owned(),
                    admin: msg.admin,
                })
            })
            .await
    }

    async fn query_audit(
        &self,
        req: Request<QueryAuditRequest>,
    ) -> Result<Response<QueryAuditResponse>, Status> {
        let op = Op::plain("QueryAudit");
        let audit = self.state.app.audit.clone();
        let operator = self.operator;
        self.state
            .unary(req, "Admin", op, |_, msg| async move {
                let query = AuditQuery {
                    decision: None,
                    since: convert::time("since", &msg.since)?,
                    until: convert::time("until", &msg.until)?,
                    principal: convert::optional(&msg.principal)
                        .map(Username::parse)
                        .transpose()?,
                    after: match msg.after {
                        0 => None,
                        n if n > 0 => Some(n),
                        _ => return Err(FieldError::new("after", "must be positive").into()),
                    },
                    limit: convert::limit(msg.limit)?,
                };
                let records = audit
                    .page(operator, &query)
                    .await
                    .map_err(GrpcError::from)?;
                Ok(QueryAuditResponse {
                    records: records.into_iter().map(convert::audit_record).collect(),
                })
            })
            .await
    }
}
