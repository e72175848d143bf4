//! The responses the HTTP layer writes by itself, before any layer of the pipeline runs, and
//! the ones just inside its caps that the pipeline answers instead: each malformed or
//! oversized request is sent over real TLS by a raw client, and its exact outcome checked
//! against docs/CONFIGURATION.md, "Responses the HTTP layer writes itself".

use crate::support::TestServer;
use crate::support::raw::{H2_PREFACE, connector, tls_from};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use natterjack_api::pipeline::headers::SECURITY_HEADERS;
use natterjack_api::pipeline::{MAX_HEADER_FIELDS, MAX_HEADER_LIST_BYTES};
use natterjack_api::transport::{MAX_TRANSPORT_HEADER_BYTES, MAX_TRANSPORT_HEADER_FIELDS};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a raw exchange may take before the test gives up on it (a hang, not a measure).
const HANG: Duration = Duration::from_secs(30);

fn addr(server: &TestServer) -> SocketAddr {
    server.authority().parse().expect("the listener's address")
}

/// Sends `wire` on a fresh HTTP/1.1 (ALPN `http/1.1`) TLS connection, then, when
/// `half_close`, ends the client's side; returns every byte the server sent until it closed
/// the connection.
async fn exchange_with(server: &TestServer, wire: &[u8], half_close: bool) -> Vec<u8> {
    let ca = server.data_dir().join("ca.pem");
    let tls = connector(&ca, &[b"http/1.1"], None);
    let mut tls = tls_from(&tls, Ipv4Addr::LOCALHOST.into(), addr(server))
        .await
        .expect("TLS handshake");
    // The server may answer and close before reading everything: its answer is what counts.
    let _ = tls.write_all(wire).await;
    let _ = tls.flush().await;
    if half_close {
        let _ = tls.shutdown().await;
    }
    let mut reply = Vec::new();
    let read = tokio::time::timeout(HANG, async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server never closed the connection");
    reply
}

async fn exchange(server: &TestServer, wire: &[u8]) -> Vec<u8> {
    exchange_with(server, wire, false).await
}

/// A request head: `request_line`, a valid `Host`, the `extra` header lines (each ending in
/// CRLF), and the blank line.
fn head(server: &TestServer, request_line: &str, extra: &str) -> Vec<u8> {
    format!(
        "{request_line}\r\nHost: {}\r\n{extra}\r\n",
        server.authority()
    )
    .into_bytes()
}

/// `count` header lines `X-Field-N: 1`.
fn fields(count: usize) -> String {
    (0..count).map(|i| format!("X-Field-{i}: 1\r\n")).collect()
}

/// Checks that `reply` is exactly hyper's own answer to a request it could not take: the
/// status line, `connection: close`, `content-length: 0`, a `date` in IMF-fixdate, the blank
/// line, and not one byte more.
fn assert_bare(reply: &[u8], status_line: &str, case: &str) {
    let text = String::from_utf8_lossy(reply);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let date = lines.get(3).copied().unwrap_or_default();
    let expected =
        format!("{status_line}\r\nconnection: close\r\ncontent-length: 0\r\n{date}\r\n\r\n");
    assert_eq!(text, expected, "{case}");
    // "date: Sun, 06 Nov 1994 08:49:37 GMT": nothing else can hide in that line.
    let value = date.strip_prefix("date: ").unwrap_or_default();
    assert!(
        value.len() == 29 && value.ends_with(" GMT") && value.as_bytes()[3] == b',',
        "{case}: {date:?}"
    );
}

/// A response, split into its head's lines and its body.
struct Parsed {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn parse(reply: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .map(|l| {
            let (name, value) = l.split_once(':').expect("a header line");
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    Parsed {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Checks that `reply` is the pipeline's: `status`, every security header exactly once with
/// its value, no `Server`, and a problem+json body with that status.
fn assert_from_pipeline(reply: &[u8], status: u16, case: &str) -> Parsed {
    let parsed = parse(reply);
    assert_eq!(parsed.status, status, "{case}");
    let all = |name: &str| -> Vec<&str> {
        parsed
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(all(name), [*value], "{case}: {name}");
    }
    assert!(all("server").is_empty(), "{case}");
    assert_eq!(all("content-type"), ["application/problem+json"], "{case}");
    let problem: serde_json::Value = serde_json::from_str(&parsed.body)
        .unwrap_or_else(|e| panic!("{case}: a problem body ({e}): {}", parsed.body));
    assert_eq!(problem["status"], status, "{case}");
    parsed
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_its_bare_400_with_no_body_and_the_connection_closed() {
    let server = TestServer::start().await;
    let host = format!("Host: {}\r\n", server.authority());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a header line without a colon",
            head(&server, "GET /health HTTP/1.1", "no colon here\r\n"),
        ),
        (
            "a space between a field name and its colon",
            head(&server, "GET /health HTTP/1.1", "X-A : 1\r\n"),
        ),
        (
            "a folded header line (obs-fold)",
            head(&server, "GET /health HTTP/1.1", "X-A: 1\r\n  folded\r\n"),
        ),
        (
            "a NUL byte in a field value",
            head(&server, "GET /health HTTP/1.1", "X-A: a\0b\r\n"),
        ),
        (
            "an HTTP/2.0 request line on HTTP/1.1",
            head(&server, "GET /health HTTP/2.0", ""),
        ),
        ("HTTP/9.9", head(&server, "GET /health HTTP/9.9", "")),
        ("an HTTP/0.9 request line", b"GET /health\r\n\r\n".to_vec()),
        (
            "a method that is not a token",
            head(&server, "G@T /health HTTP/1.1", ""),
        ),
        (
            "a request target with a space",
            head(&server, "GET /a b HTTP/1.1", ""),
        ),
        (
            "a request target with a DEL byte",
            head(&server, "GET /hea\x7fth HTTP/1.1", ""),
        ),
        (
            "bytes that are not HTTP",
            b"\x16\x03\x01 not http\r\n\r\n".to_vec(),
        ),
        (
            "two Content-Length fields that differ",
            format!(
                "POST /spaces HTTP/1.1\r\n{host}Content-Type: application/json\r\n\
                 Content-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}"
            )
            .into_bytes(),
        ),
        (
            "a Content-Length that is not a number",
            format!(
                "POST /spaces HTTP/1.1\r\n{host}Content-Type: application/json\r\n\
                 Content-Length: 2a\r\n\r\n{{}}"
            )
            .into_bytes(),
        ),
        (
            "a Transfer-Encoding whose last coding is not chunked",
            format!(
                "POST /spaces HTTP/1.1\r\n{host}Content-Type: application/json\r\n\
                 Transfer-Encoding: chunked, gzip\r\n\r\n"
            )
            .into_bytes(),
        ),
        (
            "a Transfer-Encoding on HTTP/1.0",
            format!(
                "POST /spaces HTTP/1.0\r\n{host}Content-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
            )
            .into_bytes(),
        ),
    ];
    for (case, wire) in &cases {
        let reply = exchange(&server, wire).await;
        assert_bare(&reply, "HTTP/1.1 400 Bad Request", case);
    }
    // hyper closed those connections; the server itself is unaffected.
    let reply = exchange(
        &server,
        &head(&server, "GET /health HTTP/1.1", "Connection: close\r\n"),
    )
    .await;
    assert_eq!(parse(&reply).status, 200);
}

#[tokio::test]
async fn a_head_beyond_the_transport_caps_gets_hyper_s_bare_431_and_never_a_414() {
    let server = TestServer::start().await;
    // The transport's field cap counts every field, `Host` included: one more than it.
    let too_many = head(
        &server,
        "GET /health HTTP/1.1",
        &fields(MAX_TRANSPORT_HEADER_FIELDS),
    );
    assert_bare(
        &exchange(&server, &too_many).await,
        "HTTP/1.1 431 Request Header Fields Too Large",
        "one field over the transport's cap",
    );
    // A head one byte over the cap, however it arrives: hyper's `max_header_size` is exact.
    let base = head(&server, "GET /health HTTP/1.1", "X-Big: \r\n").len();
    let over = "a".repeat(MAX_TRANSPORT_HEADER_BYTES + 1 - base);
    let wire = head(
        &server,
        "GET /health HTTP/1.1",
        &format!("X-Big: {over}\r\n"),
    );
    assert_eq!(wire.len(), MAX_TRANSPORT_HEADER_BYTES + 1);
    assert_bare(
        &exchange(&server, &wire).await,
        "HTTP/1.1 431 Request Header Fields Too Large",
        "a head one byte over 64 KiB",
    );
    // Far beyond: hyper stops reading at the cap and answers at once.
    let far = "a".repeat(4 * MAX_TRANSPORT_HEADER_BYTES);
    let wire = head(
        &server,
        "GET /health HTTP/1.1",
        &format!("X-Big: {far}\r\n"),
    );
    assert_bare(
        &exchange(&server, &wire).await,
        "HTTP/1.1 431 Request Header Fields Too Large",
        "a head of 256 KiB",
    );
    // hyper answers 414 for a request target over 65,534 bytes, but no head that holds one
    // fits the cap: the 431 comes first. (A 414 is cacheable by default; a 431 is not.)
    let target = format!("/health?{}", "a".repeat(70_000));
    let wire = head(&server, &format!("GET {target} HTTP/1.1"), "");
    assert_bare(
        &exchange(&server, &wire).await,
        "HTTP/1.1 431 Request Header Fields Too Large",
        "a request target of 70,000 bytes",
    );
}

#[tokio::test]
async fn heads_over_the_pipeline_limits_but_within_the_transport_caps_get_the_pipeline_s_431_with_every_header()
 {
    let server = TestServer::start().await;
    let close = "Connection: close\r\n";
    // One field over the pipeline's limit (`Host` and `Connection` count too).
    let wire = head(
        &server,
        "GET /health HTTP/1.1",
        &format!("{close}{}", fields(MAX_HEADER_FIELDS - 1)),
    );
    assert_from_pipeline(&exchange(&server, &wire).await, 431, "101 fields");
    // Exactly the transport's field cap: the last count hyper still parses.
    let wire = head(
        &server,
        "GET /health HTTP/1.1",
        &format!("{close}{}", fields(MAX_TRANSPORT_HEADER_FIELDS - 2)),
    );
    assert_from_pipeline(&exchange(&server, &wire).await, 431, "400 fields");
    // One field just over the pipeline's byte limit.
    let value = "a".repeat(MAX_HEADER_LIST_BYTES);
    let wire = head(
        &server,
        "GET /health HTTP/1.1",
        &format!("{close}X-Big: {value}\r\n"),
    );
    assert_from_pipeline(&exchange(&server, &wire).await, 431, "a 16 KiB field");
    // A head of exactly the transport's cap, blank line included.
    let base = head(
        &server,
        "GET /health HTTP/1.1",
        &format!("{close}X-Big: \r\n"),
    )
    .len();
    let value = "a".repeat(MAX_TRANSPORT_HEADER_BYTES - base);
    let wire = head(
        &server,
        "GET /health HTTP/1.1",
        &format!("{close}X-Big: {value}\r\n"),
    );
    assert_eq!(wire.len(), MAX_TRANSPORT_HEADER_BYTES);
    let parsed = assert_from_pipeline(&exchange(&server, &wire).await, 431, "a 64 KiB head");
    assert!(
        parsed
            .headers
            .iter()
            .any(|(n, v)| n == "x-request-id" && !v.is_empty()),
        "a request id, as on every pipeline response"
    );
}

#[tokio::test]
async fn framing_that_hyper_can_resolve_reaches_the_pipeline_and_gets_its_headers() {
    let server = TestServer::start().await;
    let host = format!("Host: {}\r\n", server.authority());
    // Two equal Content-Length fields are one length (RFC 9110 §8.6): hyper keeps one and
    // the pipeline answers (no credentials: 401).
    let wire = format!(
        "POST /spaces HTTP/1.1\r\n{host}Content-Type: application/json\r\n\
         Content-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    assert_from_pipeline(
        &exchange(&server, wire.as_bytes()).await,
        401,
        "two equal lengths",
    );
    // Transfer-Encoding with Content-Length: hyper reads the chunked body, drops the length,
    // and closes the connection after the response (RFC 9112 §6.1).
    let wire = format!(
        "POST /spaces HTTP/1.1\r\n{host}Content-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
    );
    let parsed = assert_from_pipeline(
        &exchange(&server, wire.as_bytes()).await,
        401,
        "chunked with a Content-Length",
    );
    assert!(
        parsed
            .headers
            .iter()
            .any(|(n, v)| n == "connection" && v == "close"),
        "the connection is not reused after ambiguous framing"
    );
}

#[tokio::test]
async fn an_http2_preface_on_http1_or_a_head_cut_short_or_never_finished_is_closed_without_a_byte()
{
    let server =
        TestServer::start_with(&[("NATTERJACK_REST__HEADER_READ_TIMEOUT_SECS", "1")]).await;
    // The HTTP/2 preface on a connection that negotiated HTTP/1.1: hyper closes it.
    assert_eq!(exchange(&server, H2_PREFACE).await, b"");
    // Half a head, then the client's end of the connection: nothing to answer.
    let half = b"GET /health HTTP/1.1\r\nHost: x";
    assert_eq!(exchange_with(&server, half, true).await, b"");
    // Half a head, then silence: the header-read deadline closes the connection, unanswered.
    assert_eq!(exchange(&server, half).await, b"");
}

/// One HTTP/2 (ALPN `h2`) connection driven by hyper's client, which sends header lists of
/// any size (curl and browsers refuse to send one over the server's advertised
/// SETTINGS_MAX_HEADER_LIST_SIZE).
async fn h2_connection(
    server: &TestServer,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let ca = server.data_dir().join("ca.pem");
    let tls = connector(&ca, &[b"h2"], None);
    let tls = tls_from(&tls, Ipv4Addr::LOCALHOST.into(), addr(server))
        .await
        .expect("TLS handshake");
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// `GET /health` with one `x-big` field of `len` bytes.
fn h2_request(server: &TestServer, len: usize) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(format!("{}/health", server.base))
        .header("x-big", "a".repeat(len))
        .body(Empty::new())
        .expect("request")
}

#[tokio::test]
async fn over_http2_a_header_list_beyond_the_cap_gets_h2_s_bare_431_and_within_it_the_pipeline_s() {
    let server = TestServer::start().await;
    let mut sender = h2_connection(&server).await;
    // Over the pipeline's 16 KiB, under the advertised 64 KiB: the pipeline's problem.
    let response = tokio::time::timeout(HANG, sender.send_request(h2_request(&server, 20 * 1024)))
        .await
        .expect("no hang")
        .expect("a response");
    assert_eq!(response.status(), 431);
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(response.headers().get(*name).unwrap(), value, "{name}");
    }
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // Over the advertised 64 KiB: h2 answers the stream itself, `:status` and END_STREAM,
    // not a single header field and no body, then resets it.
    let response = tokio::time::timeout(
        HANG,
        sender.send_request(h2_request(&server, MAX_TRANSPORT_HEADER_BYTES + 1)),
    )
    .await
    .expect("no hang")
    .expect("a response");
    assert_eq!(response.status(), 431);
    assert!(response.headers().is_empty(), "{:?}", response.headers());
    let body = response.into_body().collect().await.map(|b| b.to_bytes());
    assert!(body.map_or(true, |b| b.is_empty()), "no body");
    // Only that stream ended: the connection serves the next request.
    let response = tokio::time::timeout(HANG, sender.send_request(h2_request(&server, 10)))
        .await
        .expect("no hang")
        .expect("a response");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn over_http2_a_header_block_far_beyond_the_cap_ends_the_connection_with_no_response() {
    let server = TestServer::start().await;
    let mut sender = h2_connection(&server).await;
    // 200 KB in one field: more CONTINUATION frames than a 64 KiB list needs (h2 allows
    // five), so h2 sends GOAWAY (ENHANCE_YOUR_CALM) and closes the connection.
    let sent = tokio::time::timeout(HANG, sender.send_request(h2_request(&server, 200_000)))
        .await
        .expect("no hang");
    let error = sent.expect_err("no response, not even h2's own 431");
    let error = format!("{error:?}");
    assert!(
        error.contains("GoAway") && error.contains("ENHANCE_YOUR_CALM"),
        "{error}"
    );
    // The error reaches the request first; the sender learns of the closed connection as
    // the connection task ends, a moment later.
    let closed = tokio::time::timeout(HANG, async {
        while !sender.is_closed() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection is gone");
}
