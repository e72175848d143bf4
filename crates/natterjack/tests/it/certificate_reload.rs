//! Certificate reload without a restart: a server given an operator's pair (`[tls]` cert and
//! key) serves a replaced pair to new handshakes on both public listeners, on SIGHUP or when
//! its look at the files notices the change, while connections already open finish on the
//! old one; a bad new pair is refused with an error naming the file, and the old pair stays.
//!
//! Every handshake here is real TLS against the real binary; which certificate was served is
//! read from the client's side of the handshake and compared, byte for byte, with the
//! certificate written to the file.

use crate::support::TestServer;
use crate::support::certs::{Leaf, TestCa, replace_file};
use crate::support::raw::{client_config, tls_from};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How long a test waits for what it expects before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The files of a server that was given an operator's certificate, and what its clients
/// need: a trust file holding both the old and the new CA, and a gRPC client certificate.
struct Operator {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    trust: PathBuf,
    client: (PathBuf, PathBuf),
    old: Leaf,
    new: Leaf,
}

impl Operator {
    /// The old pair issued by one CA, the new one by another, both trusted by the clients.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (old_ca, new_ca, clients_ca) = (
            TestCa::new("old"),
            TestCa::new("new"),
            TestCa::new("clients"),
        );
        let path = |name: &str| dir.path().join(name);
        let (old, new) = (old_ca.server("old server"), new_ca.server("new server"));
        replace_file(&path("server.pem"), &old.cert_pem, 0o644);
        replace_file(&path("server-key.pem"), &old.key_pem, 0o600);
        replace_file(
            &path("trust.pem"),
            &format!("{}{}", old_ca.pem, new_ca.pem),
            0o644,
        );
        replace_file(&path("clients-ca.pem"), &clients_ca.pem, 0o644);
        let client = clients_ca.client("alice");
        replace_file(&path("alice.pem"), &client.cert_pem, 0o644);
        replace_file(&path("alice-key.pem"), &client.key_pem, 0o600);
        Self {
            cert: path("server.pem"),
            key: path("server-key.pem"),
            trust: path("trust.pem"),
            client: (path("alice.pem"), path("alice-key.pem")),
            old,
            new,
            _dir: dir,
        }
    }

    /// Starts a server on the old pair that looks at its files every `check_secs`.
    async fn serve(&self, check_secs: &str) -> TestServer {
        let (cert, key) = (
            self.cert.display().to_string(),
            self.key.display().to_string(),
        );
        let client_ca = self.client.0.with_file_name("clients-ca.pem");
        let client_ca = client_ca.display().to_string();
        TestServer::start_with(&[
            ("NATTERJACK_TLS__CERT", cert.as_str()),
            ("NATTERJACK_TLS__KEY", key.as_str()),
            ("NATTERJACK_GRPC__CLIENT_CA", client_ca.as_str()),
            ("NATTERJACK_TLS__RELOAD_CHECK_SECS", check_secs),
            ("RUST_LOG", "warn,natterjack::tls=info"),
        ])
        .await
    }

    /// A REST client (ALPN `http/1.1`) trusting both CAs.
    fn rest(&self) -> TlsConnector {
        full_handshakes(client_config(&self.trust, &[b"http/1.1"], None))
    }

    /// A gRPC client (ALPN `h2`, alice's certificate) trusting both CAs.
    fn grpc(&self) -> TlsConnector {
        let (cert, key) = &self.client;
        full_handshakes(client_config(&self.trust, &[b"h2"], Some((cert, key))))
    }
}

/// A client that never resumes a session: a resumed handshake carries no certificate (the
/// client reports the one of the session it resumes), and every handshake here must show
/// which certificate the server presents now.
fn full_handshakes(mut config: rustls::ClientConfig) -> TlsConnector {
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

fn address(url: &str) -> SocketAddr {
    url.trim_start_matches("https://").parse().unwrap()
}

/// The leaf certificate the server presented in `tls`'s handshake.
fn presented(tls: &TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    let (_, session) = tls.get_ref();
    session.peer_certificates().unwrap()[0].to_vec()
}

/// A fresh handshake with `server`: the certificate it presented.
async fn handshake(connector: &TlsConnector, server: SocketAddr) -> Vec<u8> {
    presented(&tls_from(connector, LOCAL, server).await.unwrap())
}

/// An HTTP/1.1 connection over a finished handshake, and the certificate it was made with.
struct Held {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    certificate: Vec<u8>,
}

impl Held {
    async fn open(connector: &TlsConnector, server: &TestServer) -> std::io::Result<Self> {
        let tls = tls_from(connector, LOCAL, address(&server.base)).await?;
        let certificate = presented(&tls);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            certificate,
        })
    }

    /// `GET /health` on this connection: its status.
    async fn health(&mut self, server: &TestServer) -> Result<u16, String> {
        let request = hyper::Request::get("/health")
            .header("host", server.authority())
            .body(Empty::new())
            .unwrap();
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
    }
}

/// One request on a connection of its own: the certificate it was served with, or what
/// failed (the handshake, the request, or a status other than 200).
async fn fresh_request(connector: &TlsConnector, server: &TestServer) -> Result<Vec<u8>, String> {
    let mut held = Held::open(connector, server)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    match held.health(server).await? {
        200 => Ok(held.certificate),
        status => Err(format!("status {status}")),
    }
}

/// Waits until a fresh handshake with `server` presents `expected`.
async fn until_presented(connector: &TlsConnector, server: SocketAddr, expected: &Leaf) {
    let deadline = Instant::now() + PATIENCE;
    while handshake(connector, server).await != expected.der.to_vec() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the server's log has a line containing every one of `parts`.
async fn until_logged(server: &TestServer, parts: &[&str]) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = server
            .stderr_lines()
            .into_iter()
            .find(|line| parts.iter().all(|part| line.contains(part)));
        if let Some(line) = found {
            return line;
        }
        assert!(Instant::now() < deadline, "no log line with {parts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of `natterjack_tls_reloads_total{outcome}`.
async fn reloads(server: &TestServer, outcome: &str) -> String {
    let prefix = format!("natterjack_tls_reloads_total{{outcome=\"{outcome}\"}} ");
    let metrics = server.metrics().await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
        .to_owned()
}

/// What the clients of the load saw: each request's certificate, or its failure.
#[derive(Default)]
struct Seen {
    old: usize,
    new: usize,
    failures: Vec<String>,
}

#[tokio::test]
async fn rotation_under_load_fails_no_handshake_and_new_connections_get_the_new_certificate_while_open_ones_finish_on_the_old()
 {
    let operator = Operator::new();
    // A look at the files once an hour: only the signal can reload within the test.
    let server = Arc::new(operator.serve("3600").await);
    let rest = operator.rest();
    let mut before = Held::open(&rest, &server).await.unwrap();
    assert_eq!(before.certificate, operator.old.der.to_vec());
    assert_eq!(before.health(&server).await, Ok(200));

    // Clients that trust both CAs, each opening a fresh connection for every request.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (server, seen, stop, rest) = (server.clone(), seen.clone(), stop.clone(), rest.clone());
        let (old, new) = (operator.old.der.to_vec(), operator.new.der.to_vec());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let got = fresh_request(&rest, &server).await;
                let mut seen = seen.lock().unwrap();
                match got {
                    Ok(certificate) if certificate == old => seen.old += 1,
                    Ok(certificate) if certificate == new => seen.new += 1,
                    Ok(_) => seen.failures.push("an unknown certificate".to_owned()),
                    Err(e) => seen.failures.push(e),
                }
            }
        }));
    }
    let until_seen = |enough: fn(&Seen) -> bool| {
        let seen = seen.clone();
        async move {
            let deadline = Instant::now() + PATIENCE;
            while !enough(&seen.lock().unwrap()) {
                assert!(Instant::now() < deadline, "the load stalled");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    until_seen(|s| s.old >= 20).await;

    // The operator's tooling renames the new files into place, then sends SIGHUP.
    replace_file(&operator.key, &operator.new.key_pem, 0o600);
    replace_file(&operator.cert, &operator.new.cert_pem, 0o644);
    server.hang_up();
    until_presented(&rest, address(&server.base), &operator.new).await;
    until_seen(|s| s.new >= 20).await;
    stop.store(true, Ordering::Relaxed);
    for client in load {
        client.await.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.failures.is_empty(), "failed: {:?}", seen.failures);
    assert!(seen.old >= 20 && seen.new >= 20);
    // The connection opened before the reload still completes a request, on the old pair.
    assert_eq!(before.health(&server).await, Ok(200));
    assert_eq!(before.certificate, operator.old.der.to_vec());
    let line = until_logged(&server, &["tls certificate reloaded", "SIGHUP"]).await;
    assert!(line.contains("CN=new server"), "{line}");
    assert_eq!(reloads(&server, "ok").await, "1");
    assert_eq!(reloads(&server, "refused").await, "0");
}

#[tokio::test]
async fn a_bad_new_pair_is_refused_with_an_error_naming_the_file_and_the_old_certificate_stays() {
    let operator = Operator::new();
    let server = operator.serve("1").await;
    let (rest, at) = (operator.rest(), address(&server.base));
    let key = format!("file={}", operator.key.display());
    let cert = format!("file={}", operator.cert.display());

    // The key of another certificate: the files' look notices, and refuses it.
    replace_file(&operator.key, &operator.new.key_pem, 0o600);
    let line = until_logged(&server, &["tls certificate reload refused", &key]).await;
    assert!(line.contains("does not match the certificate"), "{line}");
    assert_eq!(reloads(&server, "refused").await, "1");
    assert_eq!(handshake(&rest, at).await, operator.old.der.to_vec());
    assert_eq!(
        fresh_request(&rest, &server).await,
        Ok(operator.old.der.to_vec())
    );

    // Garbage for a certificate: refused too, naming that file; still the old pair.
    replace_file(&operator.cert, "not a certificate\n", 0o644);
    let line = until_logged(&server, &["tls certificate reload refused", &cert]).await;
    assert!(line.contains("holds no PEM certificate"), "{line}");
    assert_eq!(reloads(&server, "refused").await, "2");
    assert_eq!(reloads(&server, "ok").await, "0");
    assert_eq!(handshake(&rest, at).await, operator.old.der.to_vec());
    // The gRPC listener presents the same certificate, so it kept the old one too.
    let grpc = address(server.grpc.as_deref().unwrap());
    assert_eq!(
        handshake(&operator.grpc(), grpc).await,
        operator.old.der.to_vec()
    );
}

#[tokio::test]
async fn a_certificate_replaced_before_its_key_is_refused_until_the_key_arrives_then_both_listeners_serve_the_new_pair()
 {
    let operator = Operator::new();
    let server = operator.serve("1").await;
    let (rest, grpc) = (operator.rest(), operator.grpc());
    let (rest_at, grpc_at) = (
        address(&server.base),
        address(server.grpc.as_deref().unwrap()),
    );
    assert_eq!(handshake(&grpc, grpc_at).await, operator.old.der.to_vec());

    // Half-way through the operator's copy: the new certificate beside the old key.
    replace_file(&operator.cert, &operator.new.cert_pem, 0o644);
    let key = format!("file={}", operator.key.display());
    until_logged(&server, &["tls certificate reload refused", &key]).await;
    assert_eq!(handshake(&rest, rest_at).await, operator.old.der.to_vec());

    // The key arrives: the next look takes the pair, on both listeners.
    replace_file(&operator.key, &operator.new.key_pem, 0o600);
    until_presented(&rest, rest_at, &operator.new).await;
    assert_eq!(handshake(&grpc, grpc_at).await, operator.new.der.to_vec());
    assert_eq!(
        fresh_request(&rest, &server).await,
        Ok(operator.new.der.to_vec())
    );
    until_logged(&server, &["tls certificate reloaded", "files changed"]).await;
    assert_eq!(reloads(&server, "refused").await, "1");
    assert_eq!(reloads(&server, "ok").await, "1");
}
