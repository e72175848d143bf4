//! Another site against a member's browser: its forms posted to the console are refused
//! and change nothing, and the session cookie never goes with its requests.

use super::{add_user, completion_of, plain_server, run};
use crate::support::PASSWORD;
use crate::support::console::users_signed_in;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn a_login_form_posted_from_another_site_is_refused_and_makes_no_session() {
    let test = "console_browser::cross_site::a_login_form_posted_from_another_site_is_refused_and_makes_no_session";
    let server = plain_server().await;
    add_user(&server, "alice");
    // Login CSRF: the attacker's page signs the victim's browser in as the attacker.
    let params = json!({
        "action": server.url("/console/login"),
        "fields": {"username": "alice", "password": PASSWORD, "csrf": "forged"},
        "expectStatus": 403,
    });
    let Some(report) = run(test, &server, "csrf_cross_site", params).await else {
        return;
    };
    report.assert_clean();
    let record = completion_of(&server, &report, "requestId").await;
    assert_eq!(record.record.principal, None, "{record:?}");
    assert_eq!(
        record.record.reason.as_deref(),
        Some("a form from another site is refused"),
        "{record:?}"
    );
    // No session was opened on the server either.
    assert_eq!(users_signed_in(&server), []);
}

#[tokio::test]
async fn a_post_from_another_site_cannot_create_a_space_and_goes_without_the_session_cookie() {
    let test = "console_browser::cross_site::a_post_from_another_site_cannot_create_a_space_and_goes_without_the_session_cookie";
    let server = plain_server().await;
    let alice = add_user(&server, "alice");
    let params = json!({
        "login": {"base": server.base, "username": "alice", "password": PASSWORD},
        "action": server.url("/console/spaces"),
        "fields": {"name": "forged", "csrf": "forged"},
        "expectStatus": 403,
    });
    let Some(report) = run(test, &server, "csrf_cross_site", params).await else {
        return;
    };
    report.assert_clean();
    // Chromium itself did not attach the SameSite=Strict cookie to the attacker's POST.
    assert_eq!(report.value["cookieSent"], json!(false), "{report}");
    let record = completion_of(&server, &report, "requestId").await;
    assert_eq!(
        record.record.status.map(|s| s.to_string()).as_deref(),
        Some("403"),
        "{record:?}"
    );
    assert_eq!(record.record.principal, None, "{record:?}");
    let spaces: Value = server
        .call(Some(&alice), Method::GET, "/spaces", None)
        .await
        .json()
        .await
        .expect("spaces");
    assert!(!spaces.to_string().contains("forged"), "{spaces}");
}

#[tokio::test]
async fn a_link_from_another_site_arrives_without_the_session_cookie_and_leaves_the_member_signed_in()
 {
    let test = "console_browser::cross_site::a_link_from_another_site_arrives_without_the_session_cookie_and_leaves_the_member_signed_in";
    let server = plain_server().await;
    add_user(&server, "alice");
    let params = json!({
        "base": server.base,
        "member": {"username": "alice", "password": PASSWORD},
    });
    let Some(report) = run(test, &server, "cross_site_link", params).await else {
        return;
    };
    report.assert_clean();
    assert_eq!(
        report.value["crossSiteCookieSent"],
        json!(false),
        "{report}"
    );
    assert_eq!(report.value["directCookieSent"], json!(true), "{report}");
    // The server saw the cross-site request as anonymous: no principal, no session.
    let record = completion_of(&server, &report, "crossSiteRequestId").await;
    assert_eq!(record.record.principal, None, "{record:?}");
    assert!(
        !record
            .record
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("session"),
        "{record:?}"
    );
    assert_eq!(record.record.operation, "GET /console/spaces", "{record:?}");
    // And the request typed in afterwards came with alice's session.
    let record = completion_of(&server, &report, "directRequestId").await;
    assert_eq!(
        record.record.principal.as_deref(),
        Some("alice"),
        "{record:?}"
    );
    assert!(
        record
            .record
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("session")),
        "{record:?}"
    );
}
