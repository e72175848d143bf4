//! The two gRPC listeners and what each exposes.
//!
//! - **Public** (mutual TLS, default 127.0.0.1:8444): `natterjack.v1.Spaces` and
//!   `grpc.health.v1.Health`, nothing else. A client without a certificate chained to the
//!   client CA fails the TLS handshake.
//! - **Internal** (plaintext, loopback only, default 127.0.0.1:9090): `natterjack.v1.Admin`,
//!   server reflection, and Prometheus metrics at `GET /metrics`.

use super::admin::AdminService;
use super::call::GrpcState;
use super::proto::FILE_DESCRIPTOR_SET;
use super::proto::admin_server::AdminServer;
use super::proto::spaces_server::SpacesServer;
use super::spaces::SpacesService;
use crate::transport::{ListenerSpec, Protocol, TransportLimits};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Limits of the public listener, each set explicitly (tonic's defaults are unbounded).
#[derive(Debug, Clone)]
pub struct GrpcTransport {
    /// Largest request or response message, in bytes.
    pub max_message_bytes: usize,
    /// HTTP/2 keepalive ping interval; a peer that does not answer within
    /// `keepalive_timeout` is disconnected.
    pub keepalive_interval: Duration,
    /// How long to wait for a keepalive answer.
    pub keepalive_timeout: Duration,
    /// The connection limits shared with the REST listener: caps, handshake, first-request
    /// and idle deadlines, maximum age, concurrent streams.
    pub limits: TransportLimits,
}

impl Default for GrpcTransport {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            limits: TransportLimits {
                max_connection_age: Some(Duration::from_secs(3600)),
                ..TransportLimits::default()
            },
        }
    }
}

impl GrpcTransport {
    /// The listener's description for the shared accept loop.
    pub fn spec(&self) -> ListenerSpec {
        ListenerSpec {
            name: "grpc",
            protocol: Protocol::Grpc {
                keepalive_interval: self.keepalive_interval,
                keepalive_timeout: self.keepalive_timeout,
            },
            limits: self.limits.clone(),
        }
    }
}

/// Serves the public listener until `shutdown` completes. `tls` must require a client
/// certificate (the mutual TLS of this listener) and offer ALPN `h2`. Connections go
/// through the same accept loop as the REST listener ([`crate::transport`]), so the same
/// caps and deadlines hold.
pub async fn serve_public(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: GrpcState,
    transport: GrpcTransport,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), String> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SpacesServer<SpacesService>>().await;
    tokio::spawn(report_readiness(health, state.clone()));
    let spaces = SpacesServer::new(SpacesService::new(state))
        .max_decoding_message_size(transport.max_message_bytes)
        .max_encoding_message_size(transport.max_message_bytes);
    // Unknown services and methods get UNIMPLEMENTED from the router's fallback.
    let app = tonic::service::Routes::new(health_service)
        .add_service(spaces)
        .into_axum_router();
    crate::transport::serve(listener, tls, app, transport.spec(), shutdown).await;
    Ok(())
}

/// Keeps `grpc.health.v1.Health` truthful: `NOT_SERVING` while the database does not answer.
async fn report_readiness(health: tonic_health::server::HealthReporter, state: GrpcState) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let status = if state.app.service.ready().await.is_ok() {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        // The whole server ("") and the Spaces service both follow the database.
        health.set_service_status("", status).await;
        health
            .set_service_status("natterjack.v1.Spaces", status)
            .await;
    }
}

/// Host names a request to the internal listener may carry: a page in a browser on this host
/// that resolves another name to 127.0.0.1 (DNS rebinding) is refused.
const LOOPBACK_HOSTS: [&str; 4] = ["127.0.0.1", "localhost", "::1", "[::1]"];

/// The internal listener answers only what a local operator's tools send: gRPC (HTTP/2 with
/// a gRPC content type, which no browser can produce cross-origin) and `GET /metrics`, each
/// addressed to a loopback host name.
async fn local_callers_only(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let host = req.uri().host().map(str::to_owned).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| match h.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
                _ => h.to_owned(),
            })
    });
    if host.is_some_and(|h| !LOOPBACK_HOSTS.contains(&h.as_str())) {
        return (http::StatusCode::FORBIDDEN, "loopback host names only").into_response();
    }
    let grpc = req.version() == http::Version::HTTP_2
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/grpc"));
    let metrics = req.uri().path() == "/metrics" && req.method() == http::Method::GET;
    if grpc || metrics {
        next.run(req).await
    } else {
        (
            http::StatusCode::FORBIDDEN,
            "gRPC over HTTP/2, or GET /metrics, only",
        )
            .into_response()
    }
}

/// Serves the internal listener until `shutdown` completes. Refuses an address that is not
/// loopback: it is plaintext and carries the operator's authority.
pub async fn serve_internal(
    listener: TcpListener,
    state: GrpcState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "the internal listener must be on a loopback address, not {addr}"
        ));
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("gRPC reflection: {e}"))?;
    let router = tonic::service::Routes::new(AdminServer::new(AdminService::new(state)))
        .add_service(reflection)
        .into_axum_router()
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .layer(axum::middleware::from_fn(local_callers_only));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("internal listener: {e}"))
}
