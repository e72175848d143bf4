//! Prometheus metrics on the internal listener: what was served and what the controls
//! refused, counted as it happens.

use crate::support::{Creds, TestServer};
use tokio::io::AsyncWriteExt;

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

#[tokio::test]
async fn refusals_by_each_control_are_counted_on_the_internal_listener() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_RATE_LIMIT__ENABLED", "true"),
        ("NATTERJACK_RATE_LIMIT__PER_IP__BURST", "6"),
        ("NATTERJACK_RATE_LIMIT__PER_IP__PER_SECOND", "0.01"),
    ])
    .await;
    let client = server.client();
    // A wrong password, a malformed header, then a flood.
    let wrong = Creds::new("nobody", "not-the-password-at-all");
    server
        .call(Some(&wrong), reqwest::Method::GET, "/spaces", None)
        .await;
    client
        .get(server.url("/spaces"))
        .header("authorization", "Basic !!!")
        .send()
        .await
        .unwrap();
    for _ in 0..8 {
        client.get(server.url("/health")).send().await.unwrap();
    }
    // Not TLS at all.
    let mut raw = tokio::net::TcpStream::connect(server.authority())
        .await
        .unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    drop(raw);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let text = server.metrics().await;
    let at_least_one = |name: &str, labels: &[(&str, &str)]| {
        let v = value(&text, name, labels);
        assert!(v.is_some_and(|v| v >= 1.0), "{name} {labels:?} in:\n{text}");
    };
    at_least_one(
        "natterjack_requests_total",
        &[
            ("transport", "rest"),
            ("operation", "GET /spaces"),
            ("status", "401"),
        ],
    );
    at_least_one(
        "natterjack_auth_failures_total",
        &[
            ("transport", "rest"),
            ("reason", "wrong username or password"),
        ],
    );
    at_least_one(
        "natterjack_auth_failures_total",
        &[
            ("transport", "rest"),
            ("reason", "malformed Authorization header"),
        ],
    );
    at_least_one(
        "natterjack_rate_limit_refusals_total",
        &[("transport", "rest"), ("policy", "per-ip")],
    );
    at_least_one(
        "natterjack_tls_handshake_failures_total",
        &[("listener", "rest"), ("reason", "error")],
    );
    // Labels never carry a username or an address.
    assert!(
        !text.contains("nobody") && !text.contains("127.0.0.1"),
        "{text}"
    );
}
