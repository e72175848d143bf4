//! Unary gRPC throughput over mutual TLS: `Spaces/GetSpace` through Natterjack's whole gRPC
//! pipeline (peer and principal rate limits, certificate → principal lookup, access check,
//! audit record) beside a bare tonic service that answers the same RPC with the same storage
//! read and nothing else, behind the same accept loop and TLS configuration. Results go to
//! `target/criterion/grpc/overhead.json` for `bench/grpc-overhead`.
//!
//! With `GRPC_ONLY=bare` or `GRPC_ONLY=natterjack` it runs one server alone for twice as
//! long and prints its rate, writing nothing: the run to put under a profiler, since the
//! clients share the process and a profile of the paired runs mixes both servers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use natterjack::config::Config;
use natterjack_api::grpc::proto::spaces_client::SpacesClient;
use natterjack_api::grpc::proto::spaces_server::{Spaces, SpacesServer};
use natterjack_api::grpc::proto::*;
use natterjack_core::domain::SpaceId;
use natterjack_core::ports::Store;
use natterjack_core::principal::Caller;
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Request, Response, Status};

const CLIENTS: usize = 32;
const CONNECTIONS: usize = 4;
const SECONDS: u64 = 4;
const PAIRS: usize = 3;
const PASSWORD: &str = "violet-anvil-73-harbour";

/// The baseline: `GetSpace` is one storage read; every other RPC is unimplemented.
struct Bare {
    store: Arc<dyn Store>,
}

fn none<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the baseline"))
}

#[tonic::async_trait]
impl Spaces for Bare {
    async fn get_space(&self, req: Request<GetSpaceRequest>) -> Result<Response<Space>, Status> {
        let id = SpaceId::from_i64(req.get_ref().space_id)
            .map_err(|_| Status::invalid_argument("id"))?;
        let s = self
            .store
            .find_space(id)
            .await
            .map_err(|_| Status::unavailable("store"))?
            .ok_or_else(|| Status::not_found("space"))?;
        Ok(Response::new(natterjack_api::grpc::convert::space(s)))
    }
    async fn create_space(
        &self,
        _: Request<CreateSpaceRequest>,
    ) -> Result<Response<Space>, Status> {
        none()
    }
    async fn list_spaces(
        &self,
        _: Request<ListSpacesRequest>,
    ) -> Result<Response<ListSpacesResponse>, Status> {
        none()
    }
    async fn post_message(
        &self,
        _: Request<PostMessageRequest>,
    ) -> Result<Response<Message>, Status> {
        none()
    }
    async fn list_messages(
        &self,
        _: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        none()
    }
    async fn get_message(
        &self,
        _: Request<GetMessageRequest>,
    ) -> Result<Response<Message>, Status> {
        none()
    }
    async fn delete_message(
        &self,
        _: Request<DeleteMessageRequest>,
    ) -> Result<Response<DeleteMessageResponse>, Status> {
        none()
    }
    async fn list_members(
        &self,
        _: Request<ListMembersRequest>,
    ) -> Result<Response<ListMembersResponse>, Status> {
        none()
    }
    async fn grant_permissions(
        &self,
        _: Request<GrantPermissionsRequest>,
    ) -> Result<Response<Member>, Status> {
        none()
    }
    async fn revoke_permissions(
        &self,
        _: Request<RevokePermissionsRequest>,
    ) -> Result<Response<Member>, Status> {
        none()
    }
    type WatchMessagesStream = ReceiverStream<Result<Message, Status>>;
    async fn watch_messages(
        &self,
        _: Request<WatchMessagesRequest>,
    ) -> Result<Response<Self::WatchMessagesStream>, Status> {
        none()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    natterjack: String,
    bare: String,
    ca: Vec<u8>,
    identity: (Vec<u8>, Vec<u8>),
    space: i64,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    cfg.rate_limit.enabled = false;
    let assembled = natterjack::runtime::assemble(&cfg).await.unwrap();
    let service = assembled.state.service.clone();
    let alice = natterjack_core::domain::Username::parse("alice").unwrap();
    service
        .register(
            &Caller::Anonymous,
            None,
            alice.clone(),
            SecretString::from(PASSWORD),
        )
        .await
        .unwrap();
    let principal = assembled
        .state
        .authentication
        .authenticate(
            &natterjack_core::auth::Credential::Certificate {
                name: "alice".to_owned(),
            },
            std::net::IpAddr::from([127, 0, 0, 1]),
        )
        .await
        .unwrap();
    let space = service
        .create_space(
            &principal,
            natterjack_core::domain::SpaceName::parse("bench").unwrap(),
            None,
        )
        .await
        .unwrap()
        .id
        .get();
    let issued =
        natterjack::dev_ca::issue_client(&cfg.data_dir, "alice", &cfg.data_dir.join("clients"))
            .unwrap();
    let tls = assembled.grpc_tls.unwrap();
    let ca = std::fs::read(cfg.data_dir.join("ca.pem")).unwrap();
    let bare_tls = tls.clone();
    let bare_spec = assembled.grpc_transport.spec();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let natterjack = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(natterjack_api::grpc::serve_public(
        listener,
        tls,
        assembled.grpc.clone(),
        assembled.grpc_transport,
        std::future::pending(),
    ));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare = format!("https://{}", listener.local_addr().unwrap());
    let store = assembled.store.store();
    // The same accept loop, TLS configuration and connection limits as Natterjack's.
    let app = tonic::service::Routes::new(SpacesServer::new(Bare { store })).into_axum_router();
    tokio::spawn(natterjack_api::transport::serve(
        listener,
        bare_tls,
        app,
        bare_spec,
        std::future::pending(),
    ));
    Setup {
        _dir: dir,
        natterjack,
        bare,
        ca,
        identity: (
            std::fs::read(issued.cert).unwrap(),
            std::fs::read(issued.key).unwrap(),
        ),
        space,
    }
}

async fn run(setup: &Setup, url: &str, seconds: u64) -> f64 {
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(setup.ca.clone()))
            .identity(Identity::from_pem(
                setup.identity.0.clone(),
                setup.identity.1.clone(),
            ));
        channels.push(
            Channel::from_shared(url.to_owned())
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let space = setup.space;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut client = SpacesClient::new(channels[i % CONNECTIONS].clone());
            let (stop, done) = (stop.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let got = client
                        .get_space(GetSpaceRequest { space_id: space })
                        .await
                        .unwrap();
                    assert_eq!(got.get_ref().id, space);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (started, before) = (Instant::now(), done.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let rate = (done.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    rate
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("grpc_overhead: benchmark");
        return;
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let setup = rt.block_on(setup());
    if let Ok(only) = std::env::var("GRPC_ONLY") {
        let url = match only.as_str() {
            "bare" => &setup.bare,
            "natterjack" => &setup.natterjack,
            other => panic!("GRPC_ONLY is bare or natterjack, not {other:?}"),
        };
        let rate = rt.block_on(run(&setup, url, 2 * SECONDS));
        println!("grpc overhead, {only} alone: {rate:.0} calls/s");
        return;
    }
    let (mut bare, mut full, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PAIRS {
        let b = rt.block_on(run(&setup, &setup.bare, SECONDS));
        let f = rt.block_on(run(&setup, &setup.natterjack, SECONDS));
        bare.push(b);
        full.push(f);
        ratios.push(f / b);
    }
    ratios.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let report = json!({
        "clients": CLIENTS,
        "connections": CONNECTIONS,
        "seconds_per_run": SECONDS,
        "pairs": PAIRS,
        "bare_calls_per_s": mean(&bare),
        "natterjack_calls_per_s": mean(&full),
        "median_pair_ratio": ratios[ratios.len() / 2],
        "pair_ratios": ratios,
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/criterion/grpc/overhead.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("grpc overhead: {report}");
}
