//! The public gRPC listener (mutual TLS, default 127.0.0.1:8444): `natterjack.v1.Spaces`
//! and `grpc.health.v1.Health`, nothing else. A client without a certificate chained to the
//! client CA fails the TLS handshake. The operators' listeners are in [`super::internal`].

use super::call::GrpcState;
use super::proto::FILE_DESCRIPTOR_SET;
use super::proto::spaces_server::{self, SpacesServer};
use super::refusals;
use super::spaces::SpacesService;
use crate::transport::{ListenerSpec, Protocol, TransportLimits};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic_health::pb::health_server;

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
    let spaces = SpacesServer::new(SpacesService::new(state.clone()))
        .max_decoding_message_size(transport.max_message_bytes)
        .max_encoding_message_size(transport.max_message_bytes);
    // Unknown services and methods get UNIMPLEMENTED from the router's fallback.
    let app = tonic::service::Routes::new(health_service)
        .add_service(spaces)
        .into_axum_router();
    // Calls refused before their pipeline runs, and streams refused over the cap, are
    // recorded too (`refusals`).
    let served = refusals::served_methods(
        &[FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET],
        &[spaces_server::SERVICE_NAME, health_server::SERVICE_NAME],
    );
    let app = refusals::record_refusals(app, state.clone(), served);
    let report = Some(refusals::report_refused_streams(state));
    crate::transport::serve_reporting(listener, tls, app, transport.spec(), report, shutdown).await;
    Ok(())
}

/// Keeps `grpc.health.v1.Health` truthful: `NOT_SERVING` while the database does not
/// answer, and from the moment shutdown begins (at once, not at the next tick, so that a
/// balancer sees it for the whole drain).
async fn report_readiness(health: tonic_health::server::HealthReporter, state: GrpcState) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut phase = state.app.lifecycle.watch();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let status = if state.app.lifecycle.is_serving() && state.app.service.ready().await.is_ok()
        {
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
