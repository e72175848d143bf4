//! A real HAProxy (Debian's) in front of several nodes, as an operator deploys it: TCP mode,
//! so TLS (and the gRPC listener's mutual TLS) stays end to end; the client's address passed
//! with the PROXY protocol version 2; health checks of `GET /health` over TLS. Without
//! HAProxy the tests say loudly that they were skipped, except in CI, where they must run.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running `haproxy`, killed when dropped.
pub struct Haproxy {
    /// The frontend's address, where clients connect.
    pub front: SocketAddr,
    _child: Child,
    _dir: tempfile::TempDir,
}

/// A free loopback port (bound and released: the usual small race with other processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The configuration for `backends`, balanced round-robin, each checked every `check_ms`.
pub fn config(front: SocketAddr, backends: &[SocketAddr], check_ms: u64) -> String {
    let mut cfg = format!(
        "global\n    maxconn 4096\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
         \x20   retries 3\n    option redispatch\n\n\
         frontend natterjack\n    bind {front}\n    default_backend nodes\n\n\
         backend nodes\n    balance roundrobin\n\
         \x20   option httpchk\n    http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost\n\
         \x20   http-check expect status 200\n\
         \x20   default-server check check-ssl verify none send-proxy-v2 check-send-proxy \
         inter {check_ms}ms fall 2 rise 1\n"
    );
    for (i, backend) in backends.iter().enumerate() {
        cfg.push_str(&format!("    server node{i} {backend}\n"));
    }
    cfg
}

impl Haproxy {
    /// Starts HAProxy with `cfg` (see [`config`]) listening on `front`, or `None` (a panic in
    /// CI) without `haproxy`.
    pub async fn start(test: &str, front: SocketAddr, cfg: &str) -> Option<Self> {
        if !super::installed(test, "haproxy", "-v") {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write haproxy.cfg");
        check(&path);
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn haproxy");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(front).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "haproxy did not listen within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(Self {
            front,
            _child: child,
            _dir: dir,
        })
    }
}

/// Refuses a configuration HAProxy would refuse, with its own words.
fn check(path: &Path) {
    let out = std::process::Command::new("haproxy")
        .args(["-c", "-q", "-f"])
        .arg(path)
        .output()
        .expect("haproxy -c");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
