//! Basic passwords checked by a real OpenLDAP directory (see `support::slapd`), end to end
//! through the server: over REST and over gRPC (the `authorization` metadata beside the
//! calling service's certificate), the admin group, which source checks whom, the shared
//! verification cache and failed-login budget, the attacks a directory invites, and an
//! outage that answers 503 and heals by itself.

use crate::support::grpc_client::{channel, issue_for_nobody};
use crate::support::slapd::Slapd;
use crate::support::slapd::dev_pki;
use crate::support::{PASSWORD, TestServer, cli};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use natterjack_api::grpc::proto::ListSpacesRequest;
use natterjack_api::grpc::proto::spaces_client::SpacesClient;
use reqwest::{Response, StatusCode};

/// `[auth]` checking passwords with `source` against `slapd` (StartTLS on `ldap://`).
fn directory_toml(slapd: &Slapd, source: &str, url: &str) -> String {
    format!(
        r#"[auth]
passwords = "{source}"
cache_ttl_secs = 60

[auth.ldap]
url = "{url}"
ca_file = "{ca}"
search_base = "{people}"
bind_dn = "{service}"
bind_password_file = "{password_file}"
admin_group = "{admins}"
connect_timeout_ms = 1000
operation_timeout_ms = 2000
"#,
        ca = slapd.ca_file().display(),
        people = slapd.people_base(),
        service = slapd.service_dn(),
        password_file = slapd.service_password_file().display(),
        admins = slapd.admin_group_dn(),
    )
}

async fn server_on(slapd: &Slapd, source: &str, env: &[(&str, &str)]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    TestServer::start_configured(dir, &directory_toml(slapd, source, &slapd.ldap_url()), env).await
}

async fn get(server: &TestServer, path: &str, name: &str, password: &str) -> Response {
    server
        .client()
        .get(server.url(path))
        .basic_auth(name, Some(password))
        .send()
        .await
        .unwrap()
}

fn request_id(r: &Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_owned()
}

/// Runs `natterjack user add NAME` with [`PASSWORD`] against the server's data directory.
fn add_local_user(server: &TestServer, name: &str) {
    let (ok, out, err) = cli(
        &server.data_dir(),
        &["user", "add", name],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert!(ok, "{out}{err}");
}

#[tokio::test]
async fn a_directory_user_logs_in_over_rest_and_grpc_with_the_directory_password() {
    let Some(slapd) = Slapd::shared() else {
        return;
    };
    let server = server_on(slapd, "directory", &[]).await;
    let r = get(&server, "/spaces", "alice", slapd.user_password("alice")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let record = server.completion(&request_id(&r)).await;
    assert_eq!(record.record.principal.as_deref(), Some("alice"));
    assert_eq!(record.record.auth_method.as_str(), "basic");

    let gateway = issue_for_nobody(&server.data_dir(), "gateway");
    let mut client = SpacesClient::new(channel(&server, Some(&gateway)));
    let basic = STANDARD.encode(format!("alice:{}", slapd.user_password("alice")));
    let mut request = tonic::Request::new(ListSpacesRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Basic {basic}").parse().unwrap());
    client
        .list_spaces(request)
        .await
        .expect("a directory login over gRPC");
    let wrong = STANDARD.encode("alice:not-her-password");
    let mut request = tonic::Request::new(ListSpacesRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Basic {wrong}").parse().unwrap());
    let refused = client
        .list_spaces(request)
        .await
        .expect_err("wrong password");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn members_of_the_admin_group_are_admins_and_others_are_not() {
    let Some(slapd) = Slapd::shared() else {
        return;
    };
    let server = server_on(slapd, "directory", &[]).await;
    let r = get(&server, "/audit", "bob", slapd.user_password("bob")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = get(&server, "/audit", "alice", slapd.user_password("alice")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let Some(slapd) = Slapd::shared() else {
        return;
    };
    let server = server_on(slapd, "directory", &[]).await;
    let wrong = get(&server, "/spaces", "alice", "not-her-password").await;
    let unknown = get(&server, "/spaces", "zed", "not-her-password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.headers()["www-authenticate"],
        unknown.headers()["www-authenticate"]
    );
    let (mut wrong, mut unknown): (serde_json::Value, serde_json::Value) =
        (wrong.json().await.unwrap(), unknown.json().await.unwrap());
    wrong["request_id"].take();
    unknown["request_id"].take();
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn injection_empty_and_nul_passwords_never_reach_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_pki(&dir.path().join("pki"));
    let Some(mut slapd) = Slapd::start("injection", dir.path(), &tls).await else {
        return;
    };
    let server = server_on(&slapd, "directory", &[]).await;
    // With the directory down, anything that reached it would be answered 503: these are
    // answered 401 (or 400 for what is not even a valid header), so none reached it.
    slapd.stop().await;
    for name in ["*)(uid=*", "admin)(|(a=*", "*", "alice)(objectClass=*"] {
        let r = get(&server, "/spaces", name, "anything-at-all").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    let empty = get(&server, "/spaces", "alice", "").await;
    assert_eq!(empty.status(), StatusCode::UNAUTHORIZED, "empty password");
    let nul = server
        .client()
        .get(server.url("/spaces"))
        .header(
            "authorization",
            format!(
                "Basic {}",
                STANDARD.encode("alice:alice-directory-pw\0tail")
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        nul.status(),
        StatusCode::BAD_REQUEST,
        "a NUL in the password"
    );
    let record = server.completion(&request_id(&nul)).await;
    assert_eq!(
        record.record.reason.as_deref(),
        Some("malformed Authorization header")
    );
    // A right password now would need the directory: 503, which proves it is down.
    let r = get(&server, "/spaces", "carol", slapd.user_password("carol")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_directory_outage_answers_503_with_retry_after_and_heals_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_pki(&dir.path().join("pki"));
    let Some(mut slapd) = Slapd::start("outage", dir.path(), &tls).await else {
        return;
    };
    // The cache is off, so every login asks the directory.
    let dir = tempfile::tempdir().unwrap();
    let toml = directory_toml(&slapd, "local-then-directory", &slapd.ldaps_url())
        .replace("cache_ttl_secs = 60", "cache_ttl_secs = 0");
    let server = TestServer::start_configured(dir, &toml, &[]).await;
    add_local_user(&server, "dave");
    let alice = slapd.user_password("alice");
    assert_eq!(
        get(&server, "/spaces", "alice", alice).await.status(),
        StatusCode::OK
    );
    slapd.stop().await;
    let r = get(&server, "/spaces", "alice", alice).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let record = server.completion(&request_id(&r)).await;
    assert_eq!(
        record.record.reason.as_deref(),
        Some("directory unavailable")
    );
    // A wrong password is 503 too while the directory is away: never a 401 it cannot know.
    let r = get(&server, "/spaces", "alice", "not-her-password").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Local users are checked locally, as the precedence says, outage or not.
    assert_eq!(
        get(&server, "/spaces", "dave", PASSWORD).await.status(),
        StatusCode::OK
    );
    slapd.restart().await;
    assert_eq!(
        get(&server, "/spaces", "alice", alice).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn local_then_directory_checks_a_local_account_locally_and_never_against_the_directory() {
    let Some(slapd) = Slapd::shared() else {
        return;
    };
    let server = server_on(slapd, "local-then-directory", &[]).await;
    // carol has an entry in the directory, and a local account made by the operator.
    add_local_user(&server, "carol");
    assert_eq!(
        get(&server, "/spaces", "carol", PASSWORD).await.status(),
        StatusCode::OK
    );
    let directory_password = slapd.user_password("carol");
    assert_eq!(
        get(&server, "/spaces", "carol", directory_password)
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "the directory cannot vouch for a local account"
    );
    // A name without a local password goes to the directory.
    let alice = slapd.user_password("alice");
    assert_eq!(
        get(&server, "/spaces", "alice", alice).await.status(),
        StatusCode::OK
    );
    // Self-registration is off while a directory checks passwords: nobody can squat a
    // directory user's name.
    let r = server
        .client()
        .post(server.url("/users"))
        .json(&serde_json::json!({"username": "bob", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn in_directory_mode_a_local_name_is_not_taken_over_until_the_operator_links_it() {
    let Some(slapd) = Slapd::shared() else {
        return;
    };
    let server = server_on(slapd, "directory", &[]).await;
    add_local_user(&server, "alice");
    // The local password is not checked at all in directory mode.
    assert_eq!(
        get(&server, "/spaces", "alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let alice = slapd.user_password("alice");
    assert_eq!(
        get(&server, "/spaces", "alice", alice).await.status(),
        StatusCode::UNAUTHORIZED,
        "a directory user does not become an unlinked local account by name"
    );
    let (ok, out, err) = cli(
        &server.data_dir(),
        &[
            "user",
            "link",
            "alice",
            "--source",
            &slapd.ldap_url(),
            "--subject",
            "alice",
        ],
        "",
        &[],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(
        get(&server, "/spaces", "alice", alice).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_verified_directory_password_is_cached_like_a_local_one() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_pki(&dir.path().join("pki"));
    let Some(mut slapd) = Slapd::start("cache", dir.path(), &tls).await else {
        return;
    };
    let server = server_on(&slapd, "directory", &[]).await;
    let alice = slapd.user_password("alice");
    assert_eq!(
        get(&server, "/spaces", "alice", alice).await.status(),
        StatusCode::OK
    );
    slapd.stop().await;
    // Within the cache's lifetime the same credentials need no bind...
    assert_eq!(
        get(&server, "/spaces", "alice", alice).await.status(),
        StatusCode::OK
    );
    // ...but other ones do.
    assert_eq!(
        get(&server, "/spaces", "alice", "another-guess")
            .await
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn wrong_directory_passwords_spend_the_failed_login_budget() {
    let Some(slapd) = Slapd::shared() else {
        return;
    };
    let server = server_on(
        slapd,
        "directory",
        &[("NATTERJACK_RATE_LIMIT__ENABLED", "true")],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            get(&server, "/spaces", "carol", "a-wrong-guess")
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
}
