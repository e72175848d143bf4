//! OpenID Connect bearer tokens against a real `oidc-provider` (see `support::oidc`): the
//! happy paths over REST and gRPC, account linking and provisioning, the admin claim, key
//! rotation and issuer outages, and every forged or misdirected token an attacker would try,
//! each refused with `Bearer error="invalid_token"` and audited with its reason.

use crate::support::grpc_client::issue_for_nobody;
use crate::support::in_process::InProcessServer;
use crate::support::oidc::{AUDIENCE, OidcPeer};
use crate::support::slapd::dev_pki;
use crate::support::{TestServer, cli};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use natterjack_api::grpc::proto::ListSpacesRequest;
use natterjack_api::grpc::proto::spaces_client::SpacesClient;
use natterjack_core::audit::StoredAuditRecord;
use natterjack_core::clock::ManualClock;
use natterjack_federation::oidc::IssuerSettings;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// The second audience: tokens of the shared provider for it are tokens for another API.
const OTHER_AUDIENCE: &str = "https://elsewhere.test";

/// One `[[auth.oidc]]` table trusting `peer` for [`AUDIENCE`], plus `extra` lines.
fn issuer_toml(peer: &OidcPeer, extra: &str) -> String {
    format!(
        "[[auth.oidc]]\nissuer = \"{}\"\naudience = \"{AUDIENCE}\"\nca_file = \"{}\"\n{extra}\n",
        peer.issuer(),
        peer.ca_file().display()
    )
}

fn issuer_settings(peer: &OidcPeer, extra: Value) -> IssuerSettings {
    let mut settings = json!({
        "issuer": peer.issuer(),
        "audience": AUDIENCE,
        "ca_file": peer.ca_file(),
        "provisioning": "create",
    });
    if let (Some(base), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(settings).unwrap()
}

async fn server_trusting(toml: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    TestServer::start_configured(dir, toml, &[]).await
}

async fn get_with(server_url: String, client: &reqwest::Client, token: &str) -> Response {
    client
        .get(server_url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn request_id(r: &Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_owned()
}

/// The first completion record of the gRPC method `operation`, once committed (a successful
/// call's status carries no request id to look it up by).
async fn grpc_completion(server: &TestServer, operation: &str) -> StoredAuditRecord {
    for _ in 0..250 {
        if let Some(record) = server.audit_records().await.into_iter().find(|r| {
            r.record.operation == operation
                && r.record.phase == natterjack_core::audit::Phase::Complete
        }) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no completion record of {operation}");
}

/// Asserts the RFC 6750 refusal of a token and its audit record's reason; returns the
/// record for further checks.
async fn assert_refused(server: &TestServer, token: &str, reason: &str) -> StoredAuditRecord {
    let r = get_with(server.url("/spaces"), &server.client(), token).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{reason}");
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let record = server.completion(&request_id(&r)).await;
    assert_eq!(record.record.auth_method.as_str(), "bearer");
    let audited = record.record.reason.clone().unwrap_or_default();
    assert!(
        audited.contains(reason),
        "audited {audited:?}, expected {reason:?}"
    );
    assert!(!audited.contains(token) && !format!("{:?}", record.record).contains(token));
    record
}

/// A token re-assembled from `header` and `payload` JSON with `signature` (base64url).
fn forge(header: &Value, payload: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let payload =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, payload, it.next().unwrap().to_owned())
}

#[tokio::test]
async fn a_service_token_reads_and_writes_over_rest_as_the_account_made_on_first_use() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let server = server_trusting(&issuer_toml(peer, "provisioning = \"create\"")).await;
    let token = peer.client_token("ES256").await;
    let r = server
        .client()
        .post(server.url("/spaces"))
        .bearer_auth(&token)
        .json(&json!({"name": "reports"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created = server.completion(&request_id(&r)).await;
    assert_eq!(created.record.principal.as_deref(), Some("svcreports"));
    assert_eq!(created.record.auth_method.as_str(), "bearer");
    // The same issuer and subject are the same account next time (RS256 this time).
    let token = peer.client_token("RS256").await;
    let r = get_with(server.url("/spaces"), &server.client(), &token).await;
    assert_eq!(r.status(), StatusCode::OK);
    let spaces: Value = r.json().await.unwrap();
    assert_eq!(spaces[0]["name"], "reports", "{spaces}");
    // Neither token reached the server's log or the audit trail.
    let log = format!("{:?}{:?}", server.stderr_lines(), server.stdout_lines());
    let audit = format!("{:?}", server.audit_records().await);
    assert!(!log.contains(&token) && !audit.contains(&token));
}

#[tokio::test]
async fn a_grpc_call_acts_as_the_token_holder_and_audits_the_calling_service_too() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let server = server_trusting(&issuer_toml(peer, "provisioning = \"create\"")).await;
    let gateway = issue_for_nobody(&server.data_dir(), "gateway");
    let token = peer.user_token("alice", "RS256").await;
    let mut client = SpacesClient::new(crate::support::grpc_client::channel(
        &server,
        Some(&gateway),
    ));
    let mut request = tonic::Request::new(ListSpacesRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    client.list_spaces(request).await.expect("token accepted");
    let record = grpc_completion(&server, "/natterjack.v1.Spaces/ListSpaces").await;
    assert_eq!(record.record.principal.as_deref(), Some("alice"));
    assert_eq!(record.record.auth_method.as_str(), "bearer");
    assert!(
        record
            .record
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("via certificate gateway")),
        "{:?}",
        record.record.reason
    );
    // Without the token, the certificate alone names no user: refused as before.
    let refused = client
        .list_spaces(ListSpacesRequest {})
        .await
        .expect_err("a certificate of no user");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    // A forged token over gRPC is refused with the reason, and audited.
    let (header, payload, _) = parts(&token);
    let mut request = tonic::Request::new(ListSpacesRequest {});
    let forged = forge(&header, &payload, "AAAA");
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {forged}").parse().unwrap());
    let refused = client.list_spaces(request).await.expect_err("forged");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(
        refused.message().contains("bad signature"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn only_linked_identities_get_in_under_the_existing_policy_and_names_never_link_by_themselves()
 {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let toml = issuer_toml(peer, "");
    let server = TestServer::start_configured(dir, &toml, &[]).await;
    server.user("alice").await;
    let alice = peer.user_token("alice", "RS256").await;
    assert_refused(&server, &alice, "identity not linked to an account").await;
    let data = server.data_dir();
    let (ok, out, err) = cli(
        &data,
        &[
            "user",
            "link",
            "alice",
            "--source",
            peer.issuer(),
            "--subject",
            "alice",
        ],
        "",
        &[],
    );
    assert!(ok, "{out}{err}");
    let r = get_with(server.url("/spaces"), &server.client(), &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        server
            .completion(&request_id(&r))
            .await
            .record
            .principal
            .as_deref(),
        Some("alice")
    );
    // mallory's token claims preferred_username "alice": a different subject, no link.
    let mallory = peer.user_token("mallory", "RS256").await;
    assert_refused(&server, &mallory, "identity not linked to an account").await;
}

#[tokio::test]
async fn a_name_claimed_by_a_second_identity_is_refused_rather_than_shared() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let server = server_trusting(&issuer_toml(peer, "provisioning = \"create\"")).await;
    let alice = peer.user_token("alice", "ES256").await;
    let r = get_with(server.url("/spaces"), &server.client(), &alice).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mallory = peer.user_token("mallory", "ES256").await;
    assert_refused(&server, &mallory, "username taken by another account").await;
}

#[tokio::test]
async fn the_admin_claim_makes_an_admin_and_its_absence_does_not() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let toml = issuer_toml(
        peer,
        "provisioning = \"create\"\nadmin_claim = \"groups\"\nadmin_value = \"natterjack-admins\"",
    );
    let server = server_trusting(&toml).await;
    let bob = peer.user_token("bob", "RS256").await;
    let alice = peer.user_token("alice", "RS256").await;
    let r = get_with(server.url("/audit"), &server.client(), &bob).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = get_with(server.url("/audit"), &server.client(), &alice).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let server = server_trusting(&issuer_toml(peer, "provisioning = \"create\"")).await;
    let (mut header, payload, _) = parts(&peer.client_token("RS256").await);
    header["alg"] = json!("none");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    assert_refused(&server, &unsigned, "algorithm not allowed").await;
    let none = forge(&header, &payload, "AA");
    assert_refused(&server, &none, "algorithm not allowed").await;
}

#[tokio::test]
async fn a_token_typed_as_anything_but_an_access_token_is_refused() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let server = server_trusting(&issuer_toml(peer, "provisioning = \"create\"")).await;
    // An ID token (typ JWT) shown to an API: the type is checked before the signature.
    let (mut header, payload, signature) = parts(&peer.client_token("RS256").await);
    header["typ"] = json!("JWT");
    assert_refused(
        &server,
        &forge(&header, &payload, &signature),
        "not an access token",
    )
    .await;
}

#[tokio::test]
async fn hs256_signed_with_the_issuers_public_key_is_refused() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let server = server_trusting(&issuer_toml(peer, "provisioning = \"create\"")).await;
    let (mut header, payload, _) = parts(&peer.client_token("RS256").await);
    let jwks: Value = crate::support::client_trusting(peer.ca_file(), |b| b)
        .get(format!("{}/jwks", peer.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null);
    header["alg"] = json!("HS256");
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(jwks.to_string().as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let forged = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    assert_refused(&server, &forged, "algorithm not allowed").await;
}

#[tokio::test]
async fn a_token_from_an_issuer_not_configured_is_refused() {
    let (Some(trusted), Some(other)) =
        (OidcPeer::shared(AUDIENCE), OidcPeer::shared(OTHER_AUDIENCE))
    else {
        return;
    };
    let server = server_trusting(&issuer_toml(trusted, "provisioning = \"create\"")).await;
    let foreign = other.client_token("RS256").await;
    assert_refused(&server, &foreign, "unknown issuer").await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let Some(other) = OidcPeer::shared(OTHER_AUDIENCE) else {
        return;
    };
    // The issuer is trusted, but its token is for another API.
    let server = server_trusting(&issuer_toml(other, "provisioning = \"create\"")).await;
    let token = other.client_token("RS256").await;
    assert_refused(&server, &token, "wrong audience").await;
}

#[tokio::test]
async fn a_valid_token_with_one_byte_changed_is_refused() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let server = server_trusting(&issuer_toml(peer, "provisioning = \"create\"")).await;
    let token = peer.client_token("ES256").await;
    let (header, mut payload, signature) = parts(&token);
    payload["preferred_username"] = json!("svcreportz");
    assert_refused(
        &server,
        &forge(&header, &payload, &signature),
        "bad signature",
    )
    .await;
    let mut bytes = token.into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(bytes).unwrap();
    assert_refused(&server, &flipped, "bad signature").await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_by_the_servers_own_clock() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let token = peer.client_token("RS256").await;
    for (clock, reason) in [
        (ManualClock::new(), "expired"),
        (
            ManualClock::behind(Duration::from_secs(600)),
            "issued in the future",
        ),
    ] {
        let settings = issuer_settings(peer, json!({"clock_skew_secs": 60}));
        let server =
            InProcessServer::start_on(clock.clone(), |cfg| cfg.auth.oidc = vec![settings], |r| r)
                .await;
        if reason == "expired" {
            let r = get_with(server.url("/spaces"), &server.client(), &token).await;
            assert_eq!(r.status(), StatusCode::OK, "valid now");
            // An hour's lifetime and a minute's skew later:
            clock.advance(Duration::from_secs(3600 + 61));
        }
        let r = get_with(server.url("/spaces"), &server.client(), &token).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{reason}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains(reason), "{challenge}");
    }
}

#[tokio::test]
async fn a_flood_of_made_up_key_ids_costs_the_issuer_one_key_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_pki(&dir.path().join("pki"));
    let Some(peer) = OidcPeer::start("kid flood", dir.path(), &tls, AUDIENCE).await else {
        return;
    };
    let server = server_trusting(&issuer_toml(&peer, "provisioning = \"create\"")).await;
    let (header, payload, signature) = parts(&peer.client_token("RS256").await);
    let before = peer.jwks_fetches().await;
    let client = server.client();
    let mut answers = Vec::new();
    for round in 0..4 {
        let requests = (0..25).map(|i| {
            let mut header = header.clone();
            header["kid"] = json!(format!("made-up-{round}-{i}"));
            let token = forge(&header, &payload, &signature);
            let client = client.clone();
            let url = server.url("/spaces");
            async move { get_with(url, &client, &token).await.status() }
        });
        answers.extend(futures_util::future::join_all(requests).await);
    }
    assert!(
        answers.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{answers:?}"
    );
    let fetched = peer.jwks_fetches().await - before;
    assert!(fetched <= 1, "{fetched} key fetches for 100 made-up kids");
}

#[tokio::test]
async fn keys_rotate_without_restart_and_cached_keys_outlive_an_issuer_outage() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_pki(&dir.path().join("pki"));
    let Some(peer) = OidcPeer::start("rotation", dir.path(), &tls, AUDIENCE).await else {
        return;
    };
    // A short refetch interval, so the test need not wait long between the two refetches.
    let server = server_trusting(&issuer_toml(
        &peer,
        "provisioning = \"create\"\nrefetch_interval_secs = 1",
    ))
    .await;
    let old = peer.client_token("ES256").await;
    assert_eq!(
        get_with(server.url("/spaces"), &server.client(), &old)
            .await
            .status(),
        StatusCode::OK
    );
    // The issuer goes down: a token signed by a cached key still works.
    peer.down().await;
    assert_eq!(
        get_with(server.url("/spaces"), &server.client(), &old)
            .await
            .status(),
        StatusCode::OK
    );
    peer.up().await;
    peer.rotate().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = peer.client_token("ES256").await;
    assert_eq!(
        get_with(server.url("/spaces"), &server.client(), &new)
            .await
            .status(),
        StatusCode::OK,
        "a token under the new key is accepted after one refetch"
    );
    // The old key left the issuer's set, and with it the cache.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_refused(&server, &old, "unknown signing key").await;
}

#[tokio::test]
async fn an_issuer_unreachable_at_start_leaves_the_server_up_answering_503_for_tokens() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let toml = format!(
        "[[auth.oidc]]\nissuer = \"https://127.0.0.1:{port}\"\naudience = \"{AUDIENCE}\"\nca_file = \"{}\"\ntimeout_ms = 500\n",
        peer.ca_file().display()
    );
    let server = server_trusting(&toml).await;
    assert!(
        server.logs_eventually("unreachable at start").await,
        "the degraded state is logged"
    );
    // A token naming that issuer cannot be checked: 503, not 401.
    let (_, mut payload, signature) = parts(&peer.client_token("RS256").await);
    payload["iss"] = json!(format!("https://127.0.0.1:{port}"));
    let token = forge(
        &json!({"alg": "RS256", "kid": "k", "typ": "at+jwt"}),
        &payload,
        &signature,
    );
    let r = get_with(server.url("/spaces"), &server.client(), &token).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let record = server.completion(&request_id(&r)).await;
    assert!(
        record
            .record
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("OpenID Connect issuer unavailable")),
        "{:?}",
        record.record.reason
    );
    // Basic logins are unaffected.
    let alice = server.user("alice").await;
    let r = server
        .client()
        .get(server.url("/spaces"))
        .basic_auth(&alice.name, Some(&alice.password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn refused_tokens_spend_the_addresss_failed_login_budget_after_the_rate_limit() {
    let Some(peer) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(
        dir,
        &issuer_toml(peer, "provisioning = \"create\""),
        &[("NATTERJACK_RATE_LIMIT__ENABLED", "true")],
    )
    .await;
    let (header, payload, _) = parts(&peer.client_token("RS256").await);
    let forged = forge(&header, &payload, "AAAA");
    let mut statuses = Vec::new();
    // The default failed-logins budget: a burst of 5, then one a minute.
    for _ in 0..7 {
        statuses.push(
            get_with(server.url("/spaces"), &server.client(), &forged)
                .await
                .status(),
        );
    }
    assert_eq!(
        &statuses[..5],
        &[StatusCode::UNAUTHORIZED; 5],
        "{statuses:?}"
    );
    assert_eq!(statuses[6], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // The budget is the address's for tokens: a valid token from it waits too, but
    // passwords are counted apart.
    let valid = peer.client_token("RS256").await;
    let r = get_with(server.url("/spaces"), &server.client(), &valid).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}
