//! One pipeline for every transport: each step's refusal comes back before what a later step
//! would have said, on REST and on gRPC alike, and a refusal before the audit step leaves no
//! intent record.

use crate::support::grpc_client::{channel, issue, issue_for_nobody, request_id_of};
use crate::support::{PASSWORD, TestServer};
use natterjack_api::grpc::proto::PostMessageRequest;
use natterjack_api::grpc::proto::spaces_client::SpacesClient;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tonic::Code;

/// Rate limiting on, with a `credentials` budget of two requests and no refill worth
/// waiting for; every other policy generous.
const TWO_CREDENTIALED_REQUESTS: [(&str, &str); 3] = [
    ("NATTERJACK_RATE_LIMIT__ENABLED", "true"),
    ("NATTERJACK_RATE_LIMIT__CREDENTIALS__BURST", "2"),
    ("NATTERJACK_RATE_LIMIT__CREDENTIALS__PER_SECOND", "0.0001"),
];

/// The phases recorded for `request_id`, once its `complete` record is in.
async fn phases_of(server: &TestServer, request_id: &str) -> Vec<String> {
    for _ in 0..100 {
        let phases: Vec<String> = server
            .audit_records()
            .await
            .into_iter()
            .filter(|r| r.record.request_id == request_id)
            .map(|r| r.record.phase.as_str().to_owned())
            .collect();
        if phases.iter().any(|p| p == "complete") {
            return phases;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no complete record for {request_id}");
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rate_limited_rest_caller_gets_429_whatever_its_credentials_or_form() {
    let server = TestServer::start_with(&TWO_CREDENTIALED_REQUESTS).await;
    server.user("alice").await;
    let client = server.client();
    for _ in 0..2 {
        let r = client
            .get(server.url("/spaces"))
            .basic_auth("alice", Some("wrong-password-entirely"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Wrong credentials, malformed credentials, a body of the wrong type: all 429 now.
    let wrong = client
        .get(server.url("/spaces"))
        .basic_auth("alice", Some("wrong-password-entirely"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::TOO_MANY_REQUESTS);
    let malformed = client
        .get(server.url("/spaces"))
        .header("authorization", "Basic !!!")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::TOO_MANY_REQUESTS);
    let badly_typed = client
        .post(server.url("/spaces"))
        .basic_auth("alice", Some(PASSWORD))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(badly_typed.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_form_of_a_rest_request_is_judged_before_its_credentials() {
    let server = TestServer::start().await;
    let r = server
        .client()
        .post(server.url("/spaces"))
        .basic_auth("nobody", Some("wrong-password-entirely"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn wrong_credentials_and_anonymous_writes_are_refused_before_any_intent_is_recorded() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "garden").await;
    let path = format!("/spaces/{space}/messages");
    let wrong = server
        .client()
        .post(server.url(&path))
        .basic_auth("alice", Some("wrong-password-entirely"))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(phases_of(&server, &request_id(&wrong)).await, ["complete"]);
    let anonymous = server
        .client()
        .post(server.url(&path))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        phases_of(&server, &request_id(&anonymous)).await,
        ["complete"]
    );
}

#[tokio::test]
async fn a_rest_write_without_the_permission_is_refused_after_its_intent_is_recorded() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let space = server.space(&alice, "garden").await;
    let r = server
        .client()
        .post(server.url(&format!("/spaces/{space}/messages")))
        .basic_auth("bob", Some(PASSWORD))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        phases_of(&server, &request_id(&r)).await,
        ["intent", "complete"]
    );
    // An id that is not one is judged by access control too, after the intent.
    let r = server
        .client()
        .post(server.url("/spaces/0/messages"))
        .basic_auth("bob", Some(PASSWORD))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

fn post(space_id: i64) -> PostMessageRequest {
    PostMessageRequest {
        space_id,
        message: "hi".into(),
    }
}

#[tokio::test]
async fn a_rate_limited_grpc_peer_gets_resource_exhausted_whatever_its_certificate() {
    let server = TestServer::start_with(&TWO_CREDENTIALED_REQUESTS).await;
    let nobody = issue_for_nobody(&server.data_dir(), "nobody");
    let mut client = SpacesClient::new(channel(&server, Some(&nobody)));
    for _ in 0..2 {
        let refused = client.post_message(post(1)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    let refused = client.post_message(post(1)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn a_certificate_naming_nobody_is_refused_before_any_intent_is_recorded() {
    let server = TestServer::start().await;
    let nobody = issue_for_nobody(&server.data_dir(), "nobody");
    let mut client = SpacesClient::new(channel(&server, Some(&nobody)));
    let refused = client.post_message(post(1)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(
        phases_of(&server, &request_id_of(&refused)).await,
        ["complete"]
    );
}

#[tokio::test]
async fn a_grpc_write_without_the_permission_is_refused_after_its_intent_is_recorded() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let space = server.space(&alice, "garden").await;
    let bob = issue(&server.data_dir(), "bob");
    let mut client = SpacesClient::new(channel(&server, Some(&bob)));
    let refused = client.post_message(post(space)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        phases_of(&server, &request_id_of(&refused)).await,
        ["intent", "complete"]
    );
    let refused = client.post_message(post(0)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}
