//! The pages of a signed-in member and of an admin, walked through their links and forms.

use super::{add_user, console_server, make_admin, plain_server, run};
use crate::support::PASSWORD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What the member posts first in the walk, and deletes at the end (the space page with
/// both is the picture in `docs/console.png`).
const FIRST_WORDS: &str = "The natterjacks were calling by the pond again last night.";
/// What the member posts second in the walk: bob reads it through the API.
const SECOND_WORDS: &str = "Three toads on the path after the rain: mind your step!";

#[tokio::test]
async fn a_member_walks_the_console_from_login_to_logout_and_the_api_sees_what_was_done() {
    let test = "console_browser::pages::a_member_walks_the_console_from_login_to_logout_and_the_api_sees_what_was_done";
    let server = plain_server().await;
    let alice = add_user(&server, "alice");
    let bob = add_user(&server, "bob");
    let params = json!({
        "base": server.base,
        "member": {"username": "alice", "password": PASSWORD},
        "grantee": "bob",
        "space": "garden",
        "messages": [FIRST_WORDS, SECOND_WORDS],
    });
    let Some(report) = run(test, &server, "console_walk", params).await else {
        return;
    };
    report.assert_clean();
    assert!(report.shots.len() >= 10, "{report}");

    let space = report.value["spaceId"].as_str().expect("spaceId");
    let members: Value = server
        .call(
            Some(&alice),
            Method::GET,
            &format!("/spaces/{space}/members"),
            None,
        )
        .await
        .json()
        .await
        .expect("members");
    assert!(
        members
            .as_array()
            .expect("a list")
            .contains(&json!({"username": "bob", "permissions": "rw"})),
        "{members}"
    );
    // bob reads the space: the second message is there, the deleted one is gone.
    let r = server
        .call(
            Some(&bob),
            Method::GET,
            &format!("/spaces/{space}/messages"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.expect("messages");
    let messages = list["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{list}");
    assert_eq!(messages[0]["message"], SECOND_WORDS, "{list}");
}

#[tokio::test]
async fn an_admin_reads_audit_alerts_and_activity_and_the_chain_status_is_ok() {
    let test = "console_browser::pages::an_admin_reads_audit_alerts_and_activity_and_the_chain_status_is_ok";
    // Two refusals of one principal raise an alert, for the alerts page to show.
    let server = console_server(
        tempfile::tempdir().expect("temp dir"),
        "",
        &[("NATTERJACK_AUDIT__ALERTS__FORBIDDEN", "2")],
    )
    .await;
    let alice = add_user(&server, "alice");
    make_admin(&server, "alice");
    // Something for the trail: a space, a message, and refusals.
    let space = server.space(&alice, "records").await;
    server.message(&alice, space, "on the record").await;
    let mallory = add_user(&server, "mallory");
    for _ in 0..2 {
        let r = server
            .call(
                Some(&mallory),
                Method::GET,
                &format!("/spaces/{space}/messages"),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let mut alerted = false;
    for _ in 0..100 {
        alerted = server
            .audit_records()
            .await
            .iter()
            .any(|r| r.record.operation == "alert forbidden");
        if alerted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(alerted, "two refusals of mallory raised no alert");

    let params = json!({
        "base": server.base,
        "admin": {"username": "alice", "password": PASSWORD},
        "alert": "forbidden",
    });
    let Some(report) = run(test, &server, "audit_as_admin", params).await else {
        return;
    };
    report.assert_clean();
    assert!(report.shots.len() >= 6, "{report}");
    assert!(
        report.value["chainStatus"]
            .as_str()
            .is_some_and(|s| s.starts_with("OK")),
        "{report}"
    );
}

#[tokio::test]
async fn a_member_uses_the_console_with_the_keyboard_alone_on_a_phone_sized_screen() {
    let test = "console_browser::pages::a_member_uses_the_console_with_the_keyboard_alone_on_a_phone_sized_screen";
    let server = plain_server().await;
    let alice = add_user(&server, "alice");
    let params = json!({
        "base": server.base,
        "member": {"username": "alice", "password": PASSWORD},
        "space": "pocket",
        "message": "Typed with the keyboard on a small screen.",
    });
    let Some(report) = run(test, &server, "keyboard_phone", params).await else {
        return;
    };
    report.assert_clean();
    assert_eq!(report.shots.len(), 4, "{report}");
    let space = report.value["spaceId"].as_str().expect("spaceId");
    let r = server
        .call(
            Some(&alice),
            Method::GET,
            &format!("/spaces/{space}/messages"),
            None,
        )
        .await;
    let list: Value = r.json().await.expect("messages");
    assert_eq!(
        list["messages"][0]["message"], "Typed with the keyboard on a small screen.",
        "{list}"
    );
}
