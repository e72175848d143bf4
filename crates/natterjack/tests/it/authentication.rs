//! Authentication: HTTP Basic against Argon2id, no user enumeration, bounded hashing.

use crate::support::{Creds, TestServer, problem};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const CHALLENGE: &str = r#"Basic realm="natterjack", charset="UTF-8""#;

#[tokio::test]
async fn missing_credentials_on_a_protected_route_get_401_with_the_basic_challenge() {
    let server = TestServer::start().await;
    let r = server.call(None, Method::GET, "/spaces", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], CHALLENGE);
    let body = problem(r).await;
    assert_eq!(body["status"], 401);
}

#[tokio::test]
async fn the_right_password_is_accepted_and_the_stored_hash_is_argon2id_with_owasp_parameters() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let r = server
        .call(Some(&alice), Method::GET, "/spaces", None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let db = server.data_dir().join("natterjack.db");
    let hash: String =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db read-only")
            .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
            .expect("row");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

/// The problem body without its per-request id, for comparing two answers.
fn without_request_id(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("request_id");
    }
    v
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_identical_answers() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let wrong_password = server
        .call(
            Some(&Creds::new("alice", "not-her-password-1")),
            Method::GET,
            "/spaces",
            None,
        )
        .await;
    let unknown_user = server
        .call(
            Some(&Creds::new("mallory", "not-her-password-1")),
            Method::GET,
            "/spaces",
            None,
        )
        .await;
    let malformed_name = server
        .call(
            Some(&Creds::new("'; --", "not-her-password-1")),
            Method::GET,
            "/spaces",
            None,
        )
        .await;
    let mut answers = Vec::new();
    for r in [wrong_password, unknown_user, malformed_name] {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["www-authenticate"], CHALLENGE);
        let mut names: Vec<String> = r.headers().keys().map(|k| k.to_string()).collect();
        names.sort();
        answers.push((names, without_request_id(problem(r).await)));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
}

#[tokio::test]
async fn a_malformed_authorization_header_gets_a_400_problem() {
    let server = TestServer::start().await;
    let client = server.client();
    let bad_headers = [
        "Basic".to_owned(),
        "Basic !!!".to_owned(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("no-colon-here")
        ),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode([0xc3, 0x28, b':', b'x'])
        ),
    ];
    for value in bad_headers {
        let r = client
            .get(server.url("/spaces"))
            .header("authorization", &value)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{value}");
        let body = problem(r).await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or("")
                .contains("Authorization")
        );
    }
}

#[tokio::test]
async fn another_authentication_scheme_gets_the_basic_challenge() {
    let server = TestServer::start().await;
    let r = server
        .client()
        .get(server.url("/spaces"))
        .header("authorization", r#"Digest username="alice""#)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], CHALLENGE);
}

#[tokio::test]
async fn a_bearer_token_without_a_trusted_issuer_gets_the_bearer_challenge() {
    let server = TestServer::start().await;
    let r = server
        .client()
        .get(server.url("/spaces"))
        .bearer_auth("token")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

#[tokio::test]
async fn saturated_password_hashing_answers_503_with_retry_after_instead_of_queueing_forever() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_AUTH__MAX_CONCURRENT_HASHES", "1"),
        ("NATTERJACK_AUTH__HASH_QUEUE_WAIT_MS", "0"),
    ])
    .await;
    let client = server.client();
    let attempts = (0..24).map(|i| {
        let client = client.clone();
        let url = server.url("/spaces");
        async move {
            client
                .get(url)
                .basic_auth(format!("nobody{i}"), Some("wrong-password-123"))
                .send()
                .await
                .expect("send")
        }
    });
    let responses = futures_join_all(attempts).await;
    let mut busy = 0;
    for r in responses {
        match r.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(r.headers()["retry-after"], "1");
                problem(r).await;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        busy > 0,
        "24 simultaneous logins against one hashing slot must see a 503"
    );
}

/// Runs futures concurrently as tasks and collects their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn a_password_change_stops_the_old_password_at_once_despite_the_cache() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    // Warm the verification cache.
    for _ in 0..2 {
        assert_eq!(
            server
                .call(Some(&alice), Method::GET, "/spaces", None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let new_password = "quartz-lantern-88-meadow";
    let (ok, _, stderr) = crate::support::cli(
        &server.data_dir(),
        &["user", "passwd", "alice"],
        &format!("{new_password}\n"),
        &[],
    );
    assert!(ok, "{stderr}");
    let old = server
        .call(Some(&alice), Method::GET, "/spaces", None)
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = server
        .call(
            Some(&Creds::new("alice", new_password)),
            Method::GET,
            "/spaces",
            None,
        )
        .await;
    assert_eq!(new.status(), StatusCode::OK);
}
