//! Safe output: the security headers on every response, RFC 9457 problems with a request id,
//! no identifying headers, and panics turned into a generic 500 logged with the request id.
//!
//! The server runs in-process here (same assembly as `natterjack serve`, real TLS on port 0)
//! so that one extra route can panic on purpose.

use crate::support::in_process::InProcessServer;
use crate::support::{Creds, PASSWORD};
use axum::routing::get;
use natterjack_api::pipeline::headers::SECURITY_HEADERS;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything the server logs in this test binary. The subscriber is process-wide, so once a
/// test here has started, in-process servers of other modules log into it too; the tests
/// here find their own lines by request id.
fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct InProcess(InProcessServer);

impl InProcess {
    async fn start() -> Self {
        log_buffer();
        let server = InProcessServer::start(
            |_| {},
            |routes| {
                routes.route(
                    "/test/panic",
                    get(|| async {
                        let detail = std::hint::black_box(
                            "secret internal detail at /etc/natterjack/key.pem",
                        );
                        if detail.starts_with("secret") {
                            panic!("{detail}");
                        }
                        "unreachable"
                    }),
                )
            },
        )
        .await;
        Self(server)
    }

    fn request(&self, method: Method, path: &str, who: Option<&Creds>) -> reqwest::RequestBuilder {
        let req = self.0.client().request(method, self.0.url(path));
        match who {
            Some(c) => req.basic_auth(&c.name, Some(&c.password)),
            None => req,
        }
    }
}

fn assert_security_headers(r: &reqwest::Response, what: &str) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            r.headers().get(*name).and_then(|v| v.to_str().ok()),
            Some(*value),
            "{what}: {name}"
        );
    }
    assert!(
        r.headers().get("server").is_none(),
        "{what}: no Server header"
    );
    assert!(
        r.headers().get("x-powered-by").is_none(),
        "{what}: no X-Powered-By header"
    );
}

#[tokio::test]
async fn every_status_the_server_produces_carries_the_security_headers_and_errors_are_problems() {
    let server = InProcess::start().await;
    let alice = Creds::new("alice", PASSWORD);
    let bob = Creds::new("bob", PASSWORD);
    for user in [&alice, &bob] {
        let r = server
            .request(Method::POST, "/users", None)
            .json(&json!({"username": user.name, "password": PASSWORD}));
        assert_eq!(
            r.send().await.expect("register").status(),
            StatusCode::CREATED
        );
    }
    let r = server
        .request(Method::POST, "/spaces", Some(&alice))
        .json(&json!({"name": "s"}))
        .send()
        .await
        .expect("space");
    let space = r.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");
    let r = server
        .request(
            Method::POST,
            &format!("/spaces/{space}/messages"),
            Some(&alice),
        )
        .json(&json!({"message": "m"}))
        .send()
        .await
        .expect("msg");
    let msg = r.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");

    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(17 * 1024));
    let cases: Vec<(u16, reqwest::RequestBuilder)> = vec![
        (200, server.request(Method::GET, "/health", None)),
        (
            201,
            server
                .request(Method::POST, "/spaces", Some(&alice))
                .json(&json!({"name": "t"})),
        ),
        (
            204,
            server.request(
                Method::DELETE,
                &format!("/spaces/{space}/messages/{msg}"),
                Some(&alice),
            ),
        ),
        (
            400,
            server.request(Method::GET, "/spaces/not-a-number", Some(&alice)),
        ),
        (401, server.request(Method::GET, "/spaces", None)),
        (
            403,
            server.request(Method::GET, &format!("/spaces/{space}"), Some(&bob)),
        ),
        (404, server.request(Method::GET, "/no/such/route", None)),
        (405, server.request(Method::PUT, "/spaces", Some(&alice))),
        (
            409,
            server
                .request(Method::POST, "/users", None)
                .json(&json!({"username": "alice", "password": PASSWORD})),
        ),
        (
            413,
            server
                .request(Method::POST, "/spaces", Some(&alice))
                .header("content-type", "application/json")
                .body(big),
        ),
        (
            415,
            server
                .request(Method::POST, "/spaces", Some(&alice))
                .header("content-type", "text/plain")
                .body("{}"),
        ),
        (
            431,
            (0..150).fold(server.request(Method::GET, "/health", None), |r, i| {
                r.header(format!("x-field-{i}"), "1")
            }),
        ),
        (
            431,
            server
                .request(Method::GET, "/health", None)
                .header("x-big", "a".repeat(20 * 1024)),
        ),
        (500, server.request(Method::GET, "/test/panic", None)),
    ];
    for (status, request) in cases {
        let r = request.send().await.expect("send");
        assert_eq!(r.status().as_u16(), status);
        assert_security_headers(&r, &status.to_string());
        let request_id = r
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert!(
            request_id.as_ref().is_some_and(|id| id.len() == 32),
            "{status}: x-request-id"
        );
        if status >= 400 {
            let body = crate::support::problem(r).await;
            assert_eq!(body["status"], status, "{body}");
            assert_eq!(
                body["request_id"].as_str(),
                request_id.as_deref(),
                "{status}: request id in the body"
            );
            assert!(body["title"].is_string());
        } else if status != 204 {
            assert_eq!(r.headers()["content-type"], "application/json", "{status}");
        }
    }
}

#[tokio::test]
async fn a_panic_becomes_a_generic_500_problem_logged_with_its_request_id() {
    let server = InProcess::start().await;
    let r = server
        .request(Method::GET, "/test/panic", None)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_security_headers(&r, "500");
    let request_id = r.headers()["x-request-id"].to_str().expect("id").to_owned();
    let body = r.text().await.expect("body");
    assert!(
        !body.contains("secret") && !body.contains("/etc/") && !body.contains("panic"),
        "{body}"
    );
    let problem: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(problem["title"], "Internal Server Error");
    assert_eq!(problem.get("detail"), None);
    // The server log has the panic message and the same request id.
    let logs = String::from_utf8(log_buffer().lock().expect("logs").clone()).expect("utf8");
    let line = logs
        .lines()
        .find(|l| l.contains("handler panicked") && l.contains(&request_id));
    assert!(
        line.is_some_and(|l| l.contains("secret internal detail")),
        "{logs}"
    );
}

#[tokio::test]
async fn error_details_never_echo_secrets_or_internals() {
    let server = InProcess::start().await;
    let password = "hunter2-hunter2-SECRET";
    let r = server
        .request(Method::GET, "/spaces", Some(&Creds::new("alice", password)))
        .send()
        .await
        .expect("send");
    let body = r.text().await.expect("body");
    assert!(!body.contains(password));
    let r = server
        .request(Method::POST, "/users", None)
        .json(&json!({"username": "zed", "password": 12345678, "extra": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.expect("body");
    assert!(!body.contains("12345678"), "{body}");
    for needle in ["sqlx", "sqlite", "SELECT", ".rs", "/work", "thread"] {
        assert!(!body.contains(needle), "{needle} in {body}");
    }
}
