//! Validated input (allow lists, strict JSON, content type, body limit) and the injection
//! corpus against storage, played against the real server over real TLS.
//!
//! Every refusal must be a 400 (or 413/415) `application/problem+json` naming the field at
//! fault; nothing may ever answer 500, echo the refused value, leak storage internals, or
//! return data the caller did not ask for.

use crate::support::{Creds, PASSWORD, TestServer};
use natterjack_api::pipeline::headers::SECURITY_HEADERS;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The request body limit of the pipeline's hygiene step.
const BODY_LIMIT: usize = 16 * 1024;

/// Markers that must never appear in a response the caller did not write themselves.
const INTERNALS: &[&str] = &[
    "argon2",
    "password_hash",
    "sqlite",
    "sqlx",
    "panicked",
    "syntax error",
];

/// A running server with two users, each owning a space holding one message.
struct Fixture {
    server: TestServer,
    http: Client,
    alice: Creds,
    bob: Creds,
    /// Alice's space.
    space: i64,
    /// A message in Alice's space.
    message: i64,
    /// Bob's space, which Alice cannot read.
    bob_space: i64,
    /// The text of the message in Bob's space; it must never reach Alice.
    bob_secret: &'static str,
}

impl Fixture {
    async fn start() -> Self {
        let server = TestServer::start().await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let space = server.space(&alice, "garden").await;
        let message = server.message(&alice, space, "first").await;
        let bob_space = server.space(&bob, "vault").await;
        let bob_secret = "bob's secret: the key is under the mat";
        server.message(&bob, bob_space, bob_secret).await;
        let http = server.client();
        Self {
            server,
            http,
            alice,
            bob,
            space,
            message,
            bob_space,
            bob_secret,
        }
    }

    /// A request builder for `path` (which may contain `{space}` and `{message}`), sent as `who`.
    fn request(&self, who: Option<&Creds>, method: Method, path: &str) -> reqwest::RequestBuilder {
        let path = path
            .replace("{space}", &self.space.to_string())
            .replace("{message}", &self.message.to_string());
        let mut req = self.http.request(method, self.server.url(&path));
        if let Some(c) = who {
            req = req.basic_auth(&c.name, Some(&c.password));
        }
        req
    }

    /// Sends a request as Alice with a query and an optional JSON body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.request(Some(&self.alice), method, path).query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        Reply::of(req.send().await.expect("request")).await
    }

    /// Sends a request without a body as `who`.
    async fn send_as(&self, who: &Creds, method: Method, path: &str) -> Reply {
        Reply::of(
            self.request(Some(who), method, path)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Sends raw bytes as Alice with the given `Content-Type` (none when `None`).
    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self.request(Some(&self.alice), method, path).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Reply::of(req.send().await.expect("request")).await
    }

    /// The texts of the messages in Alice's space, newest first.
    async fn alice_messages(&self) -> Vec<String> {
        let reply = self
            .send(
                Method::GET,
                "/spaces/{space}/messages",
                &[("limit", "100")],
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["messages"]
            .as_array()
            .expect("messages array")
            .iter()
            .map(|m| m["message"].as_str().expect("message text").to_owned())
            .collect()
    }

    /// The server still answers, and Alice's and Bob's data are intact.
    async fn assert_database_intact(&self) {
        let health = Reply::of(
            self.request(None, Method::GET, "/health")
                .send()
                .await
                .expect("health"),
        )
        .await;
        assert_eq!(health.status, StatusCode::OK);
        let spaces = self.send(Method::GET, "/spaces", &[], None).await;
        assert_eq!(spaces.status, StatusCode::OK);
        let bob_view = self
            .send_as(
                &self.bob,
                Method::GET,
                &format!("/spaces/{}/messages", self.bob_space),
            )
            .await;
        assert_eq!(bob_view.status, StatusCode::OK);
        let bob_messages = bob_view.json()["messages"]
            .as_array()
            .expect("messages")
            .len();
        assert_eq!(
            bob_messages, 1,
            "Bob's space must still hold exactly its one message"
        );
    }
}

/// A response read to the end, so it can be checked and reported.
struct Reply {
    status: StatusCode,
    content_type: String,
    /// The `WWW-Authenticate` header, if any.
    challenge: Option<String>,
    text: String,
}

impl Reply {
    async fn of(r: Response) -> Self {
        let status = r.status();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let challenge = header("www-authenticate");
        let text = r.text().await.expect("response body");
        Self {
            status,
            content_type,
            challenge,
            text,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Checks that this is a problem with `status`, naming `field` when given, carrying a
    /// request id, leaking no internals and not echoing `refused` (when long enough to tell).
    fn problem(
        &self,
        status: StatusCode,
        field: Option<&str>,
        refused: &str,
    ) -> Result<Value, String> {
        let here = format!("{} {}", self.status, self.text);
        if self.status != status {
            return Err(format!("expected {status}, got {here}"));
        }
        if self.content_type != "application/problem+json" {
            return Err(format!(
                "expected application/problem+json, got {:?}: {here}",
                self.content_type
            ));
        }
        let body: Value = serde_json::from_str(&self.text)
            .map_err(|e| format!("problem is not JSON ({e}): {here}"))?;
        if body["status"] != json!(status.as_u16()) {
            return Err(format!("problem status member disagrees: {here}"));
        }
        if body["request_id"].as_str().is_none_or(str::is_empty) {
            return Err(format!("problem without a request id: {here}"));
        }
        if let Some(field) = field
            && body["field"] != json!(field)
        {
            return Err(format!("expected field {field:?}: {here}"));
        }
        if status == StatusCode::UNAUTHORIZED
            && self.challenge.as_deref() != Some(r#"Basic realm="natterjack", charset="UTF-8""#)
        {
            return Err(format!(
                "401 without the Basic challenge ({:?}): {here}",
                self.challenge
            ));
        }
        if refused.chars().count() >= 6 && self.text.contains(refused) {
            return Err(format!("the refused value was echoed: {here}"));
        }
        self.leak_free()?;
        Ok(body)
    }

    /// Like [`Reply::problem`] for an unknown query parameter named `injected`: the detail
    /// must say the parameter is unknown without echoing a name that is not a plausible
    /// identifier.
    fn unknown_parameter_problem(&self, injected: &str) -> Result<(), String> {
        let body = self.problem(StatusCode::BAD_REQUEST, None, injected)?;
        let detail = body["detail"].as_str().unwrap_or_default();
        if !detail.starts_with("query parameter: unknown field") {
            return Err(format!(
                "the detail does not say the parameter is unknown: {}",
                self.text
            ));
        }
        if detail.contains(injected) {
            return Err(format!(
                "the detail echoes the injected name: {}",
                self.text
            ));
        }
        Ok(())
    }

    /// Checks that the body carries no storage or hashing internals.
    fn leak_free(&self) -> Result<(), String> {
        let lower = self.text.to_lowercase();
        match INTERNALS.iter().find(|m| lower.contains(*m)) {
            Some(m) => Err(format!(
                "response leaks {m:?}: {} {}",
                self.status, self.text
            )),
            None => Ok(()),
        }
    }
}

/// One request of a table test and the field its 400 must name.
struct Case {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    field: &'static str,
}

impl Case {
    /// A POST with a JSON body.
    fn post(path: &str, body: Value, field: &'static str) -> Self {
        Self {
            method: Method::POST,
            path: path.to_owned(),
            query: Vec::new(),
            body: Some(body),
            field,
        }
    }

    /// A request without query or body.
    fn bare(method: Method, path: &str, field: &'static str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            query: Vec::new(),
            body: None,
            field,
        }
    }

    /// A request with one query parameter, which is the field at fault.
    fn query(method: Method, path: &str, name: &'static str, value: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            query: vec![(name, value.to_owned())],
            body: None,
            field: name,
        }
    }
}

/// Percent-encodes every byte that is not an ASCII letter or digit, so that any string becomes
/// exactly one path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Fails with every collected problem at once, so one run shows the whole picture.
fn assert_all_passed(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// SQL injection and encoding tricks, used against every text field, path and query parameter.
fn corpus() -> Vec<String> {
    let fixed = [
        "'",
        "\"",
        "''",
        "' OR 1=1 --",
        "' OR '1'='1",
        "\" OR \"\"=\"",
        "admin'--",
        "1; DROP TABLE messages; --",
        "'; DROP TABLE users; --",
        "x'); DELETE FROM spaces; --",
        "') UNION SELECT username, password_hash FROM users --",
        "1 UNION SELECT 1,2,3,4,5,6",
        "' || (SELECT password_hash FROM users LIMIT 1) || '",
        "'; ATTACH DATABASE '/tmp/pwned.db' AS pwned; --",
        "'; PRAGMA writable_schema = 1; --",
        "/* comment */",
        "*/ SELECT 1 /*",
        "-- trailing comment",
        "%27%20OR%201%3D1",
        "%00",
        "\u{0}",
        "a\u{0}b",
        "' OR 1=1\u{0}",
        "\\",
        "\\'",
        "\\\\'; --",
        "\\x00",
        "$1",
        "?",
        "?1",
        ":name",
        "@p1",
        "1 OR 1=1",
        "1;",
        "1--",
        "\u{2bc} OR 1=1 --",
        "\u{ff07} OR 1=1 --",
    ];
    let mut all: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
    all.push("'".repeat(255));
    all.push("\"".repeat(300));
    all.push("'".repeat(4096));
    all.push("\\".repeat(4096));
    all.push("'".repeat(4097));
    all
}

/// Injection strings short enough for a URL path or query (a 12 KiB request line proves
/// nothing more than a 1 KiB one does).
fn url_corpus() -> Vec<String> {
    corpus().into_iter().filter(|s| s.len() <= 300).collect()
}

/// The allow list of free text: 1 to `max` characters, no control characters except, for
/// multi-line text, newline and tab.
fn text_is_allowed(s: &str, max: usize, multiline: bool) -> bool {
    let count = s.chars().count();
    (1..=max).contains(&count)
        && !s
            .chars()
            .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
}

/// Sends one POST with a chunked body (no `Content-Length`) over raw HTTP/1.1 on TLS, trusting
/// only the development CA, and returns the raw response text.
async fn chunked_post(server: &TestServer, who: &Creds, path: &str, body: Vec<u8>) -> String {
    let ca = server.data_dir().join("ca.pem");
    let authority = server.authority().to_owned();
    let (who, path) = (who.clone(), path.to_owned());
    tokio::task::spawn_blocking(move || chunked_post_blocking(&ca, &authority, &who, &path, &body))
        .await
        .expect("chunked request thread")
}

/// The blocking half of [`chunked_post`].
fn chunked_post_blocking(
    ca: &std::path::Path,
    authority: &str,
    who: &Creds,
    path: &str,
    body: &[u8],
) -> String {
    use base64::Engine as _;
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", who.name, who.password));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Basic {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut wire = head.into_bytes();
    for chunk in body.chunks(1000) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    exchange_blocking(ca, authority, &wire)
}

/// Writes `wire` whole over HTTP/1.1 on TLS, as a client that reads nothing before it has
/// sent everything, then reads until the server closes.
async fn raw_exchange(server: &TestServer, wire: Vec<u8>) -> String {
    let ca = server.data_dir().join("ca.pem");
    let authority = server.authority().to_owned();
    tokio::task::spawn_blocking(move || exchange_blocking(&ca, &authority, &wire))
        .await
        .expect("raw exchange thread")
}

/// The blocking half of [`raw_exchange`], on a plain socket with rustls.
fn exchange_blocking(ca: &std::path::Path, authority: &str, wire: &[u8]) -> String {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, ServerName};
    crate::support::install_crypto();
    let pem = std::fs::read(ca).expect("ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("ca certificate")).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("tls client");
    let tcp = std::net::TcpStream::connect(authority).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // The server may answer and close before reading everything; what matters is its answer.
    let _ = tls.write_all(wire).and_then(|()| tls.flush());
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// A JSON body `{"name":"aaa…"}` of exactly `len` bytes.
fn name_body_of_len(len: usize) -> Vec<u8> {
    let frame = r#"{"name":""}"#.len();
    format!(r#"{{"name":"{}"}}"#, "a".repeat(len - frame)).into_bytes()
}

// ---------------------------------------------------------------------------------------------
// 1. Every field's allow list
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_field_refuses_values_outside_its_allow_list_with_a_400_naming_the_field() {
    let f = Fixture::start().await;
    let user = |username: &str, password: &str| json!({"username": username, "password": password});
    let grant = |username: &str, permissions: &str| json!({"username": username, "permissions": permissions});
    let messages = "/spaces/{space}/messages";
    let mut cases = vec![
        // username
        Case::post("/users", user("1abc", PASSWORD), "username"),
        Case::post("/users", user("a", PASSWORD), "username"),
        Case::post("/users", user("al ice", PASSWORD), "username"),
        Case::post("/users", user("alice!", PASSWORD), "username"),
        Case::post("/users", user("\u{e5}lice", PASSWORD), "username"),
        Case::post(
            "/users",
            user(&format!("a{}", "1".repeat(30)), PASSWORD),
            "username",
        ),
        // password: too short, too long (in bytes, not characters), too common
        Case::post("/users", user("carol", "Zq7!x"), "password"),
        Case::post("/users", user("carol", &"Zq7!x-".repeat(43)), "password"),
        Case::post("/users", user("carol", &"\u{e9}".repeat(129)), "password"),
        Case::post("/users", user("carol", "password1"), "password"),
        Case::post("/users", user("carol", "carol123"), "password"),
        // space name and owner
        Case::post("/spaces", json!({"name": ""}), "name"),
        Case::post("/spaces", json!({"name": "a".repeat(256)}), "name"),
        Case::post("/spaces", json!({"name": "bell\u{7}"}), "name"),
        Case::post("/spaces", json!({"name": "two\nlines"}), "name"),
        Case::post("/spaces", json!({"name": "tab\there"}), "name"),
        Case::post("/spaces", json!({"name": "del\u{7f}"}), "name"),
        Case::post(
            "/spaces",
            json!({"name": "x", "owner": "' OR 1=1 --"}),
            "owner",
        ),
        // message
        Case::post(messages, json!({"message": ""}), "message"),
        Case::post(messages, json!({"message": "a".repeat(4097)}), "message"),
        Case::post(messages, json!({"message": "\u{0}"}), "message"),
        Case::post(messages, json!({"message": "\u{1b}[31mred"}), "message"),
        Case::post(messages, json!({"message": "carriage\rreturn"}), "message"),
        // permissions and the grantee
        Case::post("/spaces/{space}/members", grant("bob", "x"), "permissions"),
        Case::post("/spaces/{space}/members", grant("bob", "rr"), "permissions"),
        Case::post("/spaces/{space}/members", grant("bob", ""), "permissions"),
        Case::post("/spaces/{space}/members", grant("bob", "R"), "permissions"),
        Case::post("/spaces/{space}/members", grant("b", "r"), "username"),
        Case::bare(Method::DELETE, "/spaces/{space}/members/b0b!", "username"),
        Case::query(
            Method::DELETE,
            "/spaces/{space}/members/bob",
            "permissions",
            "x",
        ),
        // query parameters
        Case::query(Method::GET, messages, "since", "yesterday"),
        Case::query(Method::GET, messages, "since", "2026-01-01"),
        Case::query(Method::GET, messages, "since", ""),
        Case::query(Method::GET, messages, "limit", "0"),
        Case::query(Method::GET, messages, "limit", "101"),
        Case::query(Method::GET, messages, "limit", "ten"),
        Case::query(Method::GET, messages, "limit", "-1"),
        Case::query(Method::GET, messages, "after", "0"),
        Case::query(Method::GET, messages, "after", "-1"),
        Case::query(Method::GET, messages, "after", "abc"),
    ];
    // Path ids, on every route that takes them.
    for bad in ["0", "-1", "abc", "9223372036854775808", "01", "1e3", "0x10"] {
        cases.extend([
            Case::bare(Method::GET, &format!("/spaces/{bad}"), "id"),
            Case::bare(Method::GET, &format!("/spaces/{bad}/messages"), "id"),
            Case::post(
                &format!("/spaces/{bad}/messages"),
                json!({"message": "hi"}),
                "id",
            ),
            Case::bare(
                Method::GET,
                &format!("/spaces/{bad}/messages/{{message}}"),
                "id",
            ),
            Case::bare(
                Method::DELETE,
                &format!("/spaces/{bad}/messages/{{message}}"),
                "id",
            ),
            Case::bare(Method::GET, &format!("/spaces/{bad}/members"), "id"),
            Case::post(&format!("/spaces/{bad}/members"), grant("bob", "r"), "id"),
            Case::bare(Method::DELETE, &format!("/spaces/{bad}/members/bob"), "id"),
            Case::bare(
                Method::GET,
                &format!("/spaces/{{space}}/messages/{bad}"),
                "msgId",
            ),
            Case::bare(
                Method::DELETE,
                &format!("/spaces/{{space}}/messages/{bad}"),
                "msgId",
            ),
        ]);
    }

    let mut failures = Vec::new();
    for case in &cases {
        let query: Vec<(&str, &str)> = case.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = f
            .send(case.method.clone(), &case.path, &query, case.body.as_ref())
            .await;
        if let Err(e) = reply.problem(StatusCode::BAD_REQUEST, Some(case.field), "") {
            failures.push(format!(
                "{} {} {query:?} {:?}: {e}",
                case.method, case.path, case.body
            ));
        }
    }
    assert_all_passed(&failures);
    // Nothing refused was created.
    assert_eq!(f.alice_messages().await, vec!["first".to_owned()]);
    let carol = f
        .send_as(&Creds::new("carol", "Zq7!x"), Method::GET, "/spaces")
        .await;
    assert_eq!(
        carol.status,
        StatusCode::UNAUTHORIZED,
        "no refused registration may create an account"
    );
}

#[tokio::test]
async fn values_on_the_edge_of_each_allow_list_are_accepted() {
    let f = Fixture::start().await;
    let name = "n".repeat(255);
    let reply = f
        .send(Method::POST, "/spaces", &[], Some(&json!({"name": name})))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "a 255-character name: {}",
        reply.text
    );
    assert_eq!(reply.json()["name"], json!(name));

    let wide = "\u{fc}".repeat(255); // 255 characters, 510 bytes
    let reply = f
        .send(Method::POST, "/spaces", &[], Some(&json!({"name": wide})))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "length is counted in characters, not bytes: {}",
        reply.text
    );

    let text = "m".repeat(4096);
    let reply = f
        .send(
            Method::POST,
            "/spaces/{space}/messages",
            &[],
            Some(&json!({"message": text})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "a 4096-character message: {}",
        reply.text
    );
    assert_eq!(reply.json()["message"], json!(text));

    let reply = f
        .send(
            Method::POST,
            "/users",
            &[],
            Some(&json!({"username": "ab", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "a two-letter username: {}",
        reply.text
    );
    let longest = format!("Z{}", "9".repeat(29));
    let reply = f
        .send(
            Method::POST,
            "/users",
            &[],
            Some(&json!({"username": longest, "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "a 30-character username: {}",
        reply.text
    );

    for limit in ["1", "100"] {
        let reply = f
            .send(
                Method::GET,
                "/spaces/{space}/messages",
                &[("limit", limit)],
                None,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "limit={limit}: {}",
            reply.text
        );
    }
    let page = f
        .send(
            Method::GET,
            "/spaces/{space}/messages",
            &[("limit", "1")],
            None,
        )
        .await
        .json();
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(1));

    let reply = f
        .send(
            Method::GET,
            "/spaces/{space}/messages",
            &[("since", "2000-01-01T00:00:00+01:00")],
            None,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "an RFC 3339 since with an offset: {}",
        reply.text
    );
    assert_eq!(reply.json()["messages"].as_array().map(Vec::len), Some(2));

    let reply = f
        .send(
            Method::GET,
            "/spaces/{space}/messages",
            &[("after", "9223372036854775807")],
            None,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the largest 63-bit cursor: {}",
        reply.text
    );

    for path in [
        "/spaces/9223372036854775807",
        "/spaces/{space}/messages/9223372036854775807",
    ] {
        let reply = f.send(Method::GET, path, &[], None).await;
        assert!(
            matches!(reply.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
            "the largest 63-bit id is valid but absent at {path}: {} {}",
            reply.status,
            reply.text
        );
    }
}

#[tokio::test]
async fn messages_may_contain_newlines_and_tabs_and_read_back_unchanged() {
    let f = Fixture::start().await;
    let text = "line one\n\tindented line two\n";
    let reply = f
        .send(
            Method::POST,
            "/spaces/{space}/messages",
            &[],
            Some(&json!({"message": text})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.json()["id"].as_i64().expect("id");
    let read = f
        .send(
            Method::GET,
            &format!("/spaces/{{space}}/messages/{id}"),
            &[],
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["message"], json!(text));
}

#[tokio::test]
async fn text_is_stored_nfc_normalised_so_a_decomposed_cafe_reads_back_composed() {
    let f = Fixture::start().await;
    let decomposed = "Cafe\u{301}";
    let composed = "Caf\u{e9}";

    let created = f
        .send(
            Method::POST,
            "/spaces",
            &[],
            Some(&json!({"name": decomposed})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json()["name"], json!(composed));
    let id = created.json()["id"].as_i64().expect("id");
    let read = f
        .send(Method::GET, &format!("/spaces/{id}"), &[], None)
        .await;
    assert_eq!(read.json()["name"], json!(composed));
    assert!(read.text.contains(composed) && !read.text.contains(decomposed));

    let posted = f
        .send(
            Method::POST,
            "/spaces/{space}/messages",
            &[],
            Some(&json!({"message": decomposed})),
        )
        .await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.text);
    let msg = posted.json()["id"].as_i64().expect("id");
    let read = f
        .send(
            Method::GET,
            &format!("/spaces/{{space}}/messages/{msg}"),
            &[],
            None,
        )
        .await;
    assert_eq!(read.json()["message"], json!(composed));
}

#[tokio::test]
async fn granted_permissions_are_canonicalised_whatever_the_letter_order() {
    let f = Fixture::start().await;
    let reply = f
        .send(
            Method::POST,
            "/spaces/{space}/members",
            &[],
            Some(&json!({"username": "bob", "permissions": "dr"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json()["permissions"], json!("rd"));
    let members = f
        .send(Method::GET, "/spaces/{space}/members", &[], None)
        .await
        .json();
    let bob = members
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["username"] == json!("bob"))
        .cloned();
    assert_eq!(bob.map(|m| m["permissions"].clone()), Some(json!("rd")));
}

// ---------------------------------------------------------------------------------------------
// 2. Strict JSON and strict query strings
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_json_fields_are_refused_and_the_detail_names_them() {
    let f = Fixture::start().await;
    let cases = [
        (
            "/users",
            json!({"username": "mallory", "password": PASSWORD, "admin": true}),
            "admin",
        ),
        ("/spaces", json!({"name": "x", "colour": "red"}), "colour"),
        (
            "/spaces/{space}/messages",
            json!({"message": "hi", "author": "bob"}),
            "author",
        ),
        (
            "/spaces/{space}/members",
            json!({"username": "bob", "permissions": "r", "granted_by": "root"}),
            "granted_by",
        ),
    ];
    let mut failures = Vec::new();
    for (path, body, unknown) in cases {
        let reply = f.send(Method::POST, path, &[], Some(&body)).await;
        match reply.problem(StatusCode::BAD_REQUEST, None, "") {
            Ok(problem) => {
                let detail = problem["detail"].as_str().unwrap_or_default();
                if !detail.contains(unknown) {
                    failures.push(format!(
                        "POST {path}: detail does not name `{unknown}`: {}",
                        reply.text
                    ));
                }
            }
            Err(e) => failures.push(format!("POST {path} {body}: {e}")),
        }
    }
    assert_all_passed(&failures);
    let mallory = f
        .send_as(&Creds::new("mallory", PASSWORD), Method::GET, "/spaces")
        .await;
    assert_eq!(
        mallory.status,
        StatusCode::UNAUTHORIZED,
        "the refused registration must not create an account"
    );
}

#[tokio::test]
async fn json_values_of_the_wrong_type_are_refused_naming_the_field() {
    let f = Fixture::start().await;
    // (path, body, the field the detail must name where the body is an object)
    let cases = [
        (
            "/users",
            json!({"username": 42, "password": PASSWORD}),
            Some("username"),
        ),
        (
            "/users",
            json!({"username": "carol", "password": ["a", "b"]}),
            Some("password"),
        ),
        (
            "/users",
            json!({"username": "carol", "password": null}),
            Some("password"),
        ),
        ("/spaces", json!({"name": 42}), Some("name")),
        ("/spaces", json!({"name": {"$ne": ""}}), Some("name")),
        ("/spaces", json!({"name": null}), Some("name")),
        ("/spaces", json!({"name": true}), Some("name")),
        ("/spaces", json!({"name": "x", "owner": 1}), Some("owner")),
        ("/spaces", json!({}), Some("name")),
        ("/spaces", json!([{"name": "x"}]), None),
        ("/spaces", json!("x"), None),
        ("/spaces", json!(null), None),
        (
            "/spaces/{space}/messages",
            json!({"message": ["hi"]}),
            Some("message"),
        ),
        (
            "/spaces/{space}/messages",
            json!({"message": 1.5}),
            Some("message"),
        ),
        (
            "/spaces/{space}/members",
            json!({"username": "bob", "permissions": 7}),
            Some("permissions"),
        ),
        (
            "/spaces/{space}/members",
            json!({"username": ["bob"], "permissions": "r"}),
            Some("username"),
        ),
        (
            "/spaces/{space}/members",
            json!({"username": "bob"}),
            Some("permissions"),
        ),
    ];
    let mut failures = Vec::new();
    for (path, body, field) in cases {
        let reply = f.send(Method::POST, path, &[], Some(&body)).await;
        match reply.problem(StatusCode::BAD_REQUEST, None, "") {
            Err(e) => failures.push(format!("POST {path} {body}: {e}")),
            Ok(problem) => {
                let detail = problem["detail"].as_str().unwrap_or_default();
                if let Some(field) = field.filter(|f| !detail.contains(&format!("`{f}`"))) {
                    failures.push(format!(
                        "POST {path} {body}: detail does not name `{field}`: {detail}"
                    ));
                }
            }
        }
    }
    assert_all_passed(&failures);
    assert_eq!(f.alice_messages().await, vec!["first".to_owned()]);
}

#[tokio::test]
async fn malformed_json_is_refused_with_a_400_problem() {
    let f = Fixture::start().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("/spaces", b"".to_vec()),
        ("/spaces", b"{".to_vec()),
        ("/spaces", br#"{"name":"#.to_vec()),
        ("/spaces", br#"{"name":"x",}"#.to_vec()),
        ("/spaces", b"{name: 'x'}".to_vec()),
        ("/spaces", br#"{"name":"x"} trailing"#.to_vec()),
        ("/spaces", br#"{"name":"x"}{"name":"y"}"#.to_vec()),
        ("/spaces", br#"{"name":"a","name":"b"}"#.to_vec()),
        ("/spaces", b"{\"name\":\"a\xff\xfeb\"}".to_vec()),
        ("/spaces", br#"{"name":"\ud800"}"#.to_vec()),
        ("/spaces", b"\xef\xbb\xbf{\"name\":\"bom\"}".to_vec()),
        (
            "/spaces/{space}/messages",
            b"{\"message\":\"raw\x01control\"}".to_vec(),
        ),
        (
            "/spaces/{space}/messages",
            b"{\"message\":\"raw\nnewline\"}".to_vec(),
        ),
        ("/spaces/{space}/messages", br#"{"message":"x""#.to_vec()),
        ("/spaces/{space}/messages", b"message=hello".to_vec()),
        (
            "/users",
            br#"{"username":"carol","password":"violet-anvil-73-harbour""#.to_vec(),
        ),
    ];
    let mut failures = Vec::new();
    for (path, body) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let reply = f
            .send_raw(Method::POST, path, Some("application/json"), body)
            .await;
        if let Err(e) = reply.problem(StatusCode::BAD_REQUEST, None, "") {
            failures.push(format!("POST {path} {shown:?}: {e}"));
        }
    }
    assert_all_passed(&failures);
    assert_eq!(f.alice_messages().await, vec!["first".to_owned()]);
}

#[tokio::test]
async fn unknown_query_parameters_are_refused_and_named() {
    let f = Fixture::start().await;
    let messages = "/spaces/{space}/messages";
    let since = ("since", "2000-01-01T00:00:00Z");
    let cases = [
        (Method::GET, messages, vec![("sort", "asc")], "sort"),
        (
            Method::GET,
            messages,
            vec![("limit", "5"), ("offset", "0")],
            "offset",
        ),
        (Method::GET, messages, vec![("space_id", "1")], "space_id"),
        (Method::GET, messages, vec![since, since], "since"),
        (
            Method::DELETE,
            "/spaces/{space}/members/bob",
            vec![("cascade", "true")],
            "cascade",
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, query, name) in cases {
        let reply = f.send(method.clone(), path, &query, None).await;
        match reply.problem(StatusCode::BAD_REQUEST, None, "") {
            Ok(problem)
                if !problem["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(name) =>
            {
                failures.push(format!(
                    "{method} {path} {query:?}: detail does not name `{name}`: {}",
                    reply.text
                ));
            }
            Ok(_) => {}
            Err(e) => failures.push(format!("{method} {path} {query:?}: {e}")),
        }
    }
    assert_all_passed(&failures);
}

#[tokio::test]
async fn query_parameters_on_routes_that_take_none_are_refused() {
    let f = Fixture::start().await;
    let mut failures = Vec::new();
    for (method, path, body) in [
        (Method::GET, "/spaces", None),
        (Method::GET, "/spaces/{space}", None),
        (Method::GET, "/spaces/{space}/members", None),
        (Method::GET, "/spaces/{space}/messages/{message}", None),
        (Method::POST, "/spaces", Some(json!({"name": "x"}))),
        (
            Method::POST,
            "/spaces/{space}/messages",
            Some(json!({"message": "x"})),
        ),
    ] {
        let reply = f
            .send(method.clone(), path, &[("owner", "bob")], body.as_ref())
            .await;
        if let Err(e) = reply.problem(StatusCode::BAD_REQUEST, None, "") {
            failures.push(format!("{method} {path}?owner=bob: {e}"));
        }
    }
    assert_all_passed(&failures);
}

// ---------------------------------------------------------------------------------------------
// 3. Content type
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_json_body_without_a_json_content_type_gets_415() {
    let f = Fixture::start().await;
    let body = br#"{"name":"sneaky"}"#.to_vec();
    let mut failures = Vec::new();
    for ct in [
        Some("text/plain"),
        None,
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        Some("application/json-patch+json"),
        Some("text/json"),
        Some("application/json; charset=latin1"),
        Some("application/json; charset=utf-16"),
        Some("application/json; boundary=x"),
    ] {
        let reply = f.send_raw(Method::POST, "/spaces", ct, body.clone()).await;
        if let Err(e) = reply.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, "") {
            failures.push(format!("Content-Type {ct:?}: {e}"));
        }
    }
    for (path, body) in [
        (
            "/spaces/{space}/messages",
            br#"{"message":"sneaky"}"#.to_vec(),
        ),
        (
            "/users",
            br#"{"username":"sneaky","password":"violet-anvil-73-harbour"}"#.to_vec(),
        ),
    ] {
        let reply = f
            .send_raw(Method::POST, path, Some("text/plain"), body)
            .await;
        if let Err(e) = reply.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, "") {
            failures.push(format!("POST {path} as text/plain: {e}"));
        }
    }
    assert_all_passed(&failures);
    let spaces = f.send(Method::GET, "/spaces", &[], None).await.json();
    assert!(
        !spaces.to_string().contains("sneaky"),
        "a refused body created a space: {spaces}"
    );
    assert_eq!(f.alice_messages().await, vec!["first".to_owned()]);
}

#[tokio::test]
async fn the_content_type_is_checked_before_credentials() {
    let f = Fixture::start().await;
    let reply = Reply::of(
        f.request(
            Some(&Creds::new("alice", "wrong-password-entirely")),
            Method::POST,
            "/spaces",
        )
        .header("content-type", "text/plain")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .expect("request"),
    )
    .await;
    reply
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, "")
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn json_with_an_explicit_utf8_charset_is_accepted() {
    let f = Fixture::start().await;
    for (i, ct) in [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
    ]
    .iter()
    .enumerate()
    {
        let body = format!(r#"{{"name":"charset {i} \u00e9"}}"#).into_bytes();
        let reply = f.send_raw(Method::POST, "/spaces", Some(ct), body).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "Content-Type {ct:?}: {}",
            reply.text
        );
        assert_eq!(reply.json()["name"], json!(format!("charset {i} \u{e9}")));
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Body limit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_16_kib_with_a_content_length_gets_413() {
    let f = Fixture::start().await;
    let reply = f
        .send_raw(
            Method::POST,
            "/spaces",
            Some("application/json"),
            name_body_of_len(BODY_LIMIT + 1),
        )
        .await;
    reply
        .problem(StatusCode::PAYLOAD_TOO_LARGE, None, "")
        .unwrap_or_else(|e| panic!("16 KiB + 1: {e}"));
    let reply = f
        .send_raw(
            Method::POST,
            "/spaces/{space}/messages",
            Some("application/json"),
            vec![b' '; 1 << 20],
        )
        .await;
    reply
        .problem(StatusCode::PAYLOAD_TOO_LARGE, None, "")
        .unwrap_or_else(|e| panic!("1 MiB: {e}"));
}

/// An oversized POST with a `Content-Length`, its whole body, then a health check on the same
/// connection: what a client that writes everything before reading sends.
fn oversized_post_then_health(authority: &str, body_len: usize) -> Vec<u8> {
    let mut wire = format!(
        "POST /spaces HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {body_len}\r\n\r\n"
    )
    .into_bytes();
    wire.extend(name_body_of_len(body_len));
    wire.extend(
        format!("GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
            .into_bytes(),
    );
    wire
}

#[tokio::test]
async fn a_client_that_sends_a_whole_oversized_body_before_reading_gets_the_413_and_keeps_its_connection()
 {
    let f = Fixture::start().await;
    let reply = raw_exchange(
        &f.server,
        oversized_post_then_health(f.server.authority(), 200 * 1024),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains(r#""status":413"#), "{reply}");
    let second = reply
        .find("HTTP/1.1 200")
        .unwrap_or_else(|| panic!("the connection was not kept for the next request: {reply}"));
    assert!(
        second > reply.find(r#""status":413"#).unwrap_or(0),
        "{reply}"
    );
}

#[tokio::test]
async fn a_body_declared_over_a_mebibyte_gets_413_at_once_and_the_connection_is_closed() {
    let f = Fixture::start().await;
    // Only the start of the declared body is sent: the server must answer without waiting for
    // the rest (draining it would wait until the request timeout), and close.
    let mut wire = oversized_post_then_health(f.server.authority(), 2 << 20);
    wire.truncate(wire.len() - (2 << 20) + 1024);
    let reply = raw_exchange(&f.server, wire).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains(r#""status":413"#), "{reply}");
    assert!(
        reply.to_lowercase().contains("connection: close"),
        "{reply}"
    );
}

#[tokio::test]
async fn a_body_of_exactly_16_kib_is_read_and_judged_on_its_content() {
    let f = Fixture::start().await;
    let reply = f
        .send_raw(
            Method::POST,
            "/spaces",
            Some("application/json"),
            name_body_of_len(BODY_LIMIT),
        )
        .await;
    reply
        .problem(StatusCode::BAD_REQUEST, Some("name"), "")
        .unwrap_or_else(|e| panic!("exactly 16 KiB: {e}"));
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_credentials_are_checked() {
    let f = Fixture::start().await;
    let reply = Reply::of(
        f.request(None, Method::POST, "/spaces")
            .header("content-type", "application/json")
            .body(name_body_of_len(BODY_LIMIT + 1))
            .send()
            .await
            .expect("request"),
    )
    .await;
    reply
        .problem(StatusCode::PAYLOAD_TOO_LARGE, None, "")
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_chunked_body_over_16_kib_without_a_content_length_gets_413() {
    let f = Fixture::start().await;
    let small = chunked_post(
        &f.server,
        &f.alice,
        "/spaces",
        br#"{"name":"chunked but small"}"#.to_vec(),
    )
    .await;
    let large = chunked_post(
        &f.server,
        &f.alice,
        "/spaces",
        name_body_of_len(BODY_LIMIT + 100),
    )
    .await;
    assert!(
        small.starts_with("HTTP/1.1 201"),
        "a small chunked body is accepted: {small}"
    );
    assert!(
        large.starts_with("HTTP/1.1 413"),
        "an oversized chunked body gets 413: {large}"
    );
    assert!(
        large
            .to_lowercase()
            .contains("content-type: application/problem+json"),
        "{large}"
    );
    assert!(large.contains(r#""status":413"#), "{large}");
    let spaces = f.send(Method::GET, "/spaces", &[], None).await.json();
    assert_eq!(
        spaces.as_array().map(Vec::len),
        Some(2),
        "only the small chunked space was created: {spaces}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4b. Header limits
// ---------------------------------------------------------------------------------------------

/// A GET /health over HTTP/1.1 with `fields` extra header fields, then the end of the head.
fn health_with_fields(authority: &str, fields: usize) -> Vec<u8> {
    let mut wire = format!("GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for i in 0..fields {
        wire.push_str(&format!("X-Field-{i}: 1\r\n"));
    }
    wire.push_str("\r\n");
    wire.into_bytes()
}

#[tokio::test]
async fn header_fields_over_the_limits_get_a_431_problem_over_both_http_versions_and_are_audited() {
    let f = Fixture::start().await;
    // HTTP/1.1: 150 fields, over the pipeline's 100 and under the transport's cap.
    let reply = raw_exchange(&f.server, health_with_fields(f.server.authority(), 150)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert!(reply.contains(r#""status":431"#), "a problem body: {reply}");
    assert!(
        reply
            .to_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{reply}"
    );
    // HTTP/2 (ALPN h2): one field of 20 KiB, over the pipeline's 16 KiB.
    let response = f
        .request(None, Method::GET, "/health")
        .header("x-big", "a".repeat(20 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    Reply::of(response)
        .await
        .problem(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, None, "")
        .unwrap_or_else(|e| panic!("HTTP/2: {e}"));
    // Both refusals are in the audit log; completions are queued, so wait for them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let refused: Vec<_> = f
            .server
            .audit_records()
            .await
            .into_iter()
            .filter(|r| r.record.status.map(|s| s.code()) == Some(431))
            .collect();
        if refused.len() == 2 {
            assert!(
                refused
                    .iter()
                    .all(|r| r.record.decision.as_str() == "reject"
                        && r.record.operation == "GET /health"
                        && r.record.reason.as_deref() == Some("header fields over the limit"))
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected two audited 431s, found {}",
            refused.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn http11_requests_without_exactly_one_valid_host_get_a_400_problem_and_are_audited() {
    let f = Fixture::start().await;
    let authority = f.server.authority().to_owned();
    let heads = [
        "GET /health HTTP/1.1\r\n\r\n".to_owned(),
        format!("GET /health HTTP/1.1\r\nHost: {authority}\r\nHost: evil.example\r\n\r\n"),
        "GET /health HTTP/1.1\r\nHost: bad host\r\n\r\n".to_owned(),
        "GET /health HTTP/1.1\r\nHost: localhost:80:80\r\n\r\n".to_owned(),
    ];
    for head in &heads {
        let reply = raw_exchange(&f.server, head.clone().into_bytes()).await;
        let lower = reply.to_lowercase();
        assert!(reply.starts_with("HTTP/1.1 400"), "{head:?}: {reply}");
        assert!(
            reply.contains(r#""detail":"a request needs exactly one valid Host header""#),
            "{head:?}: {reply}"
        );
        for (name, value) in SECURITY_HEADERS {
            assert!(
                lower.contains(&format!("{name}: {}", value.to_lowercase())),
                "{head:?}: no {name} in {reply}"
            );
        }
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{reply}"
        );
        assert!(lower.contains("connection: close"), "{reply}");
    }
    // The same request with one valid Host is served.
    let ok = raw_exchange(
        &f.server,
        format!("GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
            .into_bytes(),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let refused = f
            .server
            .audit_records()
            .await
            .into_iter()
            .filter(|r| {
                r.record.status.map(|s| s.code()) == Some(400)
                    && r.record.reason.as_deref()
                        == Some("missing, repeated or invalid Host header")
            })
            .count();
        if refused == heads.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {} audited 400s, found {refused}",
            heads.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_request_head_far_beyond_the_limits_is_cut_off_by_the_transport_before_the_pipeline() {
    let f = Fixture::start().await;
    // 500 fields: over hyper's cap of 400, so hyper answers by itself (a bare 431, no
    // problem body) and the pipeline never sees the request. This is the one 431 without
    // the security headers (docs/THREAT_MODEL.md, rows 1 and 13).
    let reply = raw_exchange(&f.server, health_with_fields(f.server.authority(), 500)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert!(!reply.contains(r#""status":431"#), "{reply}");
    // The connection is closed, and the server still serves the next one.
    let reply = raw_exchange(&f.server, health_with_fields(f.server.authority(), 3)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

// ---------------------------------------------------------------------------------------------
// 5. Injection corpus
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn injection_strings_as_space_names_are_refused_or_stored_byte_for_byte() {
    let f = Fixture::start().await;
    let mut failures = Vec::new();
    let mut created = 0;
    for s in corpus() {
        let reply = f
            .send(Method::POST, "/spaces", &[], Some(&json!({"name": s})))
            .await;
        if !text_is_allowed(&s, 255, false) {
            if let Err(e) = reply.problem(StatusCode::BAD_REQUEST, Some("name"), &s) {
                failures.push(format!("name {s:?}: {e}"));
            }
            continue;
        }
        if reply.status != StatusCode::CREATED {
            failures.push(format!(
                "name {s:?} is allowed but got {} {}",
                reply.status, reply.text
            ));
            continue;
        }
        created += 1;
        let id = reply.json()["id"].as_i64().expect("id");
        let read = f
            .send(Method::GET, &format!("/spaces/{id}"), &[], None)
            .await;
        if read.json()["name"].as_str() != Some(s.as_str()) {
            failures.push(format!("name {s:?} read back as {}", read.text));
        }
    }
    assert_all_passed(&failures);
    let spaces = f.send(Method::GET, "/spaces", &[], None).await.json();
    assert_eq!(
        spaces.as_array().map(Vec::len),
        Some(created + 1),
        "exactly the accepted spaces exist"
    );
    f.assert_database_intact().await;
}

#[tokio::test]
async fn injection_strings_as_messages_are_refused_or_stored_byte_for_byte() {
    let f = Fixture::start().await;
    let mut failures = Vec::new();
    let mut stored = vec!["first".to_owned()];
    for s in corpus() {
        let reply = f
            .send(
                Method::POST,
                "/spaces/{space}/messages",
                &[],
                Some(&json!({"message": s})),
            )
            .await;
        if !text_is_allowed(&s, 4096, true) {
            if let Err(e) = reply.problem(StatusCode::BAD_REQUEST, Some("message"), &s) {
                failures.push(format!("message {s:?}: {e}"));
            }
            continue;
        }
        if reply.status != StatusCode::CREATED {
            failures.push(format!(
                "message {s:?} is allowed but got {} {}",
                reply.status, reply.text
            ));
            continue;
        }
        stored.push(s.clone());
        let id = reply.json()["id"].as_i64().expect("id");
        let read = f
            .send(
                Method::GET,
                &format!("/spaces/{{space}}/messages/{id}"),
                &[],
                None,
            )
            .await;
        if read.json()["message"].as_str() != Some(s.as_str()) {
            failures.push(format!("message {s:?} read back as {}", read.text));
        }
    }
    assert_all_passed(&failures);
    stored.reverse();
    assert_eq!(
        f.alice_messages().await,
        stored,
        "the listing holds exactly the accepted messages, newest first"
    );
    f.assert_database_intact().await;
}

#[tokio::test]
async fn injection_strings_as_usernames_are_refused_at_registration() {
    let f = Fixture::start().await;
    let mut failures = Vec::new();
    for s in corpus() {
        let reply = f
            .send(
                Method::POST,
                "/users",
                &[],
                Some(&json!({"username": s, "password": PASSWORD})),
            )
            .await;
        if let Err(e) = reply.problem(StatusCode::BAD_REQUEST, Some("username"), &s) {
            failures.push(format!("username {s:?}: {e}"));
        }
    }
    assert_all_passed(&failures);
    f.assert_database_intact().await;
}

#[tokio::test]
async fn injection_strings_in_passwords_are_refused_or_work_exactly_for_login() {
    let f = Fixture::start().await;
    let mut failures = Vec::new();
    for (i, s) in corpus()
        .iter()
        .filter(|s| !s.chars().any(char::is_control))
        .enumerate()
    {
        let name = format!("pw{i}");
        // Bare, the strings are mostly too short or too weak; padded, they reach the hasher.
        for password in [s.clone(), format!("{PASSWORD}{s}")] {
            let reply = f
                .send(
                    Method::POST,
                    "/users",
                    &[],
                    Some(&json!({"username": name, "password": password})),
                )
                .await;
            if reply.status == StatusCode::CREATED {
                let ok = f
                    .send_as(&Creds::new(&name, &password), Method::GET, "/spaces")
                    .await;
                if ok.status != StatusCode::OK {
                    failures.push(format!(
                        "password {password:?} was accepted but does not log in: {} {}",
                        ok.status, ok.text
                    ));
                }
                let injected = if password == "' OR 1=1 --" {
                    "' OR 'a'='a"
                } else {
                    "' OR 1=1 --"
                };
                let wrong = f
                    .send_as(&Creds::new(&name, injected), Method::GET, "/spaces")
                    .await;
                if wrong.status != StatusCode::UNAUTHORIZED {
                    failures.push(format!(
                        "an injected password logged {name} in: {} {}",
                        wrong.status, wrong.text
                    ));
                }
                break;
            }
            if let Err(e) = reply.problem(StatusCode::BAD_REQUEST, Some("password"), &password) {
                failures.push(format!("password {password:?}: {e}"));
            }
        }
    }
    assert_all_passed(&failures);
    f.assert_database_intact().await;
}

#[tokio::test]
async fn a_password_with_a_control_character_is_refused_at_registration_rather_than_stored_unusable()
 {
    let f = Fixture::start().await;
    for (i, password) in [
        format!("{PASSWORD}\u{0}"),
        format!("{PASSWORD}\u{1b}[31m"),
        format!("a\u{7}{PASSWORD}"),
    ]
    .iter()
    .enumerate()
    {
        let name = format!("ctl{i}");
        let reply = f
            .send(
                Method::POST,
                "/users",
                &[],
                Some(&json!({"username": name, "password": password})),
            )
            .await;
        if reply.status == StatusCode::CREATED {
            let login = f
                .send_as(&Creds::new(&name, password), Method::GET, "/spaces")
                .await;
            panic!(
                "password {password:?} was accepted (201) but logging in with it answers {} {}",
                login.status, login.text
            );
        }
        reply
            .problem(StatusCode::BAD_REQUEST, Some("password"), password)
            .unwrap_or_else(|e| panic!("{password:?}: {e}"));
    }
}

#[tokio::test]
async fn injection_strings_in_grants_are_refused_naming_the_field() {
    let f = Fixture::start().await;
    let mut failures = Vec::new();
    for s in corpus() {
        let as_user = f
            .send(
                Method::POST,
                "/spaces/{space}/members",
                &[],
                Some(&json!({"username": s, "permissions": "r"})),
            )
            .await;
        if let Err(e) = as_user.problem(StatusCode::BAD_REQUEST, Some("username"), &s) {
            failures.push(format!("grant username {s:?}: {e}"));
        }
        let as_perm = f
            .send(
                Method::POST,
                "/spaces/{space}/members",
                &[],
                Some(&json!({"username": "bob", "permissions": s})),
            )
            .await;
        if let Err(e) = as_perm.problem(StatusCode::BAD_REQUEST, Some("permissions"), &s) {
            failures.push(format!("grant permissions {s:?}: {e}"));
        }
    }
    assert_all_passed(&failures);
    let members = f
        .send(Method::GET, "/spaces/{space}/members", &[], None)
        .await
        .json();
    assert_eq!(
        members,
        json!([{"username": "alice", "permissions": "rwd"}]),
        "no grant was made"
    );
    f.assert_database_intact().await;
}

#[tokio::test]
async fn injection_strings_in_path_parameters_are_refused_with_a_400_naming_the_parameter() {
    let f = Fixture::start().await;
    let message = f.message.to_string();
    let mut failures = Vec::new();
    for s in url_corpus() {
        let e = encode(&s);
        let cases = [
            (Method::GET, format!("/spaces/{e}"), "id"),
            (Method::GET, format!("/spaces/{e}/messages"), "id"),
            (Method::POST, format!("/spaces/{e}/messages"), "id"),
            (Method::GET, format!("/spaces/{e}/messages/{message}"), "id"),
            (
                Method::DELETE,
                format!("/spaces/{e}/messages/{message}"),
                "id",
            ),
            (Method::GET, format!("/spaces/{e}/members"), "id"),
            (Method::POST, format!("/spaces/{e}/members"), "id"),
            (Method::DELETE, format!("/spaces/{e}/members/bob"), "id"),
            (
                Method::GET,
                format!("/spaces/{{space}}/messages/{e}"),
                "msgId",
            ),
            (
                Method::DELETE,
                format!("/spaces/{{space}}/messages/{e}"),
                "msgId",
            ),
            (
                Method::DELETE,
                format!("/spaces/{{space}}/members/{e}"),
                "username",
            ),
        ];
        for (method, path, field) in cases {
            let body = match (&method, path.ends_with("/members")) {
                (&Method::POST, true) => Some(json!({"username": "bob", "permissions": "r"})),
                (&Method::POST, false) => Some(json!({"message": "hi"})),
                _ => None,
            };
            let reply = f.send(method.clone(), &path, &[], body.as_ref()).await;
            if let Err(err) = reply.problem(StatusCode::BAD_REQUEST, Some(field), &s) {
                failures.push(format!("{method} {path} ({s:?}): {err}"));
            }
            if reply.text.contains(f.bob_secret) {
                failures.push(format!(
                    "{method} {path} leaked Bob's message: {}",
                    reply.text
                ));
            }
        }
    }
    assert_all_passed(&failures);
    assert_eq!(
        f.alice_messages().await,
        vec!["first".to_owned()],
        "no message was posted or deleted"
    );
    let members = f
        .send(Method::GET, "/spaces/{space}/members", &[], None)
        .await
        .json();
    assert_eq!(
        members,
        json!([{"username": "alice", "permissions": "rwd"}]),
        "no member was granted or revoked"
    );
    f.assert_database_intact().await;
}

#[tokio::test]
async fn undecodable_path_segments_are_refused_with_a_400_problem() {
    let f = Fixture::start().await;
    let mut failures = Vec::new();
    for path in [
        "/spaces/%FF",
        "/spaces/%C0%AE/messages",
        "/spaces/{space}/messages/%FF%FE",
        "/spaces/{space}/members/%E2%82",
    ] {
        for method in [Method::GET, Method::DELETE] {
            let reply = f.send(method.clone(), path, &[], None).await;
            let ok = [
                StatusCode::BAD_REQUEST,
                StatusCode::NOT_FOUND,
                StatusCode::METHOD_NOT_ALLOWED,
            ]
            .into_iter()
            .any(|status| reply.problem(status, None, "").is_ok());
            if !ok {
                failures.push(format!(
                    "{method} {path}: expected a 400/404/405 problem, got {} {} {}",
                    reply.status, reply.content_type, reply.text
                ));
            }
        }
    }
    assert_all_passed(&failures);
    f.assert_database_intact().await;
}

#[tokio::test]
async fn injection_strings_in_query_parameters_are_refused_and_never_return_extra_data() {
    let f = Fixture::start().await;
    f.server.message(&f.alice, f.space, "second").await;
    f.server.message(&f.alice, f.space, "third").await;
    let mut failures = Vec::new();
    for s in url_corpus() {
        for (method, path, name) in [
            (Method::GET, "/spaces/{space}/messages", "since"),
            (Method::GET, "/spaces/{space}/messages", "limit"),
            (Method::GET, "/spaces/{space}/messages", "after"),
            (Method::DELETE, "/spaces/{space}/members/bob", "permissions"),
        ] {
            let reply = f
                .send(method.clone(), path, &[(name, s.as_str())], None)
                .await;
            if let Err(e) = reply.problem(StatusCode::BAD_REQUEST, Some(name), &s) {
                failures.push(format!("{method} {path}?{name}={s:?}: {e}"));
            }
            if reply.text.contains(f.bob_secret) {
                failures.push(format!("{method} {path}?{name}={s:?} leaked Bob's message"));
            }
        }
        // The injection as a parameter name is an unknown parameter, refused without
        // echoing the name.
        let reply = f
            .send(
                Method::GET,
                "/spaces/{space}/messages",
                &[(s.as_str(), "1")],
                None,
            )
            .await;
        if let Err(e) = reply.unknown_parameter_problem(&s) {
            failures.push(format!("GET messages with parameter named {s:?}: {e}"));
        }
        // A valid parameter followed by an injected one is refused as a whole.
        let raw = format!("/spaces/{{space}}/messages?limit=1&after={}", encode(&s));
        let reply = f.send(Method::GET, &raw, &[], None).await;
        if let Err(e) = reply.problem(StatusCode::BAD_REQUEST, Some("after"), &s) {
            failures.push(format!("GET {raw}: {e}"));
        }
    }
    assert_all_passed(&failures);
    assert_eq!(
        f.alice_messages().await,
        vec!["third", "second", "first"],
        "exactly Alice's three messages"
    );
    let members = f
        .send(Method::GET, "/spaces/{space}/members", &[], None)
        .await
        .json();
    assert_eq!(members.as_array().map(Vec::len), Some(1));
    f.assert_database_intact().await;
}

#[tokio::test]
async fn another_spaces_message_id_under_ones_own_space_finds_nothing() {
    let f = Fixture::start().await;
    let bob_messages = f
        .send_as(
            &f.bob,
            Method::GET,
            &format!("/spaces/{}/messages", f.bob_space),
        )
        .await
        .json();
    let bob_message = bob_messages["messages"][0]["id"]
        .as_i64()
        .expect("bob's message id");
    for method in [Method::GET, Method::DELETE] {
        let reply = f
            .send(
                method.clone(),
                &format!("/spaces/{{space}}/messages/{bob_message}"),
                &[],
                None,
            )
            .await;
        reply
            .problem(StatusCode::NOT_FOUND, None, "")
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert!(!reply.text.contains(f.bob_secret));
    }
    let reply = f
        .send(
            Method::GET,
            "/spaces/{space}/messages",
            &[("after", &(bob_message + 1).to_string())],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        !reply.text.contains(f.bob_secret),
        "a cursor never crosses spaces: {}",
        reply.text
    );
    f.assert_database_intact().await;
}

#[tokio::test]
async fn logging_in_with_an_injection_string_as_the_username_gets_401() {
    let f = Fixture::start().await;
    let mut failures = Vec::new();
    for s in url_corpus() {
        for password in [PASSWORD, s.as_str()] {
            let reply = f
                .send_as(&Creds::new(&s, password), Method::GET, "/spaces")
                .await;
            let has_control =
                s.chars().any(char::is_control) || password.chars().any(char::is_control);
            // Control characters make the header itself malformed (400); anything else is
            // simply wrong credentials (401). Never 200, never 500.
            let expected = if has_control {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNAUTHORIZED
            };
            if let Err(e) = reply.problem(expected, None, &s) {
                failures.push(format!("username {s:?} password {password:?}: {e}"));
            }
        }
        // An injection as Alice's password is just a wrong password.
        let reply = f
            .send_as(&Creds::new("alice", &s), Method::GET, "/spaces")
            .await;
        let expected = if s.chars().any(char::is_control) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        };
        if let Err(e) = reply.problem(expected, None, &s) {
            failures.push(format!("alice with password {s:?}: {e}"));
        }
    }
    assert_all_passed(&failures);
    f.assert_database_intact().await;
}
