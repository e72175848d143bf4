//! gRPC calls that tonic or h2 refuse before a call's own pipeline runs are recorded all the
//! same: each is provoked against the real binary over mutual TLS, and the client's refusal,
//! the audit record and the metric are checked.

use crate::support::TestServer;
use crate::support::grpc_client::request_id_of;
use crate::support::raw::{H2_PREFACE, connector, tls_from};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::http::HeaderMap;
use hyper_util::rt::{TokioExecutor, TokioIo};
use natterjack_api::grpc::proto::admin_client::AdminClient;
use natterjack_api::grpc::proto::spaces_client::SpacesClient;
use natterjack_api::grpc::proto::{
    CreateSpaceRequest, ListSpacesRequest, PostMessageRequest, QueryAuditRequest,
};
use natterjack_core::audit::{AuditRecord, Phase};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::Channel;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Issues a client certificate for `name` from the CA of the server's data directory.
fn issue(server: &TestServer, name: &str) -> (PathBuf, PathBuf) {
    crate::support::grpc_client::issue(&server.data_dir(), name)
}

/// A tonic channel to the public listener, presenting `who`'s certificate.
fn channel(server: &TestServer, who: &(PathBuf, PathBuf)) -> Channel {
    crate::support::grpc_client::channel(server, Some(who))
}

fn grpc_addr(server: &TestServer) -> SocketAddr {
    server
        .grpc
        .as_deref()
        .expect("grpc listener")
        .trim_start_matches("https://")
        .parse()
        .unwrap()
}

/// One gRPC message frame: the compression flag, the length, the bytes.
fn frame(flag: u8, declared: u32, bytes: &[u8]) -> Vec<u8> {
    let mut framed = vec![flag];
    framed.extend_from_slice(&declared.to_be_bytes());
    framed.extend_from_slice(bytes);
    framed
}

/// What the client of a hand-made call saw.
struct Answer {
    headers: HeaderMap,
    trailers: Option<HeaderMap>,
}

impl Answer {
    /// The final code: from the headers of a trailers-only response, else the trailers.
    fn code(&self) -> Code {
        let status = self
            .headers
            .get("grpc-status")
            .or_else(|| self.trailers.as_ref()?.get("grpc-status"))
            .expect("a grpc-status");
        Code::from_bytes(status.as_bytes())
    }

    fn request_id(&self) -> String {
        self.headers
            .get("x-request-id")
            .expect("an x-request-id")
            .to_str()
            .unwrap()
            .to_owned()
    }
}

/// A unary call whose request body is exactly `body`, as a broken or hostile client would
/// send it: over HTTP/2 and mutual TLS as `who`, through hyper rather than tonic's codec.
async fn hand_made_call(
    server: &TestServer,
    who: &(PathBuf, PathBuf),
    path: &str,
    body: Vec<u8>,
) -> Answer {
    let ca = server.data_dir().join("ca.pem");
    let tls = connector(&ca, &[b"h2"], Some((&who.0, &who.1)));
    let stream = tls_from(&tls, LOCALHOST, grpc_addr(server)).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let headers = response.headers().clone();
    let collected = response.into_body().collect().await.unwrap();
    Answer {
        headers,
        trailers: collected.trailers().cloned(),
    }
}

/// The value of the series `name` whose labels include every pair of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until the metric reaches `at_least` (counters are recorded as the answer leaves,
/// the client may read it first); fails if it never does.
async fn metric_reaches(server: &TestServer, name: &str, labels: &[(&str, &str)], at_least: f64) {
    for _ in 0..100 {
        let text = server.metrics().await;
        if value(&text, name, labels).is_some_and(|v| v >= at_least) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{name} {labels:?} never reached {at_least}:\n{}",
        server.metrics().await
    );
}

/// The records that `wanted` picks, once there are `count` of them (completion records are
/// queued, and a connection's summary is written when it closes).
async fn records_where(
    server: &TestServer,
    count: usize,
    wanted: impl Fn(&AuditRecord) -> bool,
) -> Vec<AuditRecord> {
    for _ in 0..100 {
        let found: Vec<AuditRecord> = server
            .audit_records()
            .await
            .into_iter()
            .map(|r| r.record)
            .filter(|r| wanted(r))
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {count} such records were ever written");
}

/// The one `complete` record of the call the client saw as `request_id`.
async fn completion_of(server: &TestServer, request_id: &str) -> AuditRecord {
    let found = records_where(server, 1, |r| r.request_id == request_id).await;
    assert_eq!(found.len(), 1, "one record per refused call: {found:?}");
    assert_eq!(found[0].phase, Phase::Complete);
    found[0].clone()
}

/// What every record of a refused call on the public listener shows.
fn assert_refusal(record: &AuditRecord, operation: &str, code: Code, decision: &str) {
    assert_eq!(record.transport.as_str(), "grpc");
    assert_eq!(record.operation, operation);
    assert_eq!(
        record.status.map(|s| s.code()),
        Some(code as u16),
        "{record:?}"
    );
    assert_eq!(record.decision.as_str(), decision);
    assert_eq!(record.client_ip, "127.0.0.1");
    assert_eq!(record.auth_method.as_str(), "mtls");
    assert_eq!(record.principal.as_deref(), Some("alice"));
    assert!(record.reason.is_some(), "a refusal says why: {record:?}");
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_by_tonic_and_still_audited_and_counted() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let alice = issue(&server, "alice");
    let mut client = SpacesClient::new(channel(&server, &alice));
    let space = client
        .create_space(CreateSpaceRequest {
            name: "garden".into(),
            owner: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let status = client
        .post_message(PostMessageRequest {
            space_id: space,
            message: "a".repeat(70 * 1024),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let record = completion_of(&server, &request_id_of(&status)).await;
    assert_refusal(
        &record,
        "/natterjack.v1.Spaces/PostMessage",
        Code::OutOfRange,
        "reject",
    );
    assert!(record.reason.unwrap().contains("too large"));
    // Never in the pipeline: no intent was written for it.
    let intents = records_where(&server, 0, |r| r.phase == Phase::Intent).await;
    assert!(
        intents
            .iter()
            .all(|r| r.operation != "/natterjack.v1.Spaces/PostMessage"),
        "{intents:?}"
    );
    metric_reaches(
        &server,
        "natterjack_requests_total",
        &[
            ("transport", "grpc"),
            ("operation", "/natterjack.v1.Spaces/PostMessage"),
            ("status", "OutOfRange"),
        ],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn undecodable_messages_and_malformed_frames_are_refused_by_tonic_and_still_audited_and_counted()
 {
    let server = TestServer::start().await;
    server.user("alice").await;
    let alice = issue(&server, "alice");
    let path = "/natterjack.v1.Spaces/PostMessage";
    let broken = [
        // Field 2 (the text) claims 5 bytes and has 1: not a protobuf message.
        frame(0, 3, &[0x12, 0x05, b'a']),
        // Field 2 holds bytes that are not UTF-8.
        frame(0, 4, &[0x12, 0x02, 0xff, 0xfe]),
        // A compression flag that does not exist.
        frame(2, 2, &[0x08, 0x01]),
        // A frame that declares 10 bytes and ends after 2.
        frame(0, 10, &[0x08, 0x01]),
    ];
    for body in broken {
        let answer = hand_made_call(&server, &alice, path, body).await;
        assert_eq!(answer.code(), Code::Internal);
        let record = completion_of(&server, &answer.request_id()).await;
        assert_refusal(&record, path, Code::Internal, "error");
    }
    metric_reaches(
        &server,
        "natterjack_requests_total",
        &[
            ("transport", "grpc"),
            ("operation", path),
            ("status", "Internal"),
        ],
        4.0,
    )
    .await;
}

#[tokio::test]
async fn unknown_methods_and_services_are_refused_by_tonic_and_still_audited_under_one_metric_label()
 {
    let server = TestServer::start().await;
    server.user("alice").await;
    let alice = issue(&server, "alice");
    // A service this listener does not serve (it is on the admin socket only).
    let status = AdminClient::new(channel(&server, &alice))
        .query_audit(QueryAuditRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    let record = completion_of(&server, &request_id_of(&status)).await;
    assert_refusal(
        &record,
        "/natterjack.v1.Admin/QueryAudit",
        Code::Unimplemented,
        "error",
    );
    // A method that a served service does not have.
    let path = "/natterjack.v1.Spaces/DropEverything";
    let answer = hand_made_call(&server, &alice, path, frame(0, 0, &[])).await;
    assert_eq!(answer.code(), Code::Unimplemented);
    let record = completion_of(&server, &answer.request_id()).await;
    assert_refusal(&record, path, Code::Unimplemented, "error");
    // Paths the client invents share one label, so they cannot multiply the series.
    metric_reaches(
        &server,
        "natterjack_requests_total",
        &[
            ("transport", "grpc"),
            ("operation", "(unknown method)"),
            ("status", "Unimplemented"),
        ],
        2.0,
    )
    .await;
    assert!(!server.metrics().await.contains("DropEverything"));
}

#[tokio::test]
async fn a_health_check_which_has_no_pipeline_is_audited_as_allowed() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let server = TestServer::start().await;
    server.user("alice").await;
    let alice = issue(&server, "alice");
    let answer = HealthClient::new(channel(&server, &alice))
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    let id = answer
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    let record = completion_of(&server, id).await;
    assert_eq!(record.operation, "/grpc.health.v1.Health/Check");
    assert_eq!(record.status.map(|s| s.code()), Some(0));
    assert_eq!(record.decision.as_str(), "allow");
    assert_eq!(record.principal.as_deref(), Some("alice"));
    metric_reaches(
        &server,
        "natterjack_requests_total",
        &[
            ("transport", "grpc"),
            ("operation", "/grpc.health.v1.Health/Check"),
            ("status", "Ok"),
        ],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn calls_refused_before_the_pipeline_take_the_peer_budget_and_a_flood_of_them_is_rate_limited()
 {
    let server = TestServer::start_with(&[
        ("NATTERJACK_RATE_LIMIT__ENABLED", "true"),
        ("NATTERJACK_RATE_LIMIT__PER_IP__BURST", "3"),
        ("NATTERJACK_RATE_LIMIT__PER_IP__PER_SECOND", "0.01"),
    ])
    .await;
    server.user("alice").await;
    let alice = issue(&server, "alice");
    let mut client = AdminClient::new(channel(&server, &alice));
    let mut refused = None;
    for _ in 0..10 {
        let status = client
            .query_audit(QueryAuditRequest::default())
            .await
            .unwrap_err();
        if status.code() == Code::ResourceExhausted {
            refused = Some(status);
            break;
        }
        assert_eq!(status.code(), Code::Unimplemented);
    }
    let status = refused.expect("the flood was never rate limited");
    assert!(status.metadata().get("retry-after").is_some());
    let record = completion_of(&server, &request_id_of(&status)).await;
    assert_refusal(
        &record,
        "/natterjack.v1.Admin/QueryAudit",
        Code::ResourceExhausted,
        "deny",
    );
    metric_reaches(
        &server,
        "natterjack_rate_limit_refusals_total",
        &[("transport", "grpc")],
        1.0,
    )
    .await;
    // The budget is the one the pipeline takes: a real call is refused as well now.
    let status = SpacesClient::new(channel(&server, &alice))
        .list_spaces(ListSpacesRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
}

/// An HTTP/2 frame: length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut bytes = vec![length[1], length[2], length[3], kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A header block of literal fields without indexing or Huffman coding (RFC 7541 §6.2.2):
/// the simplest valid HPACK.
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0);
        block.push(u8::try_from(name.len()).unwrap());
        block.extend_from_slice(name.as_bytes());
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// Reads frames until one that `until` accepts; returns (type, flags, stream, payload).
async fn read_frame_until(
    tls: &mut (impl AsyncReadExt + Unpin),
    buffer: &mut Vec<u8>,
    until: impl Fn(u8, u8, u32, &[u8]) -> bool,
) -> (u8, u8, u32, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            while buffer.len() >= 9 {
                let length = usize::from(buffer[0]) << 16
                    | usize::from(buffer[1]) << 8
                    | usize::from(buffer[2]);
                if buffer.len() < 9 + length {
                    break;
                }
                let (kind, flags) = (buffer[3], buffer[4]);
                let stream =
                    u32::from_be_bytes([buffer[5], buffer[6], buffer[7], buffer[8]]) & 0x7fff_ffff;
                let payload = buffer[9..9 + length].to_vec();
                buffer.drain(..9 + length);
                if until(kind, flags, stream, &payload) {
                    return (kind, flags, stream, payload);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tls.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection first");
            buffer.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the awaited frame never came")
}

#[tokio::test]
async fn streams_over_the_concurrent_stream_cap_are_refused_by_h2_counted_and_summarised_per_connection()
 {
    let server = TestServer::start_with(&[("NATTERJACK_GRPC__MAX_CONCURRENT_STREAMS", "2")]).await;
    server.user("alice").await;
    let alice = issue(&server, "alice");
    // A client that ignores the server's SETTINGS: tonic's and h2's clients queue calls
    // beyond the cap instead, so the frames are written by hand.
    let ca = server.data_dir().join("ca.pem");
    let tls = connector(&ca, &[b"h2"], Some((&alice.0, &alice.1)));
    let mut stream = tls_from(&tls, LOCALHOST, grpc_addr(&server)).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    let mut buffer = Vec::new();
    let (_, _, _, settings) = read_frame_until(&mut stream, &mut buffer, |kind, flags, _, _| {
        kind == 0x4 && flags & 0x1 == 0
    })
    .await;
    // SETTINGS_MAX_CONCURRENT_STREAMS (3) = 2, as configured.
    assert!(
        settings
            .chunks(6)
            .any(|s| s[..2] == [0, 3] && s[2..] == [0, 0, 0, 2]),
        "{settings:?}"
    );
    stream.write_all(&h2_frame(0x4, 0x1, 0, &[])).await.unwrap();
    // Three calls that send their headers and no message yet: two open streams, one over.
    let block = hpack(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/natterjack.v1.Spaces/ListSpaces"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]);
    for id in [1, 3, 5] {
        stream
            .write_all(&h2_frame(0x1, 0x4, id, &block))
            .await
            .unwrap();
    }
    stream.flush().await.unwrap();
    let (_, _, refused, code) =
        read_frame_until(&mut stream, &mut buffer, |kind, _, _, _| kind == 0x3).await;
    assert_eq!(refused, 5, "the third stream is the one refused");
    assert_eq!(code, 7u32.to_be_bytes(), "REFUSED_STREAM");
    metric_reaches(
        &server,
        "natterjack_streams_refused_total",
        &[("listener", "grpc")],
        1.0,
    )
    .await;
    // The connection's summary is written when it ends.
    drop(stream);
    let summaries = records_where(&server, 1, |r| r.operation == "refused streams").await;
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let summary = &summaries[0];
    assert_eq!(summary.phase, Phase::Summary);
    assert_eq!(summary.transport.as_str(), "grpc");
    assert_eq!(summary.count, Some(1));
    assert_eq!(summary.target, "max_concurrent_streams=2");
    assert_eq!(
        summary.status.map(|s| s.code()),
        Some(Code::Unavailable as u16)
    );
    assert_eq!(summary.decision.as_str(), "error");
    assert_eq!(summary.client_ip, "127.0.0.1");
    assert_eq!(summary.auth_method.as_str(), "mtls");
    assert_eq!(summary.principal.as_deref(), Some("alice"));
}
