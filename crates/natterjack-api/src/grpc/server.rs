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
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// Limits of the public listener, each set explicitly (tonic's defaults are unbounded).
#[derive(Debug, Clone, Copy)]
pub struct GrpcTransport {
    /// Largest request or response message, in bytes.
    pub max_message_bytes: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 keepalive ping interval; a peer that does not answer within
    /// `keepalive_timeout` is disconnected.
    pub keepalive_interval: Duration,
    /// How long to wait for a keepalive answer.
    pub keepalive_timeout: Duration,
    /// A connection is closed (gracefully) after this long, so no client holds one forever.
    pub max_connection_age: Duration,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Deadline of a unary call (a watch stream has its own, longer, limit).
    pub request_timeout: Duration,
    /// Simultaneous connections; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for GrpcTransport {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_concurrent_streams: 100,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(3600),
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// PEM material of the public listener.
pub struct PublicTls {
    /// Server certificate chain.
    pub cert_pem: Vec<u8>,
    /// Server private key.
    pub key_pem: Vec<u8>,
    /// The CA that client certificates must chain to.
    pub client_ca_pem: Vec<u8>,
}

/// Serves the public listener until `shutdown` completes.
pub async fn serve_public(
    listener: TcpListener,
    tls: PublicTls,
    state: GrpcState,
    transport: GrpcTransport,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), String> {
    let tls_config = ServerTlsConfig::new()
        .identity(Identity::from_pem(tls.cert_pem, tls.key_pem))
        .client_ca_root(Certificate::from_pem(tls.client_ca_pem))
        .client_auth_optional(false)
        .timeout(transport.handshake_timeout);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SpacesServer<SpacesService>>().await;
    tokio::spawn(report_readiness(health, state.clone()));
    let spaces = SpacesServer::new(SpacesService::new(state))
        .max_decoding_message_size(transport.max_message_bytes)
        .max_encoding_message_size(transport.max_message_bytes);
    Server::builder()
        .tls_config(tls_config)
        .map_err(|e| format!("gRPC TLS configuration: {e}"))?
        .max_concurrent_streams(transport.max_concurrent_streams)
        .http2_keepalive_interval(Some(transport.keepalive_interval))
        .http2_keepalive_timeout(Some(transport.keepalive_timeout))
        .max_connection_age(transport.max_connection_age)
        .tcp_keepalive(Some(transport.keepalive_interval))
        // A backstop only: the call pipeline enforces the deadline itself, and records it.
        .timeout(transport.request_timeout + Duration::from_secs(5))
        .add_service(health_service)
        .add_service(spaces)
        .serve_with_incoming_shutdown(
            super::connection_cap::capped(listener, transport.max_connections),
            shutdown,
        )
        .await
        .map_err(|e| format!("gRPC listener: {e}"))
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
