//! Several nodes behind a real HAProxy (TCP mode, TLS passed through, the client's address
//! in a PROXY protocol version 2 header, `/health` checks), and the PROXY header's trust
//! rule: read only from `rate_limit.trusted_proxies`, and required from them.

use crate::support::haproxy::{Haproxy, config, free_port};
use crate::support::quota::{Quota, holds_at_three_times};
use crate::support::raw::{connector, tcp_from};
use crate::support::redis::{fresh_prefix, shared};
use crate::support::{TestServer, client_trusting, pairs};
use natterjack_core::audit::Phase;
use rustls_pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The listener's address of `server`.
fn addr(server: &TestServer) -> SocketAddr {
    server.base.trim_start_matches("https://").parse().unwrap()
}

/// The client addresses `server` recorded for completed `GET /health` requests.
async fn health_clients(server: &TestServer) -> Vec<String> {
    server
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r.record.phase == Phase::Complete && r.record.operation == "GET /health")
        .map(|r| r.record.client_ip)
        .collect()
}

#[tokio::test]
async fn behind_haproxy_every_node_sees_the_clients_own_address_and_one_shared_quota_holds() {
    let Some(redis) = shared("load_balancer::haproxy").await else {
        return;
    };
    const BURST: u32 = 10;
    const RATE: f64 = 20.0;
    const SECONDS: f64 = 6.0;
    let mut env: Vec<(&str, String)> = vec![
        ("NATTERJACK_RATE_LIMIT__ENABLED", "true".into()),
        ("NATTERJACK_RATE_LIMIT__REDIS_URL", redis),
        (
            "NATTERJACK_RATE_LIMIT__REDIS_KEY_PREFIX",
            fresh_prefix("haproxy"),
        ),
        ("NATTERJACK_RATE_LIMIT__PER_IP__BURST", BURST.to_string()),
        (
            "NATTERJACK_RATE_LIMIT__PER_IP__PER_SECOND",
            RATE.to_string(),
        ),
        (
            "NATTERJACK_RATE_LIMIT__TRUSTED_PROXIES",
            "127.0.0.1/32".into(),
        ),
        ("NATTERJACK_REST__PROXY_PROTOCOL", "true".into()),
    ];
    let first = TestServer::start_with(&pairs(&env)).await;
    // One certificate for every node, as an operator would deploy them.
    let data = first.data_dir();
    env.push((
        "NATTERJACK_TLS__CERT",
        data.join("server.pem").display().to_string(),
    ));
    env.push((
        "NATTERJACK_TLS__KEY",
        data.join("server-key.pem").display().to_string(),
    ));
    env.push((
        "NATTERJACK_GRPC__CLIENT_CA",
        data.join("ca.pem").display().to_string(),
    ));
    let nodes = [
        first,
        TestServer::start_with(&pairs(&env)).await,
        TestServer::start_with(&pairs(&env)).await,
    ];
    let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let backends: Vec<SocketAddr> = nodes.iter().map(addr).collect();
    let Some(haproxy) = Haproxy::start(
        "load_balancer::haproxy",
        front,
        &config(front, &backends, 500),
    )
    .await
    else {
        return;
    };
    // A client on 127.0.0.5, a fresh connection per request so that the balancer spreads
    // them over the nodes, at three times its quota.
    let client = client_trusting(&data.join("ca.pem"), |b| {
        b.local_address(IpAddr::from([127, 0, 0, 5]))
            .pool_max_idle_per_host(0)
    });
    let url = format!("https://{}/health", haproxy.front);
    let quota = Quota {
        burst: BURST,
        rate: RATE,
    };
    holds_at_three_times("through haproxy", quota, SECONDS, |_| {
        let (client, url) = (&client, &url);
        async move { client.get(url).send().await.unwrap().status() }
    })
    .await;
    // Every node served some of them, and recorded the client's own address, not the
    // balancer's (whose health checks are recorded as 127.0.0.1).
    for node in &nodes {
        let clients = health_clients(node).await;
        assert!(
            clients.iter().any(|c| c == "127.0.0.5"),
            "a node served none of the client's requests: {clients:?}"
        );
        assert!(
            clients.iter().all(|c| c == "127.0.0.5" || c == "127.0.0.1"),
            "{clients:?}"
        );
    }
}

/// A PROXY protocol version 2 header for a TCP/IPv4 client `client`.
fn proxy_header(client: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(client), SocketAddr::V4(to)) = (client, to) else {
        panic!("IPv4 only here");
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client.ip().octets());
    h.extend_from_slice(&to.ip().octets());
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&to.port().to_be_bytes());
    h
}

/// `GET /health` over a fresh connection from `local`, after `prefix` (a PROXY header or
/// nothing): the request id of a 200, or `None` when the server closed the connection.
async fn health_after(server: &TestServer, local: IpAddr, prefix: &[u8]) -> Option<String> {
    let mut tcp = tcp_from(local, addr(server)).await.unwrap();
    tcp.write_all(prefix).await.unwrap();
    let tls = connector(&server.data_dir().join("ca.pem"), &[b"http/1.1"], None);
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio::time::timeout(Duration::from_secs(10), tls.connect(name, tcp))
        .await
        .unwrap()
        .ok()?;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.ok()?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .map(str::to_owned)
}

#[tokio::test]
async fn a_proxy_header_is_read_only_from_a_trusted_proxy_and_required_from_it() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_RATE_LIMIT__TRUSTED_PROXIES", "127.0.0.2/32"),
        ("NATTERJACK_REST__PROXY_PROTOCOL", "true"),
    ])
    .await;
    let (proxy, other) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
    let claimed: SocketAddr = "198.51.100.7:4242".parse().unwrap();
    let header = proxy_header(claimed, addr(&server));

    // The trusted proxy names the client: the client's address is the one recorded.
    let via_proxy = health_after(&server, proxy, &header)
        .await
        .expect("served through the proxy");
    assert_eq!(
        server.completion(&via_proxy).await.record.client_ip,
        "198.51.100.7"
    );
    // The trusted proxy without a header: refused, it could be anyone's connection.
    assert_eq!(health_after(&server, proxy, b"").await, None);
    // Anyone else claiming an address: the header is not read, the handshake fails.
    assert_eq!(health_after(&server, other, &header).await, None);
    // Anyone else, plainly: served as itself.
    let direct = health_after(&server, other, b"")
        .await
        .expect("served directly");
    assert_eq!(
        server.completion(&direct).await.record.client_ip,
        "127.0.0.3"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("listener=\"rest\",reason=\"proxy_header_missing\"} 1"),
        "the connection without a header is counted: {metrics}"
    );
}

#[tokio::test]
async fn a_proxy_protocol_listener_without_trusted_proxies_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = crate::support::cli(
        &dir.path().join("data"),
        &["serve"],
        "",
        &[("NATTERJACK_REST__PROXY_PROTOCOL", "true")],
    );
    assert!(!ok);
    assert!(
        err.contains("rest.proxy_protocol needs rate_limit.trusted_proxies"),
        "{err}"
    );
}
