//! The operators' listeners: plaintext, reachable only from this host.
//!
//! - **Admin socket** (a Unix socket in the data directory, mode 0600): `natterjack.v1.Admin`
//!   and server reflection. Admin carries the operator's authority (create users, grant
//!   admin, read the audit trail) without any credential, so only the account that runs the
//!   server (and root) may connect: file permissions do what no network check can, since
//!   every local process can reach a loopback port.
//! - **Metrics** (loopback TCP, default 127.0.0.1:9090): `GET /metrics` for Prometheus, and,
//!   only when `internal.admin_over_tcp` is set on purpose, Admin and reflection as well.
//!
//! Both answer only what an operator's tools send: gRPC (HTTP/2 with a gRPC content type,
//! which no browser can produce cross-origin) and, on TCP, `GET /metrics`, addressed to a
//! loopback host name (a page that resolves another name to 127.0.0.1 is refused: DNS
//! rebinding). Every refusal is a problem with the security headers, and is audited with
//! the transport `internal`.

use super::admin::AdminService;
use super::call::GrpcState;
use super::proto::FILE_DESCRIPTOR_SET;
use super::proto::admin_server::AdminServer;
use crate::pipeline::{Draft, complete, headers, request_id};
use crate::problem::Problem;
use crate::rest::host::host_is_valid;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use natterjack_core::audit::{Status as AuditStatus, Transport};
use natterjack_core::principal::AdminAccess;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::{TcpListener, UnixListener};

/// Host names a request to the metrics listener may carry.
const LOOPBACK_HOSTS: [&str; 4] = ["127.0.0.1", "localhost", "::1", "[::1]"];

/// The Admin service and reflection, as one router.
fn admin_routes(state: GrpcState, operator: AdminAccess) -> Result<axum::Router, String> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("gRPC reflection: {e}"))?;
    Ok(
        tonic::service::Routes::new(AdminServer::new(AdminService::new(state, operator)))
            .add_service(reflection)
            .into_axum_router(),
    )
}

fn is_grpc(req: &Request) -> bool {
    req.version() == http::Version::HTTP_2
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/grpc"))
}

/// The host name a request is addressed to (`:authority`, else `Host`), without its port.
fn host_name(req: &Request) -> Option<String> {
    req.uri().host().map(str::to_owned).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| match h.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
                _ => h.to_owned(),
            })
    })
}

/// The audit draft of a request to an operator's listener, made when it arrives (before
/// anything is awaited: a request is not `Sync`).
fn draft_of(state: &GrpcState, req: &Request) -> Draft {
    let mut draft = Draft::new(
        Transport::Internal,
        request_id::fresh(),
        &format!("{} {}", req.method(), req.uri().path()),
        "",
        state.app.clock.clone(),
    );
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        draft.client_ip(peer.ip());
    }
    draft
}

/// Answers a refused request with a problem and records the refusal.
async fn refuse(
    state: &GrpcState,
    draft: Draft,
    status: StatusCode,
    detail: &str,
    reason: &str,
) -> Response {
    let id = draft.request_id().to_owned();
    complete(
        &state.app,
        draft,
        AuditStatus::Http(status.as_u16()),
        Some(reason.to_owned()),
    )
    .await;
    let mut problem = Problem::new(status, Some(detail.to_owned()));
    problem.request_id = id;
    problem.into_response()
}

/// The guard of the metrics listener: one valid `Host` naming a loopback host, then
/// `GET /metrics`, or gRPC when Admin is served here on purpose.
async fn local_callers_only(
    State((state, admin)): State<(GrpcState, bool)>,
    req: Request,
    next: Next,
) -> Response {
    let seen = draft_of(&state, &req);
    if !host_is_valid(req.headers(), req.version()) {
        return refuse(
            &state,
            seen,
            StatusCode::BAD_REQUEST,
            "a request needs exactly one valid Host header",
            "missing, repeated or invalid Host header",
        )
        .await;
    }
    if host_name(&req).is_some_and(|h| !LOOPBACK_HOSTS.contains(&h.as_str())) {
        return refuse(
            &state,
            seen,
            StatusCode::FORBIDDEN,
            "loopback host names only",
            "host name is not a loopback name",
        )
        .await;
    }
    let metrics = req.uri().path() == "/metrics" && req.method() == http::Method::GET;
    if metrics || (admin && is_grpc(&req)) {
        return next.run(req).await;
    }
    let detail = if admin {
        "gRPC over HTTP/2, or GET /metrics, only"
    } else {
        "GET /metrics only: the Admin service is on the admin socket"
    };
    drop(req);
    refuse(
        &state,
        seen,
        StatusCode::FORBIDDEN,
        detail,
        "not an operator request",
    )
    .await
}

/// The guard of the admin socket: gRPC only.
async fn grpc_only(State(state): State<GrpcState>, req: Request, next: Next) -> Response {
    let seen = draft_of(&state, &req);
    if is_grpc(&req) {
        return next.run(req).await;
    }
    drop(req);
    refuse(
        &state,
        seen,
        StatusCode::FORBIDDEN,
        "gRPC over HTTP/2 only",
        "not an operator request",
    )
    .await
}

/// Serves `GET /metrics` (and, when given the operator's capability, which the binary
/// passes only with `internal.admin_over_tcp`, Admin and reflection) on a loopback TCP
/// listener until `shutdown` completes. Refuses an address that is not loopback: it is
/// plaintext.
pub async fn serve_metrics(
    listener: TcpListener,
    state: GrpcState,
    admin_over_tcp: Option<AdminAccess>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "the internal listener must be on a loopback address, not {addr}"
        ));
    }
    let routes = match admin_over_tcp {
        Some(operator) => admin_routes(state.clone(), operator)?,
        None => axum::Router::new(),
    };
    let router = routes
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .layer(from_fn_with_state(
            (state, admin_over_tcp.is_some()),
            local_callers_only,
        ))
        .layer(from_fn(headers::stamp));
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| format!("internal listener: {e}"))
}

/// Serves Admin and reflection on the admin socket until `shutdown` completes, with the
/// operator's capability, which only the binary can mint. The socket's permissions (0600)
/// are set by whoever binds it.
pub async fn serve_admin_socket(
    listener: UnixListener,
    state: GrpcState,
    operator: AdminAccess,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let router = admin_routes(state.clone(), operator)?
        .layer(from_fn_with_state(state, grpc_only))
        .layer(from_fn(headers::stamp));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("admin socket: {e}"))
}
