//! The one audit draft: what the pipeline has learnt about a request, for its `intent` and
//! `complete` records. Nothing secret is ever put in it.

use natterjack_core::audit::record::clean;
use natterjack_core::audit::{
    AuditRecord, AuthMethod, Decision, LimitedBy, Phase, Status, Transport,
};
use natterjack_core::clock::SharedClock;
use std::net::IpAddr;
use std::time::Instant;

/// One request's audit draft, filled in step by step.
#[derive(Debug, Clone)]
pub struct Draft {
    transport: Transport,
    request_id: String,
    client_ip: String,
    pub(crate) principal: Option<String>,
    pub(crate) claimed: Option<String>,
    pub(crate) limited_by: Option<LimitedBy>,
    pub(crate) auth_method: AuthMethod,
    operation: String,
    target: String,
    pub(crate) allowed_because: Option<String>,
    /// The client certificate a bearer token came with: the calling service, named in the
    /// record's reason beside the token's principal.
    pub(crate) via: Option<String>,
    /// The start of the hash of the session a console request came with, named in the
    /// record's reason (the token itself is never recorded).
    pub(crate) session: Option<String>,
    /// Why the presented credential was refused, when it was (the metric's words).
    pub(crate) refused_because: Option<&'static str>,
    started: Instant,
    metric_label: Option<&'static str>,
    clock: SharedClock,
}

impl Draft {
    /// A draft for a request that arrived by `transport` just now by `clock`, named
    /// `operation` as the transport spells it (`GET /spaces/{id}`,
    /// `/natterjack.v1.Spaces/GetSpace`), on `target` (the ids it addresses).
    pub fn new(
        transport: Transport,
        request_id: String,
        operation: &str,
        target: &str,
        clock: SharedClock,
    ) -> Self {
        Self {
            transport,
            request_id,
            client_ip: String::new(),
            principal: None,
            claimed: None,
            limited_by: None,
            auth_method: AuthMethod::None,
            operation: clean(operation, 200),
            target: clean(target, 200),
            allowed_because: None,
            via: None,
            session: None,
            refused_because: None,
            started: clock.now(),
            metric_label: None,
            clock,
        }
    }

    /// The same draft for a request that arrived at `started` (read from the same clock).
    pub(crate) fn since(mut self, started: Instant) -> Self {
        self.started = started;
        self
    }

    /// Counts the request in the metrics under `label` instead of its operation: for an
    /// operation a client names freely (an unknown gRPC method), so that it cannot grow the
    /// number of series.
    pub(crate) fn count_as(&mut self, label: &'static str) {
        self.metric_label = Some(label);
    }

    /// The operation as the metrics count it.
    pub(crate) fn metric_label(&self) -> &str {
        self.metric_label.unwrap_or(&self.operation)
    }

    /// The request id, as in the response and the server log.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The transport it arrived by.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The client address the request is attributed to.
    pub fn client_ip(&mut self, ip: IpAddr) {
        self.client_ip = ip.to_string();
    }

    /// `reason`, followed by the calling service when a token came through one, and by the
    /// session a console request came with.
    fn with_via(&self, reason: Option<String>) -> Option<String> {
        let via = self
            .via
            .as_ref()
            .map(|via| format!("via certificate {via}"));
        let session = self.session.as_ref().map(|key| format!("session {key}"));
        let parts: Vec<String> = [reason, via, session].into_iter().flatten().collect();
        (!parts.is_empty()).then(|| clean(&parts.join("; "), 200))
    }

    /// Records who signed in when the request itself carried no credential the pipeline
    /// verified: a single sign-on, proven by its provider's answer inside the handler.
    pub fn signed_in(&mut self, principal: &str, method: AuthMethod) {
        self.principal = Some(clean(principal, 64));
        self.auth_method = method;
    }

    /// The session a console request came with, named by the start of its key's hash
    /// ([`natterjack_core::session::SessionKey::short`]).
    pub fn session(&mut self, short_key: String) {
        self.session = Some(short_key);
    }

    /// Why the credential the request came with was refused (a session revoked, idle,
    /// expired or ended by a password change; wrong password), for a transport whose
    /// answer does not say it itself: the console answers an ended session with a
    /// redirect to its login form, but its audit record must still say what happened.
    pub fn refused_because(&self) -> Option<&'static str> {
        self.refused_because
    }

    /// A record of this request at `phase`.
    pub(crate) fn record(
        &self,
        phase: Phase,
        status: Option<Status>,
        reason: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            time: self.clock.wall(),
            request_id: self.request_id.clone(),
            phase,
            transport: self.transport,
            client_ip: self.client_ip.clone(),
            principal: self.principal.clone(),
            auth_method: self.auth_method,
            operation: self.operation.clone(),
            target: self.target.clone(),
            status,
            decision: status.map_or(Decision::Pending, Status::decision),
            reason: self.with_via(reason.or_else(|| self.allowed_because.clone())),
            duration_us: i64::try_from(
                self.clock
                    .now()
                    .saturating_duration_since(self.started)
                    .as_micros(),
            )
            .unwrap_or(i64::MAX),
            count: None,
        }
    }
}
