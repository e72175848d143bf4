//! The OpenAPI document the server serves is the one committed in `docs/openapi.json`.

use crate::support::TestServer;

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let server = TestServer::start().await;
    let r = server
        .client()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: serde_json::Value = r.json().await.unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        served, committed,
        "regenerate with `cargo run -p natterjack -- openapi > docs/openapi.json`"
    );
    assert_eq!(served["openapi"], "3.1.0");
    let paths = served["paths"].as_object().unwrap();
    for path in [
        "/health",
        "/users",
        "/spaces",
        "/spaces/{id}/messages/{msgId}",
        "/audit",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
}
