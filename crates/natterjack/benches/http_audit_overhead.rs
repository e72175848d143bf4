//! The audit trail's cost as a client sees it: `POST /spaces/{id}/messages` over HTTPS
//! (TLS, HTTP/2, Basic authentication with a warm verification cache, the whole pipeline)
//! against a server whose audit log is the real one, and against the same server whose
//! audit records are discarded instead of committed (the baseline: everything but the audit
//! writes). Results go to `target/criterion/audit/http.json` for `bench/audit-throughput`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use async_trait::async_trait;
use natterjack::config::Config;
use natterjack_core::audit::{
    AuditKey, AuditLog, AuditQuery, AuditStore, ChainHead, StoredAuditRecord,
};
use natterjack_core::ports::StoreError;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const SECONDS: u64 = 5;
const PASSWORD: &str = "violet-anvil-73-harbour";

/// The baseline's audit store: accepts every batch and keeps nothing.
struct Discard;

#[async_trait]
impl AuditStore for Discard {
    async fn audit_head(&self) -> Result<Option<ChainHead>, StoreError> {
        Ok(None)
    }
    async fn append_audit(&self, _: &[StoredAuditRecord]) -> Result<(), StoreError> {
        Ok(())
    }
    async fn audit_in_order(&self, _: i64, _: u32) -> Result<Vec<StoredAuditRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn audit_page(&self, _: &AuditQuery) -> Result<Vec<StoredAuditRecord>, StoreError> {
        Ok(Vec::new())
    }
}

/// Starts a server (audited or not) and returns its base URL, CA file and the temp dir.
async fn start(audited: bool) -> (String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    cfg.rate_limit.enabled = false;
    let mut assembled = natterjack::runtime::assemble(&cfg).await.unwrap();
    if !audited {
        assembled.state.audit = Arc::new(
            AuditLog::start(Arc::new(Discard), AuditKey::new([0; 32]), None)
                .await
                .unwrap(),
        );
    }
    let app = assembled.app(|routes| routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(natterjack_api::server::serve(
        listener,
        assembled.tls,
        app,
        assembled.transport,
        std::future::pending(),
    ));
    (format!("https://{addr}"), cfg.data_dir.join("ca.pem"), dir)
}

async fn run(audited: bool) -> f64 {
    let (base, ca, _dir) = start(audited).await;
    let pem = std::fs::read(&ca).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/users"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client
        .post(format!("{base}/spaces"))
        .basic_auth("alice", Some(PASSWORD))
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap();
    let space = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let url = format!("{base}/spaces/{space}/messages");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, stop, done) =
                (client.clone(), url.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .post(&url)
                        .basic_auth("alice", Some(PASSWORD))
                        .json(&json!({"message": "benchmark"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("http_audit_overhead: benchmark");
        return;
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut discarded = Vec::new();
    let mut audited = Vec::new();
    for _ in 0..2 {
        discarded.push(rt.block_on(run(false)));
        audited.push(rt.block_on(run(true)));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let report = json!({
        "clients": CLIENTS,
        "seconds_per_run": SECONDS,
        "runs_each": audited.len(),
        "discarded_requests_per_s": mean(&discarded),
        "audited_requests_per_s": mean(&audited),
        "ratio": mean(&audited) / mean(&discarded),
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/criterion/audit/http.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("http audit overhead: {report}");
}
