//! The load baseline for `bench/load/run`: Natterjack's transport and storage with none of
//! its security controls.
//!
//! Same as the real server:
//! - TLS: the rustls configuration `natterjack::tls::server_config` builds (TLS 1.3/1.2,
//!   aws-lc-rs, ALPN h2 and http/1.1), from the server certificate and key that
//!   `natterjack serve` created in its data directory;
//! - transport: `natterjack_api::transport::serve`, the same tokio-rustls 0.26 + hyper-util
//!   accept loop (HTTP/1.1 keep-alive and HTTP/2) with the same transport limits;
//! - storage: the SQLite store opened by `natterjack::storage::prepare` (migrations, the
//!   authorizer, the same pool size), in a data directory of its own;
//! - JSON: the same view types as the REST handlers.
//!
//! Absent: rate limiting, authentication, audit records, access control, security headers,
//! request ids, request timeout, problem bodies. Two routes, each one storage call through
//! the `Store` trait:
//! - `GET /spaces/{id}/messages/{msgId}`: `Store::find_message`;
//! - `POST /spaces/{id}/messages` `{"message": "..."}`: `Store::insert_message`, as a fixed
//!   author (the one user created at start-up).
//!
//! Usage: `load_baseline --data-dir DIR --cert server.pem --key server-key.pem
//! [--listen 127.0.0.1:0]`. DIR should be fresh; a user, a space and one message are
//! created in it. Prints `baseline listening https://ADDR space=ID message=ID` once ready,
//! and serves until SIGTERM or SIGINT.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use natterjack::config::Config;
use natterjack_api::rest::views::{MessageView, NewMessage};
use natterjack_core::domain::{MessageId, MessageText, SpaceId, SpaceName, UserId, Username};
use natterjack_core::ports::Store;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
struct Baseline {
    store: Arc<dyn Store>,
    author: UserId,
}

async fn read_message(
    State(b): State<Baseline>,
    Path((space, id)): Path<(String, String)>,
) -> Response {
    let (Ok(space), Ok(id)) = (SpaceId::parse(&space), MessageId::parse(&id)) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match b.store.find_message(space, id).await {
        Ok(Some(m)) => Json(MessageView::from(m)).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn write_message(
    State(b): State<Baseline>,
    Path(space): Path<String>,
    Json(body): Json<NewMessage>,
) -> Response {
    let Ok(space) = SpaceId::parse(&space) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(text) = MessageText::parse(&body.message) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match b.store.insert_message(space, b.author, &text).await {
        Ok(m) => (StatusCode::CREATED, Json(MessageView::from(m))).into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

struct Args {
    data_dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    listen: SocketAddr,
}

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let (mut data_dir, mut cert, mut key) = (None, None, None);
    let mut listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value)),
            "--cert" => cert = Some(PathBuf::from(value)),
            "--key" => key = Some(PathBuf::from(value)),
            "--listen" => listen = value.parse().expect("--listen ADDR"),
            other => panic!("unknown argument {other}"),
        }
    }
    Args {
        data_dir: data_dir.expect("--data-dir DIR"),
        cert: cert.expect("--cert FILE"),
        key: key.expect("--key FILE"),
        listen,
    }
}

async fn shutdown() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() {
    // As `natterjack`'s main: one crypto provider, the default multi-threaded runtime.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("crypto provider");
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let cfg = Config {
            data_dir: args.data_dir,
            ..Config::default()
        };
        let storage = natterjack::storage::prepare(&cfg).await.unwrap();
        let store = storage.store();
        // Fixtures through the same port: the hash is never checked (no authentication here).
        let user = store
            .create_user(&Username::parse("alice").unwrap(), "not-a-password-hash")
            .await
            .unwrap();
        let space = store
            .create_space(&SpaceName::parse("bench").unwrap(), user.id)
            .await
            .unwrap();
        let message = store
            .insert_message(
                space.id,
                user.id,
                &MessageText::parse("hello from the load baseline").unwrap(),
            )
            .await
            .unwrap();
        let files = natterjack::tls::PairFiles {
            cert: args.cert.clone(),
            key: args.key.clone(),
        };
        let now = natterjack_core::clock::Clock::wall(&natterjack_core::clock::SystemClock);
        let certificate =
            natterjack::tls::ServedCertificate::load(files, now.to_date_time()).unwrap();
        let tls = natterjack::tls::server_config(Arc::new(certificate));
        // The transport limits `natterjack serve` derives from the same (default) settings.
        let mut transport = natterjack::runtime::rest_listener(&cfg);
        // All load comes from one address, as for Natterjack (bench/load/load.py raises its
        // per-address connection cap the same way).
        transport.limits.max_connections_per_client = transport.limits.max_connections;
        let app = Router::new()
            .route("/spaces/{id}/messages/{msg_id}", get(read_message))
            .route("/spaces/{id}/messages", post(write_message))
            .with_state(Baseline {
                store,
                author: user.id,
            });
        let listener = tokio::net::TcpListener::bind(args.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "baseline listening https://{addr} space={} message={}",
                space.id, message.id
            )
            .unwrap();
            out.flush().unwrap();
        }
        natterjack_api::transport::serve(listener, tls, app, transport, shutdown()).await;
        storage.close().await;
    });
}
