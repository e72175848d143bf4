//! Graceful shutdown, black-box: SIGTERM to a real `serve` under load from real clients.
//! The node first drains (`/health` 503, gRPC health `NOT_SERVING`, everything else served
//! as usual), then stops accepting, finishes what it accepted (watch streams end with
//! `UNAVAILABLE`), commits its audit log and exits 0. Both tests run with the default
//! `[shutdown]` settings (a 5 s drain, 30 s for what is in flight). The last one restarts
//! three nodes behind a real HAProxy, one after the other, under load, with a real
//! collector receiving the audit trail.

use crate::support::grpc_client::{channel, issue, request_id_of};
use crate::support::rsyslog::{Rsyslog, all_ids_arrived};
use crate::support::{PASSWORD, TestServer, cli, client_trusting, pairs, raw};
use base64::Engine as _;
use natterjack_api::grpc::proto::spaces_client::SpacesClient;
use natterjack_api::grpc::proto::{CreateSpaceRequest, PostMessageRequest, WatchMessagesRequest};
use natterjack_api::pipeline::headers::SECURITY_HEADERS;
use natterjack_core::audit::{Phase, Status};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one request of the load got.
#[derive(Debug, Clone)]
enum Outcome {
    /// A whole response.
    Answered {
        status: StatusCode,
        request_id: String,
        at: Instant,
        /// The message created (a 201).
        created: Option<(i64, String)>,
    },
    /// No TCP connection: refused once the listener had closed (or, in the instant it
    /// closed, reset before it was established). The client knows nothing was sent, and a
    /// balancer retries these on another node.
    Refused,
    /// Any other transport error: a request lost in a way the client cannot know to retry.
    Failed(String),
}

/// Whether `e` is a TCP connection that was never established (refused, or reset while
/// connecting), as opposed to a failure once the server had the connection.
fn connection_refused(e: &reqwest::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        // hyper-util's connector names the TCP phase: the TLS handshake and the request
        // come after it.
        if err.to_string() == "tcp connect error" {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Sends `request` and records what came back, body included.
async fn outcome(request: reqwest::RequestBuilder, text: Option<&str>) -> Outcome {
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if connection_refused(&e) => return Outcome::Refused,
        Err(e) => return Outcome::Failed(format!("{e:?}")),
    };
    let status = response.status();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => return Outcome::Failed(format!("body of {request_id}: {e:?}")),
    };
    let created = (status == StatusCode::CREATED)
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .and_then(|v| v["id"].as_i64())
        .zip(text.map(str::to_owned));
    Outcome::Answered {
        status,
        request_id,
        at: Instant::now(),
        created,
    }
}

/// One client of the load: posts messages to `space` until `done`, recording each outcome.
struct Writer {
    client: Client,
    base: String,
    space: i64,
    tag: &'static str,
}

impl Writer {
    async fn run(self, done: Arc<AtomicBool>, out: Arc<Mutex<Vec<Outcome>>>) {
        let mut n = 0;
        while !done.load(Ordering::Relaxed) {
            n += 1;
            let text = format!("{}-{n}", self.tag);
            let request = self
                .client
                .post(format!("{}/spaces/{}/messages", self.base, self.space))
                .basic_auth("alice", Some(PASSWORD))
                .json(&json!({ "message": text }));
            let got = outcome(request, Some(&text)).await;
            let refused = matches!(got, Outcome::Refused);
            out.lock().unwrap().push(got);
            if refused {
                // Once the listener has closed, refusals are all there is: no need to spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Polls `/health` until `done`, keeping each outcome and the first 503 response whole.
async fn watch_health(
    client: Client,
    url: String,
    done: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Outcome>>>,
    first_503: Arc<Mutex<Option<(reqwest::header::HeaderMap, Value)>>>,
) {
    while !done.load(Ordering::Relaxed) {
        match client.get(&url).send().await {
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                let headers = r.headers().clone();
                let request_id = headers
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                first_503.lock().unwrap().get_or_insert((headers, body));
                out.lock().unwrap().push(Outcome::Answered {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    request_id,
                    at: Instant::now(),
                    created: None,
                });
            }
            Ok(r) => {
                let got = outcome_of(r).await;
                out.lock().unwrap().push(got);
            }
            Err(e) if connection_refused(&e) => out.lock().unwrap().push(Outcome::Refused),
            Err(e) => out.lock().unwrap().push(Outcome::Failed(format!("{e:?}"))),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn outcome_of(r: reqwest::Response) -> Outcome {
    let status = r.status();
    let request_id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match r.bytes().await {
        Ok(_) => Outcome::Answered {
            status,
            request_id,
            at: Instant::now(),
            created: None,
        },
        Err(e) => Outcome::Failed(format!("body of {request_id}: {e:?}")),
    }
}

/// Polls `what` every 50 ms until it holds, for at most `within`.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut what: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if what().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Whether a TCP connection to `addr` is refused (the listener has closed). A connection
/// that is accepted is dropped at once: the server sees its handshake end.
async fn refuses(addr: SocketAddr) -> bool {
    matches!(
        tokio::net::TcpStream::connect(addr).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Reads an HTTP/1.1 response until the server closes the connection.
async fn read_to_close(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A TLS peer that closes without close_notify: what was read is the answer.
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn count(outcomes: &[Outcome], which: impl Fn(&Outcome) -> bool) -> usize {
    outcomes.iter().filter(|o| which(o)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_load_sigterm_drains_then_finishes_every_accepted_request_and_exits_zero() {
    let mut server = TestServer::start_with(&[(
        "RUST_LOG",
        "warn,natterjack=info,natterjack_api::transport=info",
    )])
    .await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "busy").await;
    let ca = server.data_dir().join("ca.pem");
    let addr: SocketAddr = server.authority().parse().unwrap();

    // The load: keep-alive HTTP/1.1 clients, a client opening a fresh connection for every
    // request, and an HTTP/2 client; and a balancer's health check.
    let done = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(Vec::new()));
    let keep_alive = client_trusting(&ca, |b| b.http1_only());
    let fresh = client_trusting(&ca, |b| b.http1_only().pool_max_idle_per_host(0));
    let http2 = client_trusting(&ca, |b| b);
    let mut load = Vec::new();
    for (client, tag) in [
        (keep_alive.clone(), "kept-1"),
        (keep_alive, "kept-2"),
        (fresh.clone(), "fresh-1"),
        (fresh, "fresh-2"),
        (http2, "h2"),
    ] {
        let writer = Writer {
            client,
            base: server.base.clone(),
            space,
            tag,
        };
        load.push(tokio::spawn(writer.run(done.clone(), writes.clone())));
    }
    let checks = Arc::new(Mutex::new(Vec::new()));
    let first_503 = Arc::new(Mutex::new(None));
    load.push(tokio::spawn(watch_health(
        client_trusting(&ca, |b| b.http1_only()),
        server.url("/health"),
        done.clone(),
        checks.clone(),
        first_503.clone(),
    )));
    let created = |outcomes: &[Outcome]| {
        count(
            outcomes,
            |o| matches!(o, Outcome::Answered { status, .. } if *status == StatusCode::CREATED),
        )
    };
    assert!(
        eventually(Duration::from_secs(60), || {
            let n = created(&writes.lock().unwrap());
            async move { n >= 20 }
        })
        .await,
        "the load is served before the signal"
    );

    // A slow request, begun before the signal: its body's second half comes only once the
    // listener has closed.
    let connector = raw::connector(&ca, &[b"http/1.1"], None);
    let mut slow = raw::tls_from(&connector, addr.ip(), addr).await.unwrap();
    let body = json!({ "message": "slow" }).to_string();
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let head = format!(
        "POST /spaces/{space}/messages HTTP/1.1\r\nhost: {}\r\nauthorization: Basic {credentials}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{first_half}",
        server.authority(),
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.flush().await.unwrap();

    server.terminate();
    let signalled = Instant::now();

    // The drain: /health turns 503 while the writes are still answered.
    assert!(
        eventually(Duration::from_secs(20), || {
            let seen = first_503.lock().unwrap().is_some();
            async move { seen }
        })
        .await,
        "/health never reported not ready"
    );
    let turned = checks
        .lock()
        .unwrap()
        .iter()
        .find_map(|o| match o {
            Outcome::Answered { status, at, .. } if *status == StatusCode::SERVICE_UNAVAILABLE => {
                Some(*at)
            }
            _ => None,
        })
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || {
            let served_after = writes.lock().unwrap().iter().any(|o| {
                matches!(o, Outcome::Answered { status, at, .. }
                    if *status == StatusCode::CREATED && *at > turned)
            });
            async move { served_after }
        })
        .await,
        "writes are still served while /health reports not ready"
    );
    let (headers, problem) = first_503.lock().unwrap().clone().unwrap();
    assert_eq!(problem["status"], 503);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("shutting down"),
        "{problem}"
    );
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(headers.get(*name).unwrap(), value, "{name}");
    }
    assert_eq!(
        headers.get("connection").map(|v| v.to_str().unwrap()),
        Some("close"),
        "an HTTP/1.1 client is told to reconnect elsewhere"
    );

    // The stop: the listener refuses new connections; the slow request, accepted before,
    // is still served.
    assert!(
        eventually(Duration::from_secs(30), || refuses(addr)).await,
        "the listener never closed"
    );
    slow.write_all(second_half.as_bytes()).await.unwrap();
    slow.flush().await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), read_to_close(&mut slow))
        .await
        .expect("the slow request is answered within the deadline");
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    let slow_id = answer
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("a request id")
        .to_owned();
    let slow_message = serde_json::from_str::<Value>(answer.split("\r\n\r\n").nth(1).unwrap())
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    let exit = server.exited_within(Duration::from_secs(60)).await;
    assert!(exit.success(), "{exit:?}");
    eprintln!("exited {:?} after the signal", signalled.elapsed());
    done.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    // No request the server accepted failed; what a balancer would retry was refused.
    let writes = writes.lock().unwrap().clone();
    let checks = checks.lock().unwrap().clone();
    let all: Vec<Outcome> = writes.iter().chain(checks.iter()).cloned().collect();
    let failed: Vec<&String> = all
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed(why) => Some(why),
            _ => None,
        })
        .collect();
    let refused = count(&all, |o| matches!(o, Outcome::Refused));
    eprintln!(
        "{} answered ({} writes), {refused} refused at connect, {} failed",
        count(&all, |o| matches!(o, Outcome::Answered { .. })),
        created(&writes),
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:#?}");
    // Each phase is logged, in order.
    let logs = server.stderr_lines();
    let mut at = 0;
    for phase in [
        "draining",
        "stopped accepting connections",
        "all requests finished",
        ": stopped",
    ] {
        let found = logs[at..].iter().position(|l| l.trim_end().contains(phase));
        let found = found.unwrap_or_else(|| panic!("no `{phase}` in the log:\n{logs:#?}"));
        at += found + 1;
    }

    // Every request has its completion record with the status its client saw, and the
    // chain verifies.
    let records = server.audit_records().await;
    let completions: HashMap<&str, Option<Status>> = records
        .iter()
        .filter(|r| r.record.phase == Phase::Complete)
        .map(|r| (r.record.request_id.as_str(), r.record.status))
        .collect();
    let answered = all
        .iter()
        .filter_map(|o| match o {
            Outcome::Answered {
                status, request_id, ..
            } => Some((request_id.as_str(), status.as_u16())),
            _ => None,
        })
        .chain([(slow_id.as_str(), 201)]);
    for (request_id, status) in answered {
        assert_eq!(
            completions.get(request_id),
            Some(&Some(Status::Http(status))),
            "the completion of {request_id}"
        );
    }
    let (ok, out, err) = cli(&server.data_dir(), &["audit", "verify"], "", &[]);
    assert!(ok, "{out}{err}");

    // Every acknowledged write is there after a restart.
    let mut written: Vec<(i64, String)> = writes
        .iter()
        .filter_map(|o| match o {
            Outcome::Answered { created, .. } => created.clone(),
            _ => None,
        })
        .collect();
    written.push((slow_message, "slow".to_owned()));
    let again = TestServer::start_in(server.stop().await, &[]).await;
    let reader = again.client();
    for (id, text) in written {
        let r = reader
            .get(again.url(&format!("/spaces/{space}/messages/{id}")))
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "message {id}");
        let message: Value = r.json().await.unwrap();
        assert_eq!(message["message"], text.as_str(), "message {id}");
    }
}

#[tokio::test]
async fn a_watch_stream_open_at_sigterm_ends_with_unavailable_saying_the_server_is_shutting_down() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let mut server = TestServer::start().await;
    server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let mut client = SpacesClient::new(channel(&server, Some(&alice)));
    let space = client
        .create_space(CreateSpaceRequest {
            name: "watched".into(),
            owner: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut stream = client
        .watch_messages(WatchMessagesRequest { space_id: space })
        .await
        .unwrap()
        .into_inner();
    let post = |text: &'static str| {
        let mut client = client.clone();
        async move {
            client
                .post_message(PostMessageRequest {
                    space_id: space,
                    message: text.into(),
                })
                .await
        }
    };
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream neither delivered nor ended")
    };
    post("before").await.unwrap();
    assert_eq!(next().await.unwrap().unwrap().message, "before");

    server.terminate();
    // The drain: health says NOT_SERVING, calls are still served, the stream still delivers.
    let mut health = HealthClient::new(channel(&server, Some(&alice)));
    let mut status = ServingStatus::Serving;
    for _ in 0..200 {
        status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        if status == ServingStatus::NotServing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, ServingStatus::NotServing);
    post("during the drain").await.unwrap();
    assert_eq!(next().await.unwrap().unwrap().message, "during the drain");

    // The stop: the stream ends with a status its client knows to retry on.
    let ended = tokio::time::timeout(Duration::from_secs(40), stream.message())
        .await
        .expect("the stream ended within the deadline")
        .expect_err("the stream ends with a status");
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("shutting down"), "{ended:?}");
    let exit = server.exited_within(Duration::from_secs(60)).await;
    assert!(exit.success(), "{exit:?}");
    let record = server.completion(&request_id_of(&ended)).await;
    assert_eq!(record.record.status, Some(Status::Grpc(14)));
    assert_eq!(
        record.record.operation,
        "/natterjack.v1.Spaces/WatchMessages"
    );
}

#[tokio::test]
async fn a_second_sigterm_during_the_drain_cuts_it_short() {
    let mut server = TestServer::start_with(&[
        ("NATTERJACK_SHUTDOWN__DRAIN_SECS", "600"),
        ("RUST_LOG", "warn,natterjack=info"),
    ])
    .await;
    let client = server.client();
    server.terminate();
    assert!(
        eventually(Duration::from_secs(20), || {
            let check = client.get(server.url("/health")).send();
            async move {
                check
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
            }
        })
        .await,
        "/health never reported not ready"
    );
    server.terminate();
    let exit = server.exited_within(Duration::from_secs(60)).await;
    assert!(exit.success(), "{exit:?}");
    assert!(server.logs_eventually("the drain is cut short").await);
}

#[tokio::test]
async fn a_request_still_running_at_the_deadline_is_cut_counted_and_the_node_still_exits_zero() {
    let mut server = TestServer::start_with(&[
        ("NATTERJACK_SHUTDOWN__DRAIN_SECS", "0"),
        ("NATTERJACK_SHUTDOWN__TIMEOUT_SECS", "2"),
    ])
    .await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "stalled").await;
    let addr: SocketAddr = server.authority().parse().unwrap();
    let ca = server.data_dir().join("ca.pem");
    // A body that never comes: the request runs until the deadline cuts it.
    let mut stalled = raw::tls_from(&raw::connector(&ca, &[b"http/1.1"], None), addr.ip(), addr)
        .await
        .unwrap();
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let head = format!(
        "POST /spaces/{space}/messages HTTP/1.1\r\nhost: {}\r\nauthorization: Basic {credentials}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{",
        server.authority()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.flush().await.unwrap();
    // Admitted: its intent is on record.
    let target = format!("id={space}");
    assert!(
        eventually(Duration::from_secs(20), || {
            let records = server.audit_records();
            let target = target.clone();
            async move {
                records.await.iter().any(|r| {
                    r.record.phase == Phase::Intent
                        && r.record.operation == "POST /spaces/{id}/messages"
                        && r.record.target == target
                })
            }
        })
        .await,
        "the stalled request was never admitted"
    );
    server.terminate();
    let exit = server.exited_within(Duration::from_secs(60)).await;
    assert!(exit.success(), "{exit:?}");
    assert!(
        server
            .logs_eventually(r#"requests cut at the shutdown deadline listener="rest" requests=1"#)
            .await,
        "{:#?}",
        server.stderr_lines()
    );
    // The client sees its connection end without an answer.
    let answer = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut stalled))
        .await
        .unwrap();
    assert!(answer.is_empty(), "{answer}");
}

/// A node listening on `port` (so that the balancer finds it again after a restart), with
/// the TOML configuration `toml` (settings the environment cannot express).
async fn configured_node(
    dir: tempfile::TempDir,
    toml: &str,
    env: &[(&'static str, String)],
    port: u16,
) -> TestServer {
    let listen = format!("127.0.0.1:{port}");
    let mut env = pairs(env);
    env.push(("NATTERJACK_REST__LISTEN", &listen));
    TestServer::start_configured(dir, toml, &env).await
}

/// The requests `server` answered since it started, from its metrics.
async fn answered(server: &TestServer) -> f64 {
    server
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("natterjack_requests_total{") && l.contains("transport=\"rest\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_haproxy_a_rolling_restart_of_three_nodes_fails_no_client_request_and_the_siem_receives_every_record()
 {
    use crate::support::haproxy::{Haproxy, config, free_port};
    use crate::support::pg::PgDatabase;

    let test = "shutdown::rolling_restart";
    let Some(db) = PgDatabase::fresh(test).await else {
        return;
    };
    let a_dir = tempfile::tempdir().unwrap();
    // A real collector, which every node's sink names: the node holding the sink's lease
    // exports, and the lease moves as the nodes restart.
    let rsyslog_dir = tempfile::tempdir().unwrap();
    let tls = crate::siem::pki(a_dir.path());
    let Some(rsyslog) = Rsyslog::start(test, &rsyslog_dir.path().join("rsyslog"), &tls).await
    else {
        db.drop_all().await;
        return;
    };
    let sinks = format!(
        "[[audit.sinks]]\nname = \"siem\"\nkind = \"syslog-tcp\"\naddress = \"{}\"\nconfirm_after_ms = 300\n",
        rsyslog.tcp_address()
    );
    db.prepare(&a_dir.path().join("data"));
    let mut env = db.env();
    env.push((
        "NATTERJACK_RATE_LIMIT__TRUSTED_PROXIES",
        "127.0.0.1/32".into(),
    ));
    env.push(("NATTERJACK_REST__PROXY_PROTOCOL", "true".into()));
    let ports = [free_port(), free_port(), free_port()];
    let a = configured_node(a_dir, &sinks, &env, ports[0]).await;
    // One certificate, audit key and key-encryption key for every node.
    let data = a.data_dir();
    let file = |name: &str| data.join(name).display().to_string();
    env.extend([
        ("NATTERJACK_TLS__CERT", file("server.pem")),
        ("NATTERJACK_TLS__KEY", file("server-key.pem")),
        ("NATTERJACK_GRPC__CLIENT_CA", file("ca.pem")),
        ("NATTERJACK_AUDIT__KEY_FILE", file("audit.key")),
        ("NATTERJACK_ENCRYPTION__KEY_FILE", file("encryption.key")),
    ]);
    let mut nodes = vec![a];
    for port in &ports[1..] {
        nodes.push(configured_node(tempfile::tempdir().unwrap(), &sinks, &env, *port).await);
    }
    let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let backends: Vec<SocketAddr> = ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let Some(haproxy) = Haproxy::start(test, front, &config(front, &backends, 500)).await else {
        db.drop_all().await;
        return;
    };
    let base = format!("https://{}", haproxy.front);
    let ca = data.join("ca.pem");
    let setup = client_trusting(&ca, |b| b);
    let registered = setup
        .post(format!("{base}/users"))
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let space: Value = setup
        .post(format!("{base}/spaces"))
        .basic_auth("alice", Some(PASSWORD))
        .json(&json!({ "name": "rolling" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let space = space["id"].as_i64().unwrap();

    // Clients of the balancer: kept-alive and fresh HTTP/1.1 connections, and HTTP/2.
    let done = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(Vec::new()));
    let keep_alive = client_trusting(&ca, |b| b.http1_only());
    let fresh = client_trusting(&ca, |b| b.http1_only().pool_max_idle_per_host(0));
    let mut load = Vec::new();
    for (client, tag) in [
        (keep_alive.clone(), "kept-1"),
        (keep_alive, "kept-2"),
        (fresh, "fresh"),
        (client_trusting(&ca, |b| b), "h2"),
    ] {
        let writer = Writer {
            client,
            base: base.clone(),
            space,
            tag,
        };
        load.push(tokio::spawn(writer.run(done.clone(), writes.clone())));
    }
    let created = || {
        count(
            &writes.lock().unwrap(),
            |o| matches!(o, Outcome::Answered { status, .. } if *status == StatusCode::CREATED),
        )
    };
    let more_writes = |than: usize| {
        let created = &created;
        async move {
            eventually(Duration::from_secs(60), || {
                let n = created();
                async move { n >= than + 20 }
            })
            .await
        }
    };
    assert!(more_writes(0).await, "the load is served");

    // One node after the other: SIGTERM, exit 0, back on the same port, serving again
    // through the balancer before the next one stops.
    for i in 0..nodes.len() {
        nodes[i].terminate();
        let exit = nodes[i].exited_within(Duration::from_secs(60)).await;
        assert!(exit.success(), "node {i}: {exit:?}");
        let stopped = nodes.remove(i);
        let restarted = configured_node(stopped.stop().await, &sinks, &env, ports[i]).await;
        assert!(
            eventually(Duration::from_secs(60), || {
                let restarted = &restarted;
                async move { answered(restarted).await >= 20.0 }
            })
            .await,
            "the balancer sends requests to restarted node {i}"
        );
        nodes.insert(i, restarted);
    }
    let served = created();
    assert!(more_writes(served).await, "the restarted nodes serve");
    done.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    // Not one request failed, and none was refused: the balancer retried the connections
    // the stopped nodes refused on the other node.
    let writes = writes.lock().unwrap().clone();
    let lost: Vec<&Outcome> = writes
        .iter()
        .filter(
            |o| !matches!(o, Outcome::Answered { status, .. } if *status == StatusCode::CREATED),
        )
        .collect();
    eprintln!(
        "{} writes over the restarts, {} not created",
        writes.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "{lost:#?}");
    // Every acknowledged write is there, and the shared chain verifies.
    let reader = client_trusting(&ca, |b| b);
    for (id, text) in writes.iter().filter_map(|o| match o {
        Outcome::Answered { created, .. } => created.clone(),
        _ => None,
    }) {
        let r = reader
            .get(format!("{base}/spaces/{space}/messages/{id}"))
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "message {id}");
        assert_eq!(r.json::<Value>().await.unwrap()["message"], text.as_str());
    }
    let (ok, out, err) = cli(&nodes[0].data_dir(), &["audit", "verify"], "", &pairs(&env));
    assert!(ok, "{out}{err}");
    // The collector has every record of the shared table, whichever node exported it.
    let head: i64 = {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.app_url).await.unwrap();
        sqlx::query_scalar("SELECT max(id) FROM audit_log")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    rsyslog
        .wait_for(Duration::from_secs(60), all_ids_arrived(head, "tcp"))
        .await;
    drop((nodes, haproxy));
    db.drop_all().await;
}
