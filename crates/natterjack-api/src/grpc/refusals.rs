//! Calls refused before their pipeline runs, recorded all the same.
//!
//! The call pipeline ([`super::call`]) writes the `complete` record of every call it sees,
//! but tonic answers some calls before any handler, so before the pipeline, runs: a message
//! over `grpc.max_message_bytes` (`OUT_OF_RANGE`), a frame or message it cannot decode
//! (`INTERNAL`), a method or service this listener does not serve (`UNIMPLEMENTED`), an
//! unsupported `grpc-encoding` (`UNIMPLEMENTED`); and the health service has no pipeline at
//! all. [`record_unrecorded`] wraps tonic's routes, so that what never reaches the pipeline's
//! [`crate::pipeline::complete`] step is recorded all the same:
//!
//! - each request carries a [`Recorded`] flag, which the pipeline sets when it takes the call
//!   in charge (`GrpcState::open`);
//! - a response that leaves without it is this layer's: it takes the peer's `per-ip`,
//!   `credentials` and `global` budget (what the pipeline's first step takes), so that such
//!   calls cannot flood the audit log unthrottled; beyond it, the call is answered
//!   `RESOURCE_EXHAUSTED` like any rate-limited call and its record is coalesced;
//! - it gets an `x-request-id`, a `complete` record with the final code (from the response
//!   headers of a trailers-only response, else from the body's trailers) and its count in
//!   `natterjack_requests_total`.
//!
//! The record holds what is known without the pipeline: the peer address, the method's
//! path, and `mtls` with the name the client certificate carries (not looked up among the
//! users: no database work for a refused call). The metric's `operation` is the path only
//! for methods this listener serves, else `(unknown method)`, so that a client cannot grow
//! the number of series. Streams that h2 refuses over the concurrent-stream cap never reach
//! tonic: [`report_refused_streams`] writes one `summary` per connection that had any (see
//! [`crate::transport::refused`]).

use super::call::GrpcState;
use super::identity::principal_name;
use super::status::{GrpcError, audit_status};
use crate::pipeline::rate_limit::Class;
use crate::pipeline::{Draft, complete, request_id};
use crate::transport::PeerAddr;
use crate::transport::refused::{RefusedStreams, ReportRefusedStreams};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use http::{HeaderMap, HeaderValue};
use natterjack_core::audit::record::clean;
use natterjack_core::audit::{AuditRecord, AuthMethod, LimitedBy, Phase, Transport};
use natterjack_core::rate::limited_by;
use prost::Message as _;
use rustls::pki_types::CertificateDer;
use std::collections::HashSet;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::Code;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The metric label of a path this listener does not serve.
const UNKNOWN_METHOD: &str = "(unknown method)";

/// Whether a call's own pipeline took charge of its audit record. This layer puts one in
/// every request's extensions; the pipeline sets it; a response that leaves without it set
/// is recorded by this layer instead, so that every call has exactly one `complete` record.
#[derive(Debug, Clone, Default)]
pub struct Recorded(Arc<AtomicBool>);

impl Recorded {
    /// Marks the call whose request has `extensions` as recorded by its pipeline; nothing
    /// happens on a listener without this layer (the admin socket).
    pub(crate) fn mark(extensions: &http::Extensions) {
        if let Some(flag) = extensions.get::<Recorded>() {
            flag.0.store(true, Ordering::Release);
        }
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The full paths (`/package.Service/Method`) of the methods that `services` define in the
/// encoded descriptor sets `sets`: the metric labels a client cannot invent.
pub fn served_methods(sets: &[&[u8]], services: &[&str]) -> HashSet<String> {
    let mut paths = HashSet::new();
    for set in sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
            tracing::warn!("a descriptor set does not decode; its methods count as unknown");
            continue;
        };
        for file in set.file {
            let package = file.package().to_owned();
            for service in file.service {
                let name = format!("{package}.{}", service.name());
                if services.contains(&name.as_str()) {
                    for method in service.method {
                        paths.insert(format!("/{name}/{}", method.name()));
                    }
                }
            }
        }
    }
    paths
}

/// What every call of the layer shares.
struct Shared {
    state: GrpcState,
    served: HashSet<String>,
}

/// Wraps `routes` (tonic's routes of the public listener) so that every call its pipeline
/// does not record is recorded here; `served` are the paths of its methods
/// ([`served_methods`]).
pub fn record_refusals(
    routes: axum::Router,
    state: GrpcState,
    served: HashSet<String>,
) -> axum::Router {
    routes.layer(from_fn_with_state(
        Arc::new(Shared { state, served }),
        record_unrecorded,
    ))
}

/// What a record needs of a call's request, taken before it is handed on.
struct Call {
    shared: Arc<Shared>,
    request_id: String,
    client_ip: Option<IpAddr>,
    peer_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    path: String,
    started: Instant,
}

impl Call {
    fn of(req: &Request, shared: Arc<Shared>) -> Self {
        let started = shared.state.app.clock.now();
        Self {
            shared,
            request_id: String::new(),
            client_ip: req.extensions().get::<PeerAddr>().map(|p| p.0.ip()),
            peer_certs: req
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(TlsConnectInfo::peer_certs),
            path: req.uri().path().to_owned(),
            started,
        }
    }

    /// The call's `complete` record and its count, through the pipeline's own last step.
    async fn finish(self, code: Code, reason: Option<String>, limited: Option<LimitedBy>) {
        let app = &self.shared.state.app;
        let mut draft = Draft::new(
            Transport::Grpc,
            self.request_id,
            &self.path,
            "",
            app.clock.clone(),
        )
        .since(self.started);
        if !self.shared.served.contains(&self.path) {
            draft.count_as(UNKNOWN_METHOD);
        }
        if let Some(ip) = self.client_ip {
            draft.client_ip(ip);
        }
        (draft.principal, draft.auth_method) = certificate_holder(self.peer_certs.as_deref());
        if let Some(by) = &limited {
            crate::metrics::rate_limit_refusal("grpc", by.policy);
        }
        draft.limited_by = limited;
        complete(app, draft, audit_status(code), reason).await;
    }
}

/// The principal and authentication method a record of this listener shows without the
/// pipeline: the name the client certificate carries (chain-verified by TLS, at most 64
/// characters), not looked up among the users.
fn certificate_holder(
    certs: Option<&Vec<CertificateDer<'static>>>,
) -> (Option<String>, AuthMethod) {
    match certs.and_then(|c| c.first()) {
        Some(leaf) => (
            principal_name(leaf).ok().map(|name| clean(&name, 64)),
            AuthMethod::Mtls,
        ),
        None => (None, AuthMethod::None),
    }
}

/// The final code and message of a gRPC response whose `headers` (a trailers-only
/// response) or trailers carry them.
fn grpc_status(headers: &HeaderMap) -> Option<(Code, String)> {
    let code = Code::from_bytes(headers.get("grpc-status")?.as_bytes());
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decoded(m.as_bytes()))
        .unwrap_or_default();
    Some((code, message))
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
fn percent_decoded(raw: &[u8]) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let escaped = (raw[i] == b'%')
            .then(|| Some((hex(*raw.get(i + 1)?)?, hex(*raw.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((high, low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            None => {
                out.push(raw[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a call was refused, for its record: tonic's own message, or what its code means here.
fn reason_for(code: Code, message: String) -> Option<String> {
    if code == Code::Ok {
        None
    } else if !message.is_empty() {
        Some(message)
    } else if code == Code::Unimplemented {
        Some("no such method on this listener".to_owned())
    } else {
        Some("refused before the call's pipeline".to_owned())
    }
}

/// The layer: see the module's documentation.
async fn record_unrecorded(
    State(shared): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let recorded = Recorded::default();
    req.extensions_mut().insert(recorded.clone());
    let mut call = Call::of(&req, shared.clone());
    let mut response = next.run(req).await;
    if recorded.is_marked() {
        return response;
    }
    call.request_id = request_id::fresh();
    if let Some(ip) = call.client_ip
        && let Err(refusal) = shared.state.app.limits.admit(ip, Class::Credentials).await
    {
        let by = limited_by(&refusal, ip, None);
        let status = GrpcError::RateLimited(refusal).to_status(&call.request_id);
        let (code, reason) = (status.code(), status.message().to_owned());
        call.finish(code, Some(reason), Some(by)).await;
        return status.into_http();
    }
    if let Ok(id) = HeaderValue::from_str(&call.request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    if let Some((code, message)) = grpc_status(response.headers()) {
        call.finish(code, reason_for(code, message), None).await;
        return response;
    }
    response.map(|body| {
        Body::new(UntilTrailers {
            inner: body,
            call: Some(call),
        })
    })
}

/// A response body whose trailers carry its call's final code: the call is recorded when
/// they pass, or when the body ends or is dropped without them.
struct UntilTrailers {
    inner: Body,
    call: Option<Call>,
}

impl UntilTrailers {
    /// Records the call (once) from outside any async context: the record is queued by a
    /// task of its own.
    fn settle(&mut self, code: Code, reason: Option<String>) {
        if let Some(call) = self.call.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(call.finish(code, reason, None));
        }
    }
}

impl HttpBody for UntilTrailers {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let (code, message) = grpc_status(trailers)
                        .unwrap_or((Code::Unknown, "trailers without grpc-status".to_owned()));
                    self.settle(code, reason_for(code, message));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                self.settle(Code::Unknown, Some("the response failed".to_owned()));
            }
            Poll::Ready(None) => {
                self.settle(
                    Code::Unknown,
                    Some("the response ended without a status".to_owned()),
                );
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UntilTrailers {
    fn drop(&mut self) {
        // The client left before the call ended: `OK`, as for a watch stream it leaves.
        self.settle(Code::Ok, None);
    }
}

/// The reporter of the public listener's refused streams: one `summary` record per
/// connection that had any, with their count (no call was decoded, so no method is known).
pub fn report_refused_streams(state: GrpcState) -> ReportRefusedStreams {
    Arc::new(move |refused: RefusedStreams| {
        let (audit, clock) = (state.app.audit.clone(), state.app.clock.clone());
        Box::pin(async move {
            let (principal, auth_method) = certificate_holder(refused.peer_certs.as_deref());
            // What a gRPC client makes of REFUSED_STREAM (gRPC over HTTP/2, "Errors").
            let code = Code::Unavailable;
            let reason = format!(
                "HTTP/2 refused {count} of this connection's streams (REFUSED_STREAM), over its cap of {cap} concurrent streams, from {first} to {last}",
                count = refused.count,
                cap = refused.cap,
                first = refused.first.to_rfc3339(),
                last = refused.last.to_rfc3339(),
            );
            let record = AuditRecord {
                time: clock.wall(),
                request_id: request_id::fresh(),
                phase: Phase::Summary,
                transport: Transport::Grpc,
                client_ip: refused.peer.ip().to_string(),
                principal,
                auth_method,
                operation: "refused streams".to_owned(),
                target: format!("max_concurrent_streams={}", refused.cap),
                status: Some(audit_status(code)),
                decision: audit_status(code).decision(),
                reason: Some(clean(&reason, 400)),
                duration_us: refused.last.micros().saturating_sub(refused.first.micros()),
                count: Some(refused.count),
            };
            if let Err(e) = audit.submit(record).await {
                tracing::error!(error = %e, "could not write the audit record of refused streams");
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percent_encoded_grpc_message_is_decoded_and_a_stray_percent_kept() {
        assert_eq!(
            percent_decoded(b"found 70 bytes%2C the limit%20is 64 %zz 100%"),
            "found 70 bytes, the limit is 64 %zz 100%"
        );
    }

    #[test]
    fn only_the_methods_of_the_served_services_are_known() {
        let served = served_methods(
            &[
                super::super::proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
            ],
            &["natterjack.v1.Spaces", "grpc.health.v1.Health"],
        );
        assert!(served.contains("/natterjack.v1.Spaces/PostMessage"));
        assert!(served.contains("/grpc.health.v1.Health/Check"));
        assert!(
            !served
                .iter()
                .any(|p| p.starts_with("/natterjack.v1.Admin/"))
        );
    }
}
