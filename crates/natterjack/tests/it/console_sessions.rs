//! The console's browser sessions and form defences, attacked from outside a real server
//! with reqwest (no redirects followed, cookies and `Origin` set by hand as a browser or an
//! attacker's page would): the cookie's attributes and what the database keeps of it,
//! session fixation, logout, revocation by the operator, idle and absolute timeouts, a
//! password change, a change of role, CSRF (token, origin, media type, GET), the audit
//! trail of every console action, the failed-login budget of the login form, escaping of
//! what members write, and the essentials again on PostgreSQL.

use crate::support::console::{
    Console, SESSION, listed, location, new_session, request_id, set_cookie,
};
use crate::support::pg::PgDatabase;
use crate::support::{Creds, PASSWORD, TestServer, cli, pairs};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use natterjack_core::audit::{AuthMethod, Decision, StoredAuditRecord, Transport};
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};

/// The id the operator sees for the session of `token`: the SHA-256 of the cookie value.
fn session_id(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How the audit trail names the session of `token`.
fn audit_name(token: &str) -> String {
    format!("session {}", &session_id(token)[..16])
}

/// The operator's command `args`, which must succeed; what it printed.
fn operator(data_dir: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> String {
    let (ok, out, err) = cli(data_dir, args, stdin, env);
    assert!(ok, "natterjack {args:?}: {out}{err}");
    out
}

/// The `complete` record of the request `response` answered.
async fn record_of(server: &TestServer, response: &Response) -> StoredAuditRecord {
    server.completion(&request_id(response)).await
}

/// Checks that `response` sent the browser back to the login form (a session that no longer
/// holds) and that the audit record of it says `why`, naming the session.
async fn refused_because(server: &TestServer, response: Response, token: &str, why: &str) {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/console/login");
    let cleared = set_cookie(&response, SESSION).expect("the stale cookie is cleared");
    assert!(
        cleared.value.is_empty() && cleared.has("Max-Age=0"),
        "{cleared:?}"
    );
    let record = record_of(server, &response).await;
    assert_eq!(record.record.transport, Transport::Console);
    assert_eq!(record.record.auth_method, AuthMethod::Session);
    assert_eq!(record.record.decision, Decision::Deny);
    let reason = record.record.reason.clone().unwrap_or_default();
    assert!(reason.contains(why), "{why:?} not in {reason:?}");
    assert!(reason.contains(&audit_name(token)), "{reason:?}");
}

/// The names of `who`'s spaces, through the REST API.
async fn spaces_of(server: &TestServer, who: &Creds) -> Vec<String> {
    let r = server.call(Some(who), Method::GET, "/spaces", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.unwrap();
    list.as_array()
        .or_else(|| list["spaces"].as_array())
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids of the messages of `space`, through the REST API as `who`.
async fn messages_of(server: &TestServer, who: &Creds, space: i64) -> Vec<i64> {
    let r = server
        .call(
            Some(who),
            Method::GET,
            &format!("/spaces/{space}/messages"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page: Value = r.json().await.unwrap();
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

/// The members of `space` as `username:permissions`, through the REST API as `who`.
async fn members_of(server: &TestServer, who: &Creds, space: i64) -> Vec<String> {
    let r = server
        .call(
            Some(who),
            Method::GET,
            &format!("/spaces/{space}/members"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}:{}", m["username"], m["permissions"]).replace('"', ""))
        .collect()
}

/// The header's user name on a page.
fn signed_in_as(page: &str) -> &str {
    page.split("<span class=\"user\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no user in the header: {page}"))
}

fn has_admin_links(page: &str) -> bool {
    ["/console/audit", "/console/alerts", "/console/activity"]
        .iter()
        .all(|link| page.contains(&format!("href=\"{link}\"")))
}

#[tokio::test]
async fn the_session_cookie_is_host_only_secure_httponly_strict_and_the_database_keeps_only_its_hash()
 {
    let server = TestServer::start().await;
    server.user("alice").await;
    let console = Console::of(&server);
    let r = console.log_in_with("alice", PASSWORD, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/console/spaces");
    let cookie = set_cookie(&r, SESSION).expect("a session cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.has(attribute), "{attribute}: {cookie:?}");
    }
    assert!(!cookie.names("Domain"), "{cookie:?}");
    let token = cookie.value;
    let random = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
    assert!(random.len() * 8 >= 128, "{} bits", random.len() * 8);
    assert_eq!(random.len(), 32);

    // The operator's list names the session by the SHA-256 of the token.
    let id = session_id(&token);
    let sessions = listed(&server.data_dir(), &[]);
    assert_eq!(
        sessions,
        [(id.clone(), "alice".to_owned(), "password".to_owned())]
    );
    // The database holds the hash, and the token nowhere: not as text, not as its bytes,
    // not in the write-ahead log either.
    let db = server.data_dir().join("natterjack.db");
    let stored: Vec<String> = {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut st = conn
            .prepare("SELECT lower(hex(id_hash)) FROM console_sessions")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(stored, [id]);
    for file in ["natterjack.db", "natterjack.db-wal", "natterjack.db-shm"] {
        let Ok(bytes) = std::fs::read(server.data_dir().join(file)) else {
            continue;
        };
        for secret in [token.as_bytes(), random.as_slice()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "the token is in {file}"
            );
        }
    }
    assert!(
        !server.stderr_lines().iter().any(|l| l.contains(&token)),
        "the token was logged"
    );
    // The cookie works, and another login gets another token.
    assert_eq!(
        signed_in_as(&console.page(&token, "/console/spaces").await),
        "alice"
    );
    assert_ne!(console.log_in("alice", PASSWORD).await, token);
}

#[tokio::test]
async fn a_session_id_planted_before_login_is_replaced_by_a_new_one_and_never_becomes_the_victims()
{
    let server = TestServer::start().await;
    server.user("alice").await;
    server.user("mallory").await;
    let console = Console::of(&server);

    // A value the attacker chose and planted in the victim's browser.
    let chosen = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let r = console
        .log_in_with("alice", PASSWORD, &[(SESSION, &chosen)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let alices = new_session(&r).expect("a new session cookie");
    assert_ne!(alices, chosen);
    assert!(
        !console.holds(&chosen).await,
        "the planted value opens nothing"
    );

    // A real session of the attacker's own, planted: the login still answers a new one.
    let mallorys = console.log_in("mallory", PASSWORD).await;
    let r = console
        .log_in_with("alice", PASSWORD, &[(SESSION, &mallorys)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let alices_again = new_session(&r).expect("a new session cookie");
    assert_ne!(alices_again, mallorys);
    // The planted cookie is still the attacker's own session, never the victim's.
    assert_eq!(
        signed_in_as(&console.page(&mallorys, "/console/spaces").await),
        "mallory"
    );
    for session in [&alices, &alices_again] {
        assert_eq!(
            signed_in_as(&console.page(session, "/console/spaces").await),
            "alice"
        );
    }
    let mut sessions = listed(&server.data_dir(), &[]);
    sessions.sort();
    let mut expected = vec![
        (
            session_id(&alices),
            "alice".to_owned(),
            "password".to_owned(),
        ),
        (
            session_id(&alices_again),
            "alice".to_owned(),
            "password".to_owned(),
        ),
        (
            session_id(&mallorys),
            "mallory".to_owned(),
            "password".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(sessions, expected);
}

#[tokio::test]
async fn logging_out_ends_the_session_on_the_server_so_a_copy_of_the_old_cookie_is_refused() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    let csrf = console.csrf_of(&session).await;
    let r = console
        .post(&session, "/console/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/console/login");
    let cleared = set_cookie(&r, SESSION).expect("the cookie is cleared");
    assert!(
        cleared.value.is_empty() && cleared.has("Max-Age=0"),
        "{cleared:?}"
    );
    assert!(listed(&server.data_dir(), &[]).is_empty());

    // Someone who kept a copy of the cookie (and its token) gets nowhere.
    let r = console.get(Some(&session), "/console/spaces").await;
    refused_because(&server, r, &session, "unknown or revoked session").await;
    let r = console
        .post(
            &session,
            "/console/spaces",
            &[("name", "after-logout"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/console/login");
    assert!(spaces_of(&server, &alice).await.is_empty());
}

#[tokio::test]
async fn the_operator_revokes_a_session_by_id_and_every_session_of_a_user_and_the_audit_says_why() {
    let server = TestServer::start().await;
    server.user("alice").await;
    server.user("bob").await;
    let console = Console::of(&server);
    let first = console.log_in("alice", PASSWORD).await;
    let second = console.log_in("alice", PASSWORD).await;
    let bobs = console.log_in("bob", PASSWORD).await;
    let data = server.data_dir();

    let out = operator(&data, &["sessions", "revoke", &session_id(&first)], "", &[]);
    assert!(
        out.contains(&format!("session {} ended", &session_id(&first)[..16])),
        "{out}"
    );
    let r = console.get(Some(&first), "/console/spaces").await;
    refused_because(&server, r, &first, "unknown or revoked session").await;
    assert!(console.holds(&second).await);

    let out = operator(&data, &["sessions", "revoke", "--user", "alice"], "", &[]);
    assert!(out.contains("1 session(s) of alice ended"), "{out}");
    let r = console.get(Some(&second), "/console/").await;
    refused_because(&server, r, &second, "unknown or revoked session").await;
    assert!(console.holds(&bobs).await, "bob's session is not alice's");

    // What is not a session is refused, and said so.
    let (ok, _, err) = cli(&data, &["sessions", "revoke", &session_id(&first)], "", &[]);
    assert!(!ok && err.contains("no session"), "{err}");
    let (ok, _, err) = cli(&data, &["sessions", "revoke", "not-hex"], "", &[]);
    assert!(!ok && err.contains("not a session id"), "{err}");
}

#[tokio::test]
async fn a_session_left_unused_past_the_idle_timeout_is_refused() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_CONSOLE__SESSION_IDLE_SECS", "2"),
        ("NATTERJACK_CONSOLE__SESSION_ABSOLUTE_SECS", "600"),
    ])
    .await;
    server.user("alice").await;
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    // The last use is written at most once a minute, so idleness counts from the login
    // here; a session used within the timeout holds.
    assert!(console.holds(&session).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = console.get(Some(&session), "/console/spaces").await;
    refused_because(&server, r, &session, "session idle too long").await;
    // Gone for good: it is not idle any more, it no longer exists.
    assert!(listed(&server.data_dir(), &[]).is_empty());
    let r = console.get(Some(&session), "/console/spaces").await;
    refused_because(&server, r, &session, "unknown or revoked session").await;
}

#[tokio::test]
async fn a_session_past_its_absolute_lifetime_is_refused_however_busy_it_was() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_CONSOLE__SESSION_IDLE_SECS", "600"),
        ("NATTERJACK_CONSOLE__SESSION_ABSOLUTE_SECS", "4"),
    ])
    .await;
    server.user("alice").await;
    let console = Console::of(&server);
    let opened = Instant::now();
    let session = console.log_in("alice", PASSWORD).await;
    while opened.elapsed() < Duration::from_secs(2) {
        assert!(console.holds(&session).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = console.get(Some(&session), "/console/spaces").await;
    refused_because(&server, r, &session, "session expired").await;
}

#[tokio::test]
async fn a_password_changed_by_the_operator_ends_the_sessions_opened_before() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    assert!(console.holds(&session).await);
    let new_password = "quartz-lantern-88-meadow";
    operator(
        &server.data_dir(),
        &["user", "passwd", "alice"],
        &format!("{new_password}\n"),
        &[],
    );
    let r = console.get(Some(&session), "/console/spaces").await;
    refused_because(&server, r, &session, "session ended by a password change").await;
    let fresh = console.log_in("alice", new_password).await;
    assert!(console.holds(&fresh).await);
}

#[tokio::test]
async fn a_change_of_role_renews_the_open_session_and_only_the_new_cookie_works() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    let page = console.page(&session, "/console/spaces").await;
    assert!(!has_admin_links(&page), "{page}");
    assert_eq!(
        console.get(Some(&session), "/console/audit").await.status(),
        StatusCode::FORBIDDEN
    );

    operator(
        &server.data_dir(),
        &["user", "admin", "alice", "--grant"],
        "",
        &[],
    );
    let r = console.get(Some(&session), "/console/spaces").await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = set_cookie(&r, SESSION).expect("the renewed session's cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.has(attribute), "{attribute}: {cookie:?}");
    }
    let renewed = cookie.value;
    assert_ne!(renewed, session);
    let page = r.text().await.unwrap();
    assert!(has_admin_links(&page), "{page}");
    // The page's forms carry the new session's token: the old one's would be refused.
    let csrf = crate::support::console::csrf(&page);
    assert_eq!(csrf, console.csrf_of(&renewed).await);

    assert!(!console.holds(&session).await, "the old cookie is refused");
    let page = console.page(&renewed, "/console/spaces").await;
    assert!(has_admin_links(&page), "{page}");
    assert_eq!(
        console.get(Some(&renewed), "/console/audit").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        listed(&server.data_dir(), &[])
            .into_iter()
            .map(|(id, ..)| id)
            .collect::<Vec<_>>(),
        [session_id(&renewed)]
    );

    // And back: the role taken away renews it again, without the admin pages.
    operator(
        &server.data_dir(),
        &["user", "admin", "alice", "--revoke"],
        "",
        &[],
    );
    let r = console.get(Some(&renewed), "/console/spaces").await;
    assert_eq!(r.status(), StatusCode::OK);
    let demoted = new_session(&r).expect("renewed again");
    assert!(!has_admin_links(&r.text().await.unwrap()));
    assert!(!console.holds(&renewed).await);
    assert_eq!(
        console.get(Some(&demoted), "/console/audit").await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_post_with_the_session_cookie_but_a_missing_or_wrong_csrf_token_is_forbidden_and_changes_nothing()
 {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("mallory").await;
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    let csrf = console.csrf_of(&session).await;
    let mallorys = console.log_in("mallory", PASSWORD).await;
    let mallorys_csrf = console.csrf_of(&mallorys).await;
    // The right token with its last character changed (to one it does not end with).
    let last = if csrf.ends_with('A') { 'B' } else { 'A' };
    let almost = format!("{}{last}", &csrf[..csrf.len() - 1]);
    let wrong: [Option<&str>; 5] = [
        None,
        Some(""),
        Some(&mallorys_csrf),
        Some(&almost),
        Some(&session),
    ];
    for token in wrong {
        let mut fields = vec![("name", "forged")];
        if let Some(token) = token {
            fields.push(("csrf", token));
        }
        let r = console.post(&session, "/console/spaces", &fields).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "csrf {token:?}");
        let record = record_of(&server, &r).await;
        assert_eq!(record.record.decision, Decision::Deny);
        let reason = record.record.reason.unwrap_or_default();
        assert!(reason.contains("CSRF token missing or wrong"), "{reason}");
        // The cookie was not even looked up.
        assert_eq!(record.record.principal, None);
    }
    // Logout is a state change like any other.
    let r = console.post(&session, "/console/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(console.holds(&session).await);
    assert!(spaces_of(&server, &alice).await.is_empty());

    // The same form with its token goes through: the refusals were the token's.
    let r = console
        .post(
            &session,
            "/console/spaces",
            &[("name", "real"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(spaces_of(&server, &alice).await, ["real"]);
}

#[tokio::test]
async fn a_post_from_another_origin_a_cross_site_fetch_or_no_origin_at_all_is_forbidden() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    let csrf = console.csrf_of(&session).await;
    let port = server.base.rsplit(':').next().unwrap();
    let plain_http = format!("http://127.0.0.1:{port}");
    let cookie = format!("{SESSION}={session}");
    // (Origin, Sec-Fetch-Site) as another site's page, or a stripped request, sends them.
    let cases: Vec<(Option<&str>, Option<&str>)> = vec![
        (Some("https://evil.example"), None),
        (Some("https://evil.example"), Some("cross-site")),
        (Some("null"), None),
        (Some(&plain_http), None),
        (Some("https://127.0.0.1:1"), None),
        (Some("https://localhost"), None),
        (Some(console.origin()), Some("cross-site")),
        (Some(console.origin()), Some("same-site")),
        (None, None),
        (None, Some("same-origin")),
    ];
    for (origin, fetch_site) in &cases {
        let mut request = console
            .client()
            .post(server.url("/console/spaces"))
            .header(COOKIE, &cookie)
            .form(&[("name", "cross-site"), ("csrf", csrf.as_str())]);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, *origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", *site);
        }
        let r = request.send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "Origin {origin:?}, Sec-Fetch-Site {fetch_site:?}"
        );
        assert!(new_session(&r).is_none());
    }
    // Login CSRF: another site cannot sign the browser in to an account of its choosing.
    let r = console
        .client()
        .post(server.url("/console/login"))
        .header(ORIGIN, "https://evil.example")
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(new_session(&r).is_none());
    assert!(spaces_of(&server, &alice).await.is_empty());
    assert_eq!(listed(&server.data_dir(), &[]).len(), 1);
    // Without the cross-site headers, the same request is served.
    let r = console
        .post(
            &session,
            "/console/spaces",
            &[("name", "same-site"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_post_whose_body_is_not_a_form_is_refused_as_unsupported_and_changes_nothing() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    let csrf = console.csrf_of(&session).await;
    let bodies = [
        (
            "application/json",
            serde_json::json!({"name": "json", "csrf": csrf}).to_string(),
        ),
        ("text/plain", format!("name=plain&csrf={csrf}")),
        (
            "multipart/form-data; boundary=x",
            format!(
                "--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nmulti\r\n--x\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--x--\r\n"
            ),
        ),
    ];
    for (media, body) in bodies {
        let r = console
            .client()
            .post(server.url("/console/spaces"))
            .header(ORIGIN, console.origin())
            .header("sec-fetch-site", "same-origin")
            .header(COOKIE, format!("{SESSION}={session}"))
            .header(CONTENT_TYPE, media)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{media}");
    }
    assert!(spaces_of(&server, &alice).await.is_empty());
}

#[tokio::test]
async fn a_get_to_any_state_changing_path_is_not_a_route_and_changes_nothing() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let space = server.space(&alice, "kept").await;
    let message = server.message(&alice, space, "still here").await;
    assert!(server.grant(&alice, space, "bob", "rw").await.is_success());
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    let csrf = console.csrf_of(&session).await;
    for path in [
        format!("/console/logout?csrf={csrf}"),
        format!("/console/spaces/{space}/messages?body=injected&csrf={csrf}"),
        format!("/console/spaces/{space}/messages/{message}/delete?csrf={csrf}"),
        format!("/console/spaces/{space}/members/bob/revoke?permissions=rw&csrf={csrf}"),
        "/console/saml/login".to_owned(),
        "/console/oidc/login".to_owned(),
        "/console/saml/acs".to_owned(),
    ] {
        let r = console.get(Some(&session), &path).await;
        assert!(
            matches!(
                r.status(),
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ),
            "GET {path}: {}",
            r.status()
        );
    }
    // The pages that also take a POST only show on GET, whatever the query says.
    for path in [
        format!("/console/spaces?name=injected&csrf={csrf}"),
        format!("/console/spaces/{space}/members?username=mallory&permissions=rwd&csrf={csrf}"),
    ] {
        let r = console.get(Some(&session), &path).await;
        assert!(
            r.status() == StatusCode::OK || r.status() == StatusCode::BAD_REQUEST,
            "GET {path}: {}",
            r.status()
        );
    }
    assert!(console.holds(&session).await);
    assert_eq!(messages_of(&server, &alice, space).await, [message]);
    assert_eq!(spaces_of(&server, &alice).await, ["kept"]);
    let mut members = members_of(&server, &alice, space).await;
    members.sort();
    assert_eq!(members, ["alice:rwd", "bob:rw"]);
}

#[tokio::test]
async fn every_console_action_is_audited_as_the_console_with_the_session_named_by_its_hash() {
    let server = TestServer::start().await;
    server.user("alice").await;
    server.user("bob").await;
    let console = Console::of(&server);
    let login = console.log_in_with("alice", PASSWORD, &[]).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let session = new_session(&login).unwrap();
    let named = audit_name(&session);
    let record = record_of(&server, &login).await.record;
    assert_eq!(record.transport, Transport::Console);
    assert_eq!(record.principal.as_deref(), Some("alice"));
    assert_eq!(record.operation, "POST /console/login");
    assert!(
        record
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains(&named),
        "the login names the session it opened: {:?}",
        record.reason
    );

    let csrf = console.csrf_of(&session).await;
    let mut answered: Vec<(String, Response)> = Vec::new();
    let r = console.get(Some(&session), "/console/spaces").await;
    answered.push(("GET /console/spaces".into(), r));
    let r = console
        .post(
            &session,
            "/console/spaces",
            &[("name", "audited"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let space_page = location(&r);
    let space: i64 = space_page.rsplit('/').next().unwrap().parse().unwrap();
    answered.push(("POST /console/spaces".into(), r));
    let r = console
        .post(
            &session,
            &format!("/console/spaces/{space}/messages"),
            &[("body", "on the record"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    answered.push(("POST /console/spaces/{id}/messages".into(), r));
    let page = console.page(&session, &space_page).await;
    let message = page
        .split(&format!("/console/spaces/{space}/messages/"))
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let r = console.get(Some(&session), &space_page).await;
    answered.push(("GET /console/spaces/{id}".into(), r));
    let r = console
        .post(
            &session,
            &format!("/console/spaces/{space}/messages/{message}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    answered.push((
        "POST /console/spaces/{id}/messages/{msgId}/delete".into(),
        r,
    ));
    let r = console
        .post(
            &session,
            &format!("/console/spaces/{space}/members"),
            &[("username", "bob"), ("permissions", "rw"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    answered.push(("POST /console/spaces/{id}/members".into(), r));
    let r = console
        .get(Some(&session), &format!("/console/spaces/{space}/members"))
        .await;
    answered.push(("GET /console/spaces/{id}/members".into(), r));
    let r = console
        .post(
            &session,
            &format!("/console/spaces/{space}/members/bob/revoke"),
            &[("permissions", "rw"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    answered.push((
        "POST /console/spaces/{id}/members/{username}/revoke".into(),
        r,
    ));
    // A refusal of a page the member may not see is audited the same way.
    let r = console.get(Some(&session), "/console/audit").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    answered.push(("GET /console/audit".into(), r));
    let r = console
        .post(&session, "/console/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    answered.push(("POST /console/logout".into(), r));

    for (operation, response) in &answered {
        let stored = record_of(&server, response).await;
        let record = &stored.record;
        assert_eq!(&record.operation, operation);
        assert_eq!(record.transport, Transport::Console, "{operation}");
        assert_eq!(record.auth_method, AuthMethod::Session, "{operation}");
        assert_eq!(record.principal.as_deref(), Some("alice"), "{operation}");
        let reason = record.reason.as_deref().unwrap_or_default();
        assert!(reason.contains(&named), "{operation}: {reason:?}");
        assert!(!reason.contains(&session), "{operation}: the token itself");
    }
    // State changes leave their intent first, in the console's name too.
    let records = server.audit_records().await;
    for (operation, response) in answered.iter().filter(|(o, _)| o.starts_with("POST")) {
        let id = request_id(response);
        let intent = records
            .iter()
            .find(|r| {
                r.record.request_id == id && r.record.phase == natterjack_core::audit::Phase::Intent
            })
            .unwrap_or_else(|| panic!("no intent record of {operation}"));
        assert_eq!(intent.record.transport, Transport::Console);
        assert_eq!(intent.record.auth_method, AuthMethod::Session);
    }
    // Nothing in the trail holds the token.
    for stored in &records {
        let text = format!("{:?}", stored.record);
        assert!(!text.contains(&session), "{text}");
    }
    // An admin reading the trail through the REST API sees the same.
    server.user("auditor").await;
    operator(
        &server.data_dir(),
        &["user", "admin", "auditor", "--grant"],
        "",
        &[],
    );
    let auditor = Creds::new("auditor", PASSWORD);
    let page: Value = server
        .call(
            Some(&auditor),
            Method::GET,
            "/audit?principal=alice&limit=100",
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let seen: Vec<&Value> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["phase"] == "complete" && r["operation"] != "POST /console/login")
        .collect();
    for (operation, response) in &answered {
        let id = request_id(response);
        assert!(
            seen.iter().any(|r| r["request_id"] == id.as_str()),
            "{operation} not in {page}"
        );
    }
    for record in seen {
        assert_eq!(record["transport"], "console", "{record}");
        assert_eq!(record["auth_method"], "session", "{record}");
        assert!(
            record["reason"]
                .as_str()
                .is_some_and(|r| r.contains(&named)),
            "{record}"
        );
    }
}

#[tokio::test]
async fn wrong_passwords_on_the_login_form_spend_the_same_failed_login_budget_as_basic_auth() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_RATE_LIMIT__ENABLED", "true"),
        ("NATTERJACK_RATE_LIMIT__FAILED_LOGINS__BURST", "3"),
        ("NATTERJACK_RATE_LIMIT__FAILED_LOGINS__PER_SECOND", "0.001"),
    ])
    .await;
    server.user("alice").await;
    let console = Console::of(&server);
    for guess in ["guess-one-abcdef", "guess-two-abcdef"] {
        let r = console.log_in_with("alice", guess, &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(new_session(&r).is_none());
        let page = r.text().await.unwrap();
        assert!(page.contains("Wrong username or password"), "{page}");
    }
    // The third failure of the budget, through Basic on the REST API.
    let basic = server
        .call(
            Some(&Creds::new("alice", "guess-three-abcdef")),
            Method::GET,
            "/spaces",
            None,
        )
        .await;
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    // The budget is spent, for the form as for Basic; the right password does not get
    // through from here either (it is not even checked).
    for password in ["guess-four-abcdef", PASSWORD] {
        let r = console.log_in_with("alice", password, &[]).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{password}");
        assert!(r.headers().contains_key("retry-after"));
        assert!(new_session(&r).is_none());
        let record = record_of(&server, &r).await.record;
        assert_eq!(record.transport, Transport::Console);
        assert!(
            record
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("failed-logins")),
            "{:?}",
            record.reason
        );
    }
    let basic = server
        .call(
            Some(&Creds::new("alice", "guess-five-abcdef")),
            Method::GET,
            "/spaces",
            None,
        )
        .await;
    assert_eq!(basic.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(listed(&server.data_dir(), &[]).is_empty());
}

/// `page` with the numeric character references of the HTML special characters written
/// as their named ones, so a check reads the same whichever the template engine uses.
fn escaped(page: &str) -> String {
    page.replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#34;", "&quot;")
        .replace("&#39;", "&apos;")
        .replace("&#38;", "&amp;")
}

#[tokio::test]
async fn markup_in_a_space_name_and_a_message_is_shown_escaped() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    let csrf = console.csrf_of(&session).await;
    let name = "<script>alert(\"name\")</script> 'quoted' & \"double\"";
    let body = "<script>alert('body')</script><img src=x onerror=\"alert(1)\"> \"</p><p>";
    let r = console
        .post(
            &session,
            "/console/spaces",
            &[("name", name), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let space_page = location(&r);
    let r = console
        .post(
            &session,
            &format!("{space_page}/messages"),
            &[("body", body), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    for path in ["/console/spaces", space_page.as_str()] {
        let page = console.page(&session, path).await;
        for raw in ["<script", "<img", "onerror=\"", "'quoted'", "\"double\""] {
            assert!(!page.contains(raw), "{path}: {raw} unescaped in {page}");
        }
        assert!(
            escaped(&page).contains("&lt;script&gt;alert("),
            "{path}: {page}"
        );
    }
    let page = escaped(&console.page(&session, &space_page).await);
    assert!(
        page.contains("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"),
        "{page}"
    );
    assert!(!page.contains("</p><p>"), "{page}");
}

/// A PostgreSQL database with a server on it, or `None` where PostgreSQL is missing.
async fn on_postgres(test: &str) -> Option<(PgDatabase, TestServer, Vec<(&'static str, String)>)> {
    let db = PgDatabase::fresh(test).await?;
    let dir = tempfile::tempdir().unwrap();
    db.prepare(&dir.path().join("data"));
    let env = db.env();
    let server = TestServer::start_in(dir, &pairs(&env)).await;
    Some((db, server, env))
}

#[tokio::test]
async fn on_postgresql_a_login_opens_a_session_that_logout_ends() {
    let Some((db, server, env)) = on_postgres("a_login_opens_a_session_that_logout_ends").await
    else {
        return;
    };
    server.user("alice").await;
    let console = Console::of(&server);
    let session = console.log_in("alice", PASSWORD).await;
    assert_eq!(
        signed_in_as(&console.page(&session, "/console/spaces").await),
        "alice"
    );
    assert_eq!(
        listed(&server.data_dir(), &pairs(&env)),
        [(
            session_id(&session),
            "alice".to_owned(),
            "password".to_owned()
        )]
    );
    let csrf = console.csrf_of(&session).await;
    let r = console
        .post(&session, "/console/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!console.holds(&session).await);
    assert!(listed(&server.data_dir(), &pairs(&env)).is_empty());
    drop(server);
    db.drop_all().await;
}

#[tokio::test]
async fn on_postgresql_the_operator_revokes_sessions_by_id_and_by_user() {
    let Some((db, server, env)) =
        on_postgres("the_operator_revokes_sessions_by_id_and_by_user").await
    else {
        return;
    };
    let env = pairs(&env);
    server.user("alice").await;
    server.user("bob").await;
    let console = Console::of(&server);
    let first = console.log_in("alice", PASSWORD).await;
    let second = console.log_in("alice", PASSWORD).await;
    let bobs = console.log_in("bob", PASSWORD).await;
    let data = server.data_dir();
    operator(
        &data,
        &["sessions", "revoke", &session_id(&first)],
        "",
        &env,
    );
    assert!(!console.holds(&first).await);
    assert!(console.holds(&second).await);
    let out = operator(&data, &["sessions", "revoke", "--user", "alice"], "", &env);
    assert!(out.contains("1 session(s) of alice ended"), "{out}");
    assert!(!console.holds(&second).await);
    assert!(console.holds(&bobs).await);
    drop(server);
    db.drop_all().await;
}
