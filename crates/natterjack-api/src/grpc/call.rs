//! The gRPC adapter of the pipeline: each call is described to [`crate::pipeline::admit`]
//! (its declared operation, the peer address, the client certificate, the space its message
//! addresses), its handler runs within the call's deadline, and its `complete` record is
//! written with the final code, whatever happened.

use super::convert;
use super::identity::principal_name;
use super::operations::declared;
use super::status::{GrpcError, audit_status};
use crate::AppState;
use crate::pipeline::rate_limit::Class;
use crate::pipeline::{Admitted, Call, CredentialError, Draft, Need, admit, complete, request_id};
use crate::schemes;
use crate::transport::PeerName;
use natterjack_core::ServiceError;
use natterjack_core::audit::Transport;
use natterjack_core::auth::Credential;
use natterjack_core::domain::{SpaceId, UserId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Code, Request, Response, Status};

/// Limits of the gRPC transport that the handlers enforce (the listener's own limits are
/// set where it is built).
#[derive(Debug, Clone, Copy)]
pub struct GrpcLimits {
    /// A `WatchMessages` stream ends after this long; the client reconnects.
    pub watch_max_duration: Duration,
    /// At most this many messages per second on one watch stream.
    pub watch_messages_per_sec: u32,
    /// Open watch streams per principal.
    pub watch_max_per_principal: usize,
    /// Messages buffered per watcher before it counts as a slow consumer and is cut off.
    pub watch_buffer: usize,
    /// How often a watch stream re-checks that its principal may still read the space.
    pub watch_recheck: Duration,
    /// Deadline of a unary call, enforced here (not by tonic) so that a call cut off still
    /// gets its `complete` record.
    pub request_timeout: Duration,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            watch_max_duration: Duration::from_secs(3600),
            watch_messages_per_sec: 50,
            watch_max_per_principal: 4,
            watch_buffer: 64,
            watch_recheck: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What the gRPC services share: the application state, their limits, and the count of
/// open watch streams per principal.
#[derive(Clone)]
pub struct GrpcState {
    /// Service layer, rate limits and audit log, shared with REST.
    pub app: AppState,
    /// Limits the handlers enforce.
    pub limits: GrpcLimits,
    watchers: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// One call, as its handler names it for the pipeline.
pub(crate) struct Op {
    /// The RPC name, e.g. `PostMessage`; its operation and need are looked up in
    /// [`super::operations`].
    pub method: &'static str,
    /// The ids it addresses, e.g. `space_id=4`.
    pub target: String,
    /// The raw space id of the request, for operations that need permissions on a space.
    pub space: Option<i64>,
}

impl Op {
    /// A call that addresses nothing in particular.
    pub fn plain(method: &'static str) -> Self {
        Self {
            method,
            target: String::new(),
            space: None,
        }
    }
}

/// What the pipeline reads from a gRPC call: the verified client certificate, a bearer
/// token in the `authorization` metadata, and the space the message addresses.
struct Inbound<'a> {
    certs: Option<&'a [tonic::transport::CertificateDer<'static>]>,
    /// The connection's memo of the name its certificate gives.
    peer_name: Option<&'a PeerName>,
    authorization: Option<&'a tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// The client certificate's name once a token or password came beside it.
    via: Option<String>,
    operator: bool,
    space: Option<i64>,
}

impl crate::pipeline::Inbound for Inbound<'_> {
    type Error = GrpcError;

    fn well_formed(&mut self) -> Result<(), GrpcError> {
        // tonic has decoded the message; what it refuses never reaches the pipeline.
        Ok(())
    }

    async fn credential(&mut self) -> Result<Option<Credential>, CredentialError> {
        if self.operator {
            // The operator authenticated by reaching the admin socket.
            return Ok(None);
        }
        let leaf = self
            .certs
            .and_then(<[_]>::first)
            .ok_or(CredentialError::Unsupported("no client certificate"))?;
        let name = match self.peer_name {
            Some(memo) => memo.get_or_init(|| principal_name(leaf)),
            None => principal_name(leaf),
        }
        .map_err(CredentialError::Malformed)?;
        // A token or password acts for its holder; the certificate still names the
        // calling service.
        let Some(value) = self.authorization else {
            return Ok(Some(Credential::Certificate { name }));
        };
        let credential = value
            .to_str()
            .ok()
            .and_then(|v| schemes::credential(v).ok())
            .ok_or(CredentialError::Malformed(
                "authorization metadata is neither Bearer nor Basic",
            ))?;
        self.via = Some(name);
        Ok(Some(credential))
    }

    fn via(&self) -> Option<&str> {
        self.via.as_deref()
    }

    fn space(&mut self) -> Result<Option<SpaceId>, GrpcError> {
        Ok(self.space.map(convert::space_id).transpose()?)
    }
}

/// Holds one watch slot of a principal; the count drops when the stream ends.
pub(crate) struct WatchSlot {
    watchers: Arc<Mutex<HashMap<UserId, usize>>>,
    user: UserId,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.watchers.lock()
            && let Some(n) = open.get_mut(&self.user)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl GrpcState {
    /// The gRPC side of an application.
    pub fn new(app: AppState, limits: GrpcLimits) -> Self {
        Self {
            app,
            limits,
            watchers: Arc::default(),
        }
    }

    /// Takes a watch slot for `user`, refused beyond the per-principal cap.
    pub(crate) fn watch_slot(&self, user: UserId) -> Result<WatchSlot, GrpcError> {
        let mut open = self
            .watchers
            .lock()
            .map_err(|_| GrpcError::Service(natterjack_core::ServiceError::Internal))?;
        let n = open.entry(user).or_insert(0);
        if *n >= self.limits.watch_max_per_principal {
            return Err(GrpcError::TooManyWatchers);
        }
        *n += 1;
        Ok(WatchSlot {
            watchers: self.watchers.clone(),
            user,
        })
    }

    /// A fresh draft for a call of `service`'s `op`.
    pub(crate) fn draft(&self, service: &'static str, op: &Op) -> Draft {
        Draft::new(
            Transport::Grpc,
            request_id::fresh(),
            &format!("/natterjack.v1.{service}/{}", op.method),
            &op.target,
            self.app.clock.clone(),
        )
    }

    /// Runs the pipeline up to the handler: what the call was admitted with, unless refused.
    pub(crate) async fn open<M>(
        &self,
        req: &Request<M>,
        service: &'static str,
        op: &Op,
        draft: &mut Draft,
    ) -> Result<Admitted, GrpcError> {
        // From here on, this pipeline records the call (see `super::refusals`).
        super::refusals::Recorded::mark(req.extensions());
        let Some(operation) = declared(service, op.method) else {
            tracing::error!(
                method = op.method,
                "gRPC method without a declared operation"
            );
            return Err(GrpcError::Service(ServiceError::Internal));
        };
        let call = Call {
            operation: Some(operation),
            class: Class::Credentials,
            client_ip: req.remote_addr().map(|peer| peer.ip()),
        };
        let certs = req.peer_certs();
        let mut inbound = Inbound {
            certs: certs.as_deref().map(Vec::as_slice),
            peer_name: req.extensions().get::<PeerName>(),
            authorization: req.metadata().get("authorization"),
            via: None,
            operator: operation.need() == Need::Operator,
            space: op.space,
        };
        admit(&self.app, &call, &mut inbound, draft).await
    }

    /// Queues the call's `complete` record and counts it.
    pub(crate) async fn finish(&self, draft: Draft, outcome: Result<(), &GrpcError>) {
        let (code, reason) = match outcome {
            Ok(()) => (Code::Ok, None),
            Err(e) => {
                // The reason recorded is the same safe text the client sees, except for an
                // unreadable sealed value, whose place only the audit trail learns.
                let status = e.to_status(draft.request_id());
                let reason = match e {
                    GrpcError::Service(ServiceError::Unreadable(detail)) => {
                        format!("sealed value unreadable: {detail}")
                    }
                    _ => status.message().to_owned(),
                };
                (status.code(), Some(reason))
            }
        };
        complete(&self.app, draft, audit_status(code), reason).await;
    }

    /// A unary call: the whole pipeline around `handler`, within the call's deadline.
    pub(crate) async fn unary<M, R, F, Fut>(
        &self,
        req: Request<M>,
        service: &'static str,
        op: Op,
        handler: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Admitted, M) -> Fut,
        Fut: Future<Output = Result<R, GrpcError>>,
    {
        let deadline = tokio::time::Instant::now() + self.limits.request_timeout;
        let mut draft = self.draft(service, &op);
        let work = async {
            let admitted = self.open(&req, service, &op, &mut draft).await?;
            handler(admitted, req.into_inner()).await
        };
        let result = tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or(Err(GrpcError::TimedOut));
        let request_id = draft.request_id().to_owned();
        self.finish(draft, result.as_ref().map(drop)).await;
        result
            .map(Response::new)
            .map_err(|e| e.to_status(&request_id))
    }
}
