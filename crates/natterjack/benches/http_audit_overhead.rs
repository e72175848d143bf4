//! The audit trail's cost as a client sees it: `POST /spaces/{id}/messages` over HTTPS
//! (TLS, HTTP/2, Basic authentication with a warm verification cache, the whole pipeline)
//! against a server whose audit log is the real one, and against the same server built with
//! the unaudited baseline (records dropped as soon as they are made, no writer at all). Results go to `target/criterion/audit/http.json` for `bench/audit-throughput`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use natterjack::config::Config;
use natterjack_core::audit::AuditLog;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Concurrency levels: one client (latency alone), one where latency still limits the
/// clients, one that saturates the server (throughput is what a saturated server sustains).
const CLIENTS: [usize; 3] = [1, 16, 64];
/// Measured seconds per run, after a warm-up that opens the connections.
const SECONDS: u64 = 4;
const WARM_UP: Duration = Duration::from_millis(500);
/// Alternating (discarded, committed) pairs per concurrency level.
const PAIRS: usize = 4;
const PASSWORD: &str = "violet-anvil-73-harbour";

/// Starts a server (audited or not) and returns its base URL, CA file and the temp dir.
async fn start(audited: bool) -> (String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    cfg.rate_limit.enabled = false;
    // Every client connects from loopback: let them have the whole listener, as the load
    // harness does (64 clients and the one that made the fixtures are over the default 64).
    cfg.rest.max_connections_per_client = cfg.rest.max_connections;
    let mut assembled = natterjack::runtime::assemble(&cfg).await.unwrap();
    if !audited {
        assembled.state.audit = Arc::new(AuditLog::unaudited_baseline(&assembled.state.audit));
    }
    let app = assembled.app(|routes| routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(natterjack_api::transport::serve(
        listener,
        assembled.tls,
        app,
        assembled.transport,
        std::future::pending(),
    ));
    (format!("https://{addr}"), cfg.data_dir.join("ca.pem"), dir)
}

/// One run: the requests per second, and the latency of every request in the measured part.
async fn run(audited: bool, clients: usize) -> (f64, Vec<Duration>) {
    let (base, ca, _dir) = start(audited).await;
    let pem = std::fs::read(&ca).unwrap();
    // Each simulated client has its own TLS connection, as separate clients would.
    let new_client = || {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    };
    let client = new_client();
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
    let measuring = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, stop, done) = (new_client(), url.clone(), stop.clone(), done.clone());
            let measuring = measuring.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let r = client
                        .post(&url)
                        .basic_auth("alice", Some(PASSWORD))
                        .json(&json!({"message": "benchmark"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    if measuring.load(Ordering::Relaxed) {
                        latencies.push(sent.elapsed());
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(WARM_UP).await;
    measuring.store(true, Ordering::Relaxed);
    let (started, before) = (Instant::now(), done.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    let rate = (done.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    (rate, latencies)
}

/// The `q` quantile of `sorted`, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e3
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
    let levels: Vec<_> = CLIENTS
        .iter()
        .map(|&clients| {
            let (mut discarded, mut audited, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            let (mut discarded_lat, mut audited_lat) = (Vec::new(), Vec::new());
            for _ in 0..PAIRS {
                let (d, dl) = rt.block_on(run(false, clients));
                let (a, al) = rt.block_on(run(true, clients));
                discarded.push(d);
                audited.push(a);
                ratios.push(a / d);
                discarded_lat.extend(dl);
                audited_lat.extend(al);
            }
            ratios.sort_by(f64::total_cmp);
            discarded_lat.sort();
            audited_lat.sort();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            json!({
                "clients": clients,
                "unaudited_requests_per_s": mean(&discarded),
                "audited_requests_per_s": mean(&audited),
                "median_pair_ratio": ratios[ratios.len() / 2],
                "pair_ratios": ratios,
                "unaudited_p50_ms": quantile_ms(&discarded_lat, 0.5),
                "unaudited_p99_ms": quantile_ms(&discarded_lat, 0.99),
                "audited_p50_ms": quantile_ms(&audited_lat, 0.5),
                "audited_p99_ms": quantile_ms(&audited_lat, 0.99),
            })
        })
        .collect();
    let report = json!({
        "seconds_per_run": SECONDS,
        "pairs": PAIRS,
        "levels": levels,
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/criterion/audit/http.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("http audit overhead: {report}");
}
