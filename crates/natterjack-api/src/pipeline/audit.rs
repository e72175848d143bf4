//! Audit: every request yields a record, and a state-changing request is recorded
//! durably *before* it runs.
//!
//! Two layers share a per-request [`AuditDraft`]:
//! - [`record_requests`] wraps the whole pipeline, so requests refused by rate limiting,
//!   hygiene or authentication are recorded too; it queues the `complete` record (status,
//!   decision, reason, duration) for the group-commit writer as the response leaves. The
//!   response does not wait for that commit: anything that changed state already has its
//!   intent on disk.
//! - [`record_intent`] is step 5, after authentication: for `POST`, `PUT`, `PATCH` and
//!   `DELETE` it writes an `intent` record and waits for it to be committed before access
//!   control and the handler run; if it cannot be written, the request is refused with 503.
//!   With `audit.fail_closed`, it is also refused (503) while the SIEM export backlog is over
//!   its bound, so nothing changes that the SIEM could not yet see; and while the disk is
//!   below `audit.min_free_mb`, so that the trail and the database never run it full.
//!
//! Later steps add what they learn: the client address (rate limiting), the principal
//! (authentication), the access decision (the ACL guard); errors carry their reason in an
//! [`AuditReason`] response extension. Nothing secret is ever put in a draft.

use crate::AppState;
use crate::rest::error::ApiError;
use crate::transport::PeerAddr;
use axum::RequestExt;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use natterjack_core::ServiceError;
use natterjack_core::audit::record::clean;
use natterjack_core::audit::{AuditRecord, LimitedBy, Observed, Phase};
use natterjack_core::domain::Timestamp;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a request was refused, attached to error responses for the audit record.
#[derive(Debug, Clone)]
pub struct AuditReason(pub String);

#[derive(Debug, Clone)]
struct Fields {
    request_id: String,
    client_ip: String,
    principal: Option<String>,
    claimed: Option<String>,
    limited_by: Option<LimitedBy>,
    auth_method: &'static str,
    operation: String,
    target: String,
    allowed_because: Option<String>,
    started: Instant,
}

/// What the pipeline has learnt about the current request, for its audit records.
#[derive(Debug, Clone)]
pub struct AuditDraft(Arc<Mutex<Fields>>);

impl AuditDraft {
    fn with<T>(&self, f: impl FnOnce(&mut Fields) -> T) -> Option<T> {
        self.0.lock().ok().map(|mut fields| f(&mut fields))
    }

    /// The client address the rate limiter attributed the request to.
    pub fn client_ip(&self, ip: std::net::IpAddr) {
        self.with(|f| f.client_ip = ip.to_string());
    }

    /// Credentials were presented (whether or not they were right).
    pub fn credentials_presented(&self) {
        self.with(|f| f.auth_method = "basic");
    }

    /// The authenticated user.
    pub fn principal(&self, username: &str) {
        self.with(|f| f.principal = Some(username.to_owned()));
    }

    /// The user a client failed to authenticate as: not recorded (it is no principal), only
    /// shown to the anomaly monitor, which counts failures per targeted account.
    pub fn claimed(&self, username: &str) {
        self.with(|f| f.claimed = Some(username.to_owned()));
    }

    /// The rate-limit policy, and its key, that refused the request: such refusals are
    /// coalesced beyond the first few of a window.
    pub fn limited_by(&self, limited_by: LimitedBy) {
        self.with(|f| f.limited_by = Some(limited_by));
    }

    /// Why access was granted (the ACL guard's note).
    pub fn allowed_because(&self, reason: String) {
        self.with(|f| f.allowed_because = Some(reason));
    }

    fn record(
        &self,
        phase: Phase,
        status: Option<StatusCode>,
        decision: &str,
        reason: Option<String>,
    ) -> Option<AuditRecord> {
        self.with(|f| AuditRecord {
            time: Timestamp::now(),
            request_id: f.request_id.clone(),
            phase,
            transport: "rest".to_owned(),
            client_ip: f.client_ip.clone(),
            principal: f.principal.clone(),
            auth_method: f.auth_method.to_owned(),
            operation: f.operation.clone(),
            target: f.target.clone(),
            status: status.map(|s| s.as_u16()),
            decision: decision.to_owned(),
            reason: reason
                .or_else(|| f.allowed_because.clone())
                .map(|r| clean(&r, 200)),
            duration_us: i64::try_from(f.started.elapsed().as_micros()).unwrap_or(i64::MAX),
            count: None,
        })
    }
}

/// The decision class of a final status.
fn decision_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 | 429 => "deny",
        400..=499 => "reject",
        500..=599 => "error",
        _ => "allow",
    }
}

/// Outermost request-side layer: opens the draft and queues the `complete` record.
pub async fn record_requests(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map(|p| p.0.ip().to_string())
        .unwrap_or_default();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)".to_owned(), |p| p.as_str().to_owned());
    let target = match req.extract_parts::<RawPathParams>().await {
        Ok(params) => params
            .iter()
            .map(|(k, v)| format!("{k}={}", clean(v, 64)))
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => "(undecodable path)".to_owned(),
    };
    let draft = AuditDraft(Arc::new(Mutex::new(Fields {
        request_id: super::request_id::current(),
        client_ip: peer,
        principal: None,
        claimed: None,
        limited_by: None,
        auth_method: "none",
        operation: format!("{} {}", req.method(), clean(&route, 200)),
        target,
        allowed_because: None,
        started,
    })));
    req.extensions_mut().insert(draft.clone());
    let response = next.run(req).await;
    let status = response.status();
    let reason = response
        .extensions()
        .get::<AuditReason>()
        .map(|r| r.0.clone());
    let reason = if status.is_success() { None } else { reason };
    let record = draft.record(Phase::Complete, Some(status), decision_for(status), reason);
    if let Some(record) = &record {
        crate::metrics::request("rest", &record.operation, status.as_u16().to_string());
    }
    let (claimed, limited_by) = draft
        .with(|f| (f.claimed.take(), f.limited_by.take()))
        .unwrap_or_default();
    // Only a 429 is coalesced: a request refused by a limiter and then answered otherwise
    // (none is, today) keeps its own record.
    let limited_by = limited_by.filter(|_| status == StatusCode::TOO_MANY_REQUESTS);
    let written = match record {
        Some(record) => {
            let observed = Observed {
                claimed: claimed.as_deref(),
                limited_by,
            };
            state.audit.submit_observed(record, observed).await
        }
        None => Err(ServiceError::Internal),
    };
    if let Err(e) = written {
        tracing::error!(error = %e, "could not write the audit record of a completed request");
    }
    response
}

fn changes_state(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Step 5: a durable `intent` record before any state-changing request goes further.
pub async fn record_intent(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if changes_state(req.method()) {
        let Some(draft) = req.extensions().get::<AuditDraft>().cloned() else {
            return ApiError::Internal.into_response();
        };
        if let Err(paused) = state.audit.accepts_changes() {
            return ApiError::ChangesPaused(paused).into_response();
        }
        let Some(record) = draft.record(Phase::Intent, None, "pending", None) else {
            return ApiError::Internal.into_response();
        };
        if state.audit.record(record).await.is_err() {
            return ApiError::Service(ServiceError::Unavailable).into_response();
        }
    }
    next.run(req).await
}
