//! Connections held open without being used, as an attacker holds them to exhaust a
//! listener: capped per client address, evicted first at the listener's cap, and closed on
//! time, on both public listeners, while a client from another address keeps being served.
//! Every connection here completes a real TLS handshake with the real binary.

use crate::support::raw::{GOAWAY, Idle, idle, tls_from, until_closed};
use crate::support::{TestServer, cli, client_trusting};
use http_body_util::Empty;
use hyper::body::Bytes;
use natterjack_api::grpc::proto::ListSpacesRequest;
use natterjack_api::grpc::proto::spaces_client::SpacesClient;
use reqwest::StatusCode;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const LEGITIMATE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const ACCOMPLICE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
const ANOTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));

/// The deadlines these tests configure (seconds), and how late a close may come: the
/// deadline, one second of drain, and scheduling slack.
const DEADLINE_SECS: u64 = 2;
const LATEST_CLOSE: Duration = Duration::from_secs(DEADLINE_SECS + 3);
const EARLIEST_CLOSE: Duration = Duration::from_millis(DEADLINE_SECS * 1000 - 500);

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("https://").parse().unwrap()
}

/// A client that keeps calling `GET /health` from `from` on a new connection each time,
/// until stopped; counts what was served and what failed.
struct KeepServing {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl KeepServing {
    fn start(server: &TestServer, from: IpAddr) -> Self {
        let client = client_trusting(&server.data_dir().join("ca.pem"), |b| {
            b.local_address(from)
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
        });
        let url = server.url("/health");
        let (stop, served, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let task = tokio::spawn({
            let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == StatusCode::OK => {
                            served.fetch_add(1, Ordering::Relaxed)
                        }
                        other => {
                            eprintln!("the legitimate client was not served: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Self {
            stop,
            served,
            failed,
            task,
        }
    }

    /// Stops the client; returns (served, failed).
    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (
            self.served.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test]
async fn idle_connections_from_one_address_are_capped_and_closed_on_time_while_another_client_is_served()
 {
    let deadline = DEADLINE_SECS.to_string();
    let server = TestServer::start_with(&[
        ("NATTERJACK_REST__MAX_CONNECTIONS_PER_CLIENT", "6"),
        ("NATTERJACK_REST__HEADER_READ_TIMEOUT_SECS", &deadline),
        ("NATTERJACK_REST__KEEP_ALIVE_TIMEOUT_SECS", &deadline),
        ("NATTERJACK_REST__HTTP2_IDLE_TIMEOUT_SECS", &deadline),
    ])
    .await;
    let ca = server.data_dir().join("ca.pem");
    let rest = addr(&server.base);
    let legitimate = KeepServing::start(&server, LEGITIMATE);
    let kinds = [
        Idle::Http1,
        Idle::Http1,
        Idle::Http2Silent,
        Idle::Http2Silent,
        Idle::Http2Preface,
        Idle::Http2Preface,
    ];
    let mut watchers = Vec::new();
    for kind in kinds {
        let tls = idle(&ca, None, kind, ATTACKER, rest)
            .await
            .expect("a connection within the per-address cap");
        let http2 = kind != Idle::Http1;
        watchers.push((
            kind,
            tokio::spawn(until_closed(tls, http2, Duration::from_secs(30))),
        ));
    }
    for _ in 0..10 {
        assert!(
            idle(&ca, None, Idle::Http1, ATTACKER, rest).await.is_err(),
            "a connection beyond the per-address cap completed its handshake"
        );
    }
    for (kind, watcher) in watchers {
        let ended = watcher
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("an idle {kind:?} connection was never closed"));
        assert!(
            (EARLIEST_CLOSE..LATEST_CLOSE).contains(&ended.after),
            "an idle {kind:?} connection closed after {:?}",
            ended.after
        );
        if kind == Idle::Http2Preface {
            assert!(
                ended.frames.contains(&GOAWAY),
                "no GOAWAY before closing an idle HTTP/2 connection: {:?}",
                ended.frames
            );
        }
    }
    // Their slots are free again: the same address may connect.
    assert!(idle(&ca, None, Idle::Http1, ATTACKER, rest).await.is_ok());
    let (served, failed) = legitimate.stop().await;
    assert_eq!(
        failed, 0,
        "the other client was refused while the attack went on"
    );
    assert!(
        served >= 20,
        "the other client was served {served} times only"
    );
    let metrics = server.metrics().await;
    for line in [
        "natterjack_connections_refused_total{listener=\"rest\",reason=\"per_client\"} 10",
        "natterjack_connections_closed_total{listener=\"rest\",reason=\"first_request\"} 6",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
}

/// Sends one `GET /health` over a raw HTTP/1.1 connection and reads the whole response.
async fn one_http1_request(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tls.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the response was complete");
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if body.len() >= length {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return;
            }
        }
    }
}

#[tokio::test]
async fn connections_idle_after_a_request_are_closed_after_the_keep_alive_and_http2_idle_timeouts()
{
    let server = TestServer::start_with(&[
        ("NATTERJACK_REST__HEADER_READ_TIMEOUT_SECS", "30"),
        ("NATTERJACK_REST__KEEP_ALIVE_TIMEOUT_SECS", "2"),
        ("NATTERJACK_REST__HTTP2_IDLE_TIMEOUT_SECS", "3"),
    ])
    .await;
    let ca = server.data_dir().join("ca.pem");
    let rest = addr(&server.base);

    // HTTP/1.1 keep-alive: one request, then silence.
    let connector = crate::support::raw::connector(&ca, &[b"http/1.1"], None);
    let mut tls = tls_from(&connector, ATTACKER, rest).await.unwrap();
    one_http1_request(&mut tls).await;
    let ended = until_closed(tls, false, Duration::from_secs(30))
        .await
        .expect("an idle keep-alive connection was never closed");
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(5)).contains(&ended.after),
        "closed {:?} after its response (keep-alive timeout 2 s)",
        ended.after
    );

    // HTTP/2: one stream, then none open; the server sends GOAWAY and the connection ends.
    let connector = crate::support::raw::connector(&ca, &[b"h2"], None);
    let tls = tls_from(&connector, ATTACKER, rest).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    let driven = tokio::spawn(connection);
    let request = hyper::Request::get(format!("{}/health", server.base))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    let answered = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), driven)
        .await
        .expect("an HTTP/2 connection without streams was never closed")
        .unwrap()
        .expect("the HTTP/2 connection ended with an error instead of a GOAWAY");
    let after = answered.elapsed();
    assert!(
        (Duration::from_millis(2500)..Duration::from_secs(6)).contains(&after),
        "closed {after:?} after its last stream (HTTP/2 idle timeout 3 s)"
    );
}

#[tokio::test]
async fn at_the_listener_cap_idle_connections_make_room_for_a_client_from_another_address() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_REST__MAX_CONNECTIONS", "6"),
        ("NATTERJACK_REST__MAX_CONNECTIONS_PER_CLIENT", "3"),
        ("NATTERJACK_REST__HEADER_READ_TIMEOUT_SECS", "60"),
    ])
    .await;
    let ca = server.data_dir().join("ca.pem");
    let rest = addr(&server.base);
    let mut held = Vec::new();
    for from in [ATTACKER, ACCOMPLICE] {
        for kind in [Idle::Http1, Idle::Http2Silent, Idle::Http2Preface] {
            let tls = idle(&ca, None, kind, from, rest).await.unwrap();
            held.push(tokio::spawn(until_closed(
                tls,
                kind != Idle::Http1,
                Duration::from_secs(30),
            )));
        }
    }
    // The listener is full of idle connections; a new client is still served, every time,
    // on a new connection each time.
    let legitimate = KeepServing::start(&server, LEGITIMATE);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (served, failed) = legitimate.stop().await;
    assert_eq!(failed, 0, "the new client was refused at the cap");
    assert!(
        served >= 10,
        "the new client was served {served} times only"
    );
    let mut closed = 0;
    for watcher in held {
        if let Some(ended) = watcher.await.unwrap() {
            assert!(ended.after < Duration::from_secs(30));
            closed += 1;
        }
    }
    assert!(closed >= 1, "no idle connection gave way");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("natterjack_connections_evicted_total{listener=\"rest\"}"),
        "{metrics}"
    );
}

/// Issues a client certificate for `name` (who must exist) from the server's CA.
fn client_certificate(server: &TestServer, name: &str) -> (PathBuf, PathBuf) {
    let (ok, out, err) = cli(
        &server.data_dir(),
        &["certs", "issue-client", name],
        "",
        &[],
    );
    assert!(ok, "{out}{err}");
    let dir = server.data_dir().join("clients");
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    )
}

#[tokio::test]
async fn idle_grpc_connections_are_capped_per_address_evicted_at_the_cap_and_closed_on_time() {
    let deadline = DEADLINE_SECS.to_string();
    let server = TestServer::start_with(&[
        ("NATTERJACK_GRPC__MAX_CONNECTIONS", "8"),
        ("NATTERJACK_GRPC__MAX_CONNECTIONS_PER_CLIENT", "3"),
        ("NATTERJACK_GRPC__HEADER_READ_TIMEOUT_SECS", &deadline),
        ("NATTERJACK_GRPC__IDLE_TIMEOUT_SECS", &deadline),
    ])
    .await;
    server.user("alice").await;
    let (cert, key) = client_certificate(&server, "alice");
    let ca = server.data_dir().join("ca.pem");
    let grpc = addr(server.grpc.as_deref().unwrap());
    let identity = Some((cert.as_path(), key.as_path()));

    // 8 idle connections from three addresses fill the listener; a fourth from one
    // address is refused before its handshake.
    let mut watchers = Vec::new();
    for (from, kinds) in [
        (
            ATTACKER,
            &[Idle::Http2Preface, Idle::Http2Preface, Idle::Http2Silent][..],
        ),
        (
            ACCOMPLICE,
            &[Idle::Http2Preface, Idle::Http2Silent, Idle::Http2Silent][..],
        ),
        (ANOTHER, &[Idle::Http2Preface, Idle::Http2Silent][..]),
    ] {
        for &kind in kinds {
            let tls = idle(&ca, identity, kind, from, grpc)
                .await
                .expect("a connection within the caps");
            watchers.push((
                kind,
                tokio::spawn(until_closed(tls, true, Duration::from_secs(30))),
            ));
        }
    }
    assert!(
        idle(&ca, identity, Idle::Http2Preface, ATTACKER, grpc)
            .await
            .is_err(),
        "a fourth connection from one address completed its handshake"
    );

    // A client from another address is served throughout.
    crate::support::install_crypto();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&ca).unwrap()))
        .identity(Identity::from_pem(
            std::fs::read(&cert).unwrap(),
            std::fs::read(&key).unwrap(),
        ));
    let channel = Channel::from_shared(server.grpc.clone().unwrap())
        .unwrap()
        .local_address(Some(LEGITIMATE))
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    let mut client = SpacesClient::new(channel);
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(DEADLINE_SECS + 2) {
        client
            .list_spaces(ListSpacesRequest {})
            .await
            .expect("the legitimate client was refused");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(calls >= 20, "served {calls} calls only");

    for (kind, watcher) in watchers {
        let ended = watcher
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("an idle {kind:?} gRPC connection was never closed"));
        assert!(
            ended.after < LATEST_CLOSE,
            "an idle {kind:?} gRPC connection lived {:?}",
            ended.after
        );
        if kind == Idle::Http2Preface {
            assert!(
                ended.frames.contains(&GOAWAY),
                "no GOAWAY before closing an idle gRPC connection: {:?}",
                ended.frames
            );
        }
    }
    let metrics = server.metrics().await;
    for line in [
        "natterjack_connections_refused_total{listener=\"grpc\",reason=\"per_client\"} 1",
        "natterjack_connections_evicted_total{listener=\"grpc\"} 1",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
}

#[tokio::test]
async fn refused_connections_are_logged_at_most_once_per_interval_and_tls_chatter_is_not_logged() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_REST__MAX_CONNECTIONS_PER_CLIENT", "2"),
        ("NATTERJACK_REST__HEADER_READ_TIMEOUT_SECS", "60"),
    ])
    .await;
    let ca = server.data_dir().join("ca.pem");
    let rest = addr(&server.base);
    let _held = (
        idle(&ca, None, Idle::Http1, ATTACKER, rest).await.unwrap(),
        idle(&ca, None, Idle::Http1, ATTACKER, rest).await.unwrap(),
    );
    for _ in 0..30 {
        assert!(idle(&ca, None, Idle::Http1, ATTACKER, rest).await.is_err());
    }
    // A client that names an IP address as SNI, which rustls warns about on every handshake.
    for _ in 0..5 {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                server.authority(),
                "-servername",
                "127.0.0.1",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl s_client");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("CONNECTED"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The first refusal is logged at once, the other 29 together after the interval.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let log = server.stderr_lines();
    let refusals: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("connections refused or evicted"))
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:#?}");
    assert!(
        refusals[0].contains("refused_per_client=1"),
        "{}",
        refusals[0]
    );
    assert!(
        refusals[1].contains("refused_per_client=29"),
        "{}",
        refusals[1]
    );
    assert!(
        refusals
            .iter()
            .all(|l| l.contains("latest_client=127.0.0.2")),
        "{refusals:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("SNI")),
        "rustls' per-handshake warnings reached the log: {log:#?}"
    );
}
