//! The pipeline of one gRPC call, in the order of the REST pipeline: rate limiting by peer address,
//! authentication (the client certificate, already chain-verified by TLS), the per-principal
//! limit, a durable intent record before any state change, then the handler, and a
//! `complete` audit record with the final code, whatever happened.

use super::identity::principal_name;
use super::status::{GrpcError, decision_for};
use crate::AppState;
use crate::pipeline::rate_limit::gcra::Refusal;
use crate::pipeline::rate_limit::limited_by;
use crate::pipeline::request_id;
use natterjack_core::ServiceError;
use natterjack_core::audit::record::clean;
use natterjack_core::audit::{AuditRecord, LimitedBy, Observed, Phase};
use natterjack_core::domain::{Timestamp, UserId};
use natterjack_core::principal::Principal;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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

/// One call's identity for the audit log.
pub(crate) struct Op {
    /// The RPC name, e.g. `Spaces/PostMessage`.
    pub method: &'static str,
    /// The ids it addresses, e.g. `space_id=4`.
    pub target: String,
    /// Whether it may change state (an intent record is committed first).
    pub mutating: bool,
}

/// What the pipeline learnt about a call, for its records.
pub(crate) struct Draft {
    pub request_id: String,
    client_ip: String,
    principal: Option<String>,
    auth_method: &'static str,
    operation: String,
    target: String,
    started: Instant,
    limited_by: Option<LimitedBy>,
}

impl Draft {
    fn record(&self, phase: Phase, code: Option<Code>, reason: Option<String>) -> AuditRecord {
        AuditRecord {
            time: Timestamp::now(),
            request_id: self.request_id.clone(),
            phase,
            transport: "grpc".to_owned(),
            client_ip: self.client_ip.clone(),
            principal: self.principal.clone(),
            auth_method: self.auth_method.to_owned(),
            operation: self.operation.clone(),
            target: self.target.clone(),
            // gRPC status code (0 = OK); the transport column says which kind of status.
            status: code.map(|c| c as u16),
            decision: code.map_or("pending", decision_for).to_owned(),
            reason: reason.map(|r| clean(&r, 200)),
            duration_us: i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX),
            count: None,
        }
    }
}

/// Who may make a call: a certificate holder on the public listener, or the operator on
/// the internal one (loopback only, never exposed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Certificate,
    LocalOperator,
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

    /// Runs the pipeline up to the handler: returns the draft and, unless refused, the
    /// principal (`None` for the local operator).
    pub(crate) async fn open<M>(
        &self,
        req: &Request<M>,
        service: &'static str,
        op: &Op,
        caller: Caller,
    ) -> (Draft, Result<Option<Principal>, GrpcError>) {
        // The one hook of `refusals`: from here on, this pipeline records the call.
        super::refusals::Recorded::mark(req.extensions());
        let peer: Option<SocketAddr> = req.remote_addr();
        let mut draft = Draft {
            request_id: request_id::fresh(),
            client_ip: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            principal: None,
            auth_method: "none",
            operation: format!("/natterjack.v1.{service}/{}", op.method),
            target: clean(&op.target, 200),
            started: Instant::now(),
            limited_by: None,
        };
        let admitted = self.admit(req, peer, op, caller, &mut draft).await;
        (draft, admitted)
    }

    async fn admit<M>(
        &self,
        req: &Request<M>,
        peer: Option<SocketAddr>,
        op: &Op,
        caller: Caller,
        draft: &mut Draft,
    ) -> Result<Option<Principal>, GrpcError> {
        let limited = |draft: &mut Draft, refusal: Refusal, ip: IpAddr, account: Option<&str>| {
            draft.limited_by = Some(limited_by(&refusal, ip, account));
            GrpcError::RateLimited(refusal)
        };
        if let Some(peer) = peer {
            self.app
                .limits
                .admit_grpc_peer(peer.ip())
                .map_err(|r| limited(draft, r, peer.ip(), None))?;
        }
        let principal = match caller {
            Caller::LocalOperator => {
                draft.auth_method = "local-operator";
                None
            }
            Caller::Certificate => {
                draft.auth_method = "mtls";
                let certs = req
                    .peer_certs()
                    .ok_or(GrpcError::NoCertificate("no client certificate"))?;
                let leaf = certs
                    .first()
                    .ok_or(GrpcError::NoCertificate("no client certificate"))?;
                let name = principal_name(leaf).map_err(GrpcError::NoCertificate)?;
                draft.principal = Some(clean(&name, 64));
                let principal = self.app.service.certificate_principal(&name).await?;
                draft.principal = Some(principal.username().as_str().to_owned());
                let ip = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
                self.app
                    .limits
                    .admit_principal(principal.id())
                    .map_err(|r| limited(draft, r, ip, Some(principal.username().as_str())))?;
                Some(principal)
            }
        };
        if op.mutating {
            self.app
                .audit
                .accepts_changes()
                .map_err(GrpcError::ChangesPaused)?;
            self.app
                .audit
                .record(draft.record(Phase::Intent, None, None))
                .await?;
        }
        Ok(principal)
    }

    /// Queues the call's `complete` record and counts it.
    pub(crate) async fn finish(&self, draft: &Draft, outcome: Result<(), &GrpcError>) {
        let (code, reason) = match outcome {
            Ok(()) => (Code::Ok, None),
            Err(e) => {
                // The reason recorded is the same safe text the client sees.
                let status = e.to_status(&draft.request_id);
                (status.code(), Some(status.message().to_owned()))
            }
        };
        crate::metrics::request("grpc", &draft.operation, format!("{code:?}"));
        match outcome {
            Err(GrpcError::RateLimited(refusal)) => {
                crate::metrics::rate_limit_refusal("grpc", refusal.policy);
            }
            Err(
                GrpcError::NoCertificate(_) | GrpcError::Service(ServiceError::Unauthenticated),
            ) => {
                crate::metrics::auth_failure("grpc", "certificate names no known user");
            }
            _ => {}
        }
        let record = draft.record(Phase::Complete, Some(code), reason);
        let observed = Observed {
            claimed: None,
            limited_by: match outcome {
                Err(GrpcError::RateLimited(_)) => draft.limited_by.clone(),
                _ => None,
            },
        };
        if let Err(e) = self.app.audit.submit_observed(record, observed).await {
            tracing::error!(error = %e, "could not write the audit record of a gRPC call");
        }
    }

    /// A unary call from a certificate holder: the whole pipeline around `handler`.
    pub(crate) async fn unary<M, R, F, Fut>(
        &self,
        req: Request<M>,
        op: Op,
        handler: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Principal, M) -> Fut,
        Fut: Future<Output = Result<R, GrpcError>>,
    {
        self.run(
            req,
            "Spaces",
            op,
            Caller::Certificate,
            |principal, msg| async move {
                let principal =
                    principal.ok_or(GrpcError::NoCertificate("no client certificate"))?;
                handler(principal, msg).await
            },
        )
        .await
    }

    /// A unary call on the internal listener, made with the operator's authority.
    pub(crate) async fn operator<M, R, F, Fut>(
        &self,
        req: Request<M>,
        op: Op,
        handler: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(M) -> Fut,
        Fut: Future<Output = Result<R, GrpcError>>,
    {
        self.run(req, "Admin", op, Caller::LocalOperator, |_, msg| {
            handler(msg)
        })
        .await
    }

    async fn run<M, R, F, Fut>(
        &self,
        req: Request<M>,
        service: &'static str,
        op: Op,
        caller: Caller,
        handler: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Option<Principal>, M) -> Fut,
        Fut: Future<Output = Result<R, GrpcError>>,
    {
        let (draft, admitted) = self.open(&req, service, &op, caller).await;
        let result = match admitted {
            Ok(principal) => tokio::time::timeout(
                self.limits.request_timeout,
                handler(principal, req.into_inner()),
            )
            .await
            .unwrap_or(Err(GrpcError::TimedOut)),
            Err(e) => Err(e),
        };
        self.finish(&draft, result.as_ref().map(drop)).await;
        result
            .map(Response::new)
            .map_err(|e| e.to_status(&draft.request_id))
    }
}
