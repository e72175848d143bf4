//! Access control over HTTP: per-space ACLs, 401 before any ACL lookup, no reach across
//! spaces, and the escalation rule under both policies.

use crate::support::{TestServer, problem};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every space route with the permission its table entry declares (`-` = any member).
fn space_routes(space: i64, msg: i64) -> Vec<(Method, String, Option<Value>, &'static str)> {
    vec![
        (Method::GET, format!("/spaces/{space}"), None, "r"),
        (Method::GET, format!("/spaces/{space}/messages"), None, "r"),
        (
            Method::POST,
            format!("/spaces/{space}/messages"),
            Some(json!({"message": "hi"})),
            "w",
        ),
        (
            Method::GET,
            format!("/spaces/{space}/messages/{msg}"),
            None,
            "r",
        ),
        (
            Method::DELETE,
            format!("/spaces/{space}/messages/{msg}"),
            None,
            "d",
        ),
        (Method::GET, format!("/spaces/{space}/members"), None, "r"),
        (
            Method::POST,
            format!("/spaces/{space}/members"),
            Some(json!({"username": "carol", "permissions": "r"})),
            "-",
        ),
        (
            Method::DELETE,
            format!("/spaces/{space}/members/carol"),
            None,
            "-",
        ),
    ]
}

#[tokio::test]
async fn the_walkthrough_works_and_a_stranger_is_refused() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let space = server.space(&alice, "general").await;
    let msg = server.message(&alice, space, "hello bob").await;
    assert_eq!(
        server.grant(&alice, space, "bob", "r").await,
        StatusCode::CREATED
    );
    let read = server
        .call(
            Some(&bob),
            Method::GET,
            &format!("/spaces/{space}/messages/{msg}"),
            None,
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        read.json::<Value>().await.expect("json")["message"],
        "hello bob"
    );
    let refused = server
        .call(
            Some(&eve),
            Method::GET,
            &format!("/spaces/{space}/messages/{msg}"),
            None,
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = problem(refused).await;
    assert!(body["request_id"].as_str().is_some_and(|id| id.len() == 32));
    // bob may read but not post or moderate.
    let post = server
        .call(
            Some(&bob),
            Method::POST,
            &format!("/spaces/{space}/messages"),
            Some(json!({"message": "x"})),
        )
        .await;
    assert_eq!(post.status(), StatusCode::FORBIDDEN);
    let del = server
        .call(
            Some(&bob),
            Method::DELETE,
            &format!("/spaces/{space}/messages/{msg}"),
            None,
        )
        .await;
    assert_eq!(del.status(), StatusCode::FORBIDDEN);
    // GET /spaces lists only spaces where the caller holds something.
    let listed = |v: Value| {
        v.as_array()
            .map(|a| a.iter().map(|s| s["id"].as_i64()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let bobs = server
        .call(Some(&bob), Method::GET, "/spaces", None)
        .await
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(listed(bobs), vec![Some(space)]);
    let eves = server
        .call(Some(&eve), Method::GET, "/spaces", None)
        .await
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(listed(eves), Vec::<Option<i64>>::new());
}

#[tokio::test]
async fn unauthenticated_requests_get_401_before_any_acl_lookup() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "s").await;
    let msg = server.message(&alice, space, "m").await;
    // An existing space and one that does not exist answer the same: no ACL was consulted.
    for space_id in [space, 999_999] {
        for (method, path, body, _) in space_routes(space_id, msg) {
            let r = server.call(None, method.clone(), &path, body).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(r.headers().contains_key("www-authenticate"));
        }
    }
    for (method, path) in [
        (Method::GET, "/spaces"),
        (Method::POST, "/spaces"),
        (Method::GET, "/spaces?owner=bob"),
    ] {
        let body = (method == Method::POST).then(|| json!({"name": "x"}));
        assert_eq!(
            server.call(None, method, path, body).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn every_route_refuses_a_member_without_its_declared_permission() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.user("carol").await;
    for held in ["r", "w", "d", "rw", "rd", "wd"] {
        let space = server.space(&alice, held).await;
        let msg = server.message(&alice, space, "m").await;
        assert_eq!(
            server.grant(&alice, space, "bob", held).await,
            StatusCode::CREATED
        );
        for (method, path, body, needs) in space_routes(space, msg) {
            let r = server.call(Some(&bob), method.clone(), &path, body).await;
            let allowed_by_acl = needs == "-" || needs.chars().all(|c| held.contains(c));
            if allowed_by_acl {
                assert_ne!(
                    r.status(),
                    StatusCode::UNAUTHORIZED,
                    "{held}: {method} {path}"
                );
                // Members-routes are then decided by the escalation rule (full-only here).
                if needs != "-" {
                    assert!(
                        r.status().is_success(),
                        "{held}: {method} {path} -> {}",
                        r.status()
                    );
                } else {
                    assert_eq!(
                        r.status(),
                        StatusCode::FORBIDDEN,
                        "{held}: {method} {path} needs rwd under full-only"
                    );
                }
            } else {
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{held}: {method} {path}");
                problem(r).await;
            }
        }
    }
    // A non-member is refused everywhere, and a space that does not exist looks the same.
    let space = server.space(&alice, "private").await;
    let msg = server.message(&alice, space, "m").await;
    for space_id in [space, 999_999] {
        for (method, path, body, _) in space_routes(space_id, msg) {
            let r = server.call(Some(&bob), method.clone(), &path, body).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn a_permission_on_one_space_never_reaches_another_spaces_objects() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.user("carol").await;
    let a = server.space(&alice, "alice's").await;
    let b = server.space(&bob, "bob's").await;
    let b_msg = server.message(&bob, b, "bob's secret").await;
    server.message(&alice, a, "alice's note").await;
    assert_eq!(
        server.grant(&bob, b, "carol", "r").await,
        StatusCode::CREATED
    );

    // B's message id under A's path, with every route that takes a message id.
    let r = server
        .call(
            Some(&alice),
            Method::GET,
            &format!("/spaces/{a}/messages/{b_msg}"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!r.text().await.expect("body").contains("secret"));
    let r = server
        .call(
            Some(&alice),
            Method::DELETE,
            &format!("/spaces/{a}/messages/{b_msg}"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // B's member under A's path.
    let r = server
        .call(
            Some(&alice),
            Method::DELETE,
            &format!("/spaces/{a}/members/carol"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Listings of A never show B's objects.
    let list = server
        .call(
            Some(&alice),
            Method::GET,
            &format!("/spaces/{a}/messages?limit=100"),
            None,
        )
        .await;
    let list: Value = list.json().await.expect("json");
    assert_eq!(list["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["messages"][0]["message"], "alice's note");
    let members: Value = server
        .call(
            Some(&alice),
            Method::GET,
            &format!("/spaces/{a}/members"),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        members,
        json!([{"username": "alice", "permissions": "rwd"}])
    );
    // A's rwd does not open B.
    for (method, path, body, _) in space_routes(b, b_msg) {
        let r = server.call(Some(&alice), method.clone(), &path, body).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    // And B's message and membership are untouched.
    let r = server
        .call(
            Some(&bob),
            Method::GET,
            &format!("/spaces/{b}/messages/{b_msg}"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let members: Value = server
        .call(
            Some(&bob),
            Method::GET,
            &format!("/spaces/{b}/members"),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(members.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_space_cannot_be_created_on_someone_elses_behalf() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let r = server
        .call(
            Some(&alice),
            Method::POST,
            "/spaces",
            Some(json!({"name": "x", "owner": "bob"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = server
        .call(
            Some(&alice),
            Method::POST,
            "/spaces",
            Some(json!({"name": "x", "owner": "alice"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["location"]
            .to_str()
            .ok()
            .map(|l| l.starts_with("/spaces/")),
        Some(true)
    );
}

#[tokio::test]
async fn under_full_only_only_rwd_holders_grant_and_nobody_revokes_the_owner() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.user("carol").await;
    let space = server.space(&alice, "s").await;
    assert_eq!(
        server.grant(&alice, space, "bob", "rw").await,
        StatusCode::CREATED
    );
    assert_eq!(
        server.grant(&bob, space, "carol", "r").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.grant(&alice, space, "bob", "d").await,
        StatusCode::CREATED
    );
    assert_eq!(
        server.grant(&bob, space, "carol", "r").await,
        StatusCode::CREATED
    );
    let r = server
        .call(
            Some(&bob),
            Method::DELETE,
            &format!("/spaces/{space}/members/alice"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = server
        .call(
            Some(&alice),
            Method::DELETE,
            &format!("/spaces/{space}/members/bob?permissions=w"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
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
        .expect("json");
    assert_eq!(
        members,
        json!([
            {"username": "alice", "permissions": "rwd"},
            {"username": "bob", "permissions": "rd"},
            {"username": "carol", "permissions": "r"},
        ])
    );
    // bob no longer holds rwd, so he may not revoke carol.
    let r = server
        .call(
            Some(&bob),
            Method::DELETE,
            &format!("/spaces/{space}/members/carol"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn under_the_subset_policy_members_grant_only_what_they_hold() {
    let server = TestServer::start_with(&[("NATTERJACK_ACCESS__GRANT_POLICY", "subset")]).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.user("carol").await;
    let space = server.space(&alice, "s").await;
    assert_eq!(
        server.grant(&alice, space, "bob", "rw").await,
        StatusCode::CREATED
    );
    assert_eq!(
        server.grant(&bob, space, "carol", "w").await,
        StatusCode::CREATED
    );
    assert_eq!(
        server.grant(&bob, space, "carol", "d").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.grant(&bob, space, "carol", "rwd").await,
        StatusCode::FORBIDDEN
    );
    let r = server
        .call(
            Some(&bob),
            Method::DELETE,
            &format!("/spaces/{space}/members/carol?permissions=w"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
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
        .expect("json");
    assert_eq!(
        members.as_array().map(Vec::len),
        Some(2),
        "carol's only permission was revoked: {members}"
    );
}

#[tokio::test]
async fn registration_can_be_switched_off_and_names_are_unique() {
    let open = TestServer::start().await;
    open.user("alice").await;
    let dup = open
        .call(
            None,
            Method::POST,
            "/users",
            Some(json!({"username": "ALICE", "password": crate::support::PASSWORD})),
        )
        .await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    let closed = TestServer::start_with(&[("NATTERJACK_AUTH__SELF_REGISTRATION", "false")]).await;
    let r = closed
        .call(
            None,
            Method::POST,
            "/users",
            Some(json!({"username": "alice", "password": crate::support::PASSWORD})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn messages_are_listed_newest_first_in_pages_with_a_next_link_and_a_since_filter() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "s").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(server.message(&alice, space, &format!("m{i}")).await);
    }
    let page: Value = server
        .call(
            Some(&alice),
            Method::GET,
            &format!("/spaces/{space}/messages?limit=2"),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    let got: Vec<i64> = page["messages"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect();
    assert_eq!(got, vec![ids[4], ids[3]]);
    let next = page["next"].as_str().expect("next link").to_owned();
    let page2: Value = server
        .call(Some(&alice), Method::GET, &next, None)
        .await
        .json()
        .await
        .expect("json");
    let got: Vec<i64> = page2["messages"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect();
    assert_eq!(got, vec![ids[2], ids[1]]);
    let all: Value = server
        .call(
            Some(&alice),
            Method::GET,
            &format!("/spaces/{space}/messages"),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all["next"], Value::Null);
    let third_at = all["messages"][2]["created_at"]
        .as_str()
        .expect("time")
        .to_owned();
    let since: Value = server
        .client()
        .get(server.url(&format!("/spaces/{space}/messages")))
        .query(&[("since", third_at.as_str())])
        .basic_auth(&alice.name, Some(&alice.password))
        .send()
        .await
        .expect("since")
        .json()
        .await
        .expect("json");
    assert_eq!(since["messages"].as_array().map(Vec::len), Some(3));
    // Deleting a message makes it disappear and a second delete is a 404.
    let path = format!("/spaces/{space}/messages/{}", ids[0]);
    assert_eq!(
        server
            .call(Some(&alice), Method::DELETE, &path, None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server
            .call(Some(&alice), Method::DELETE, &path, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .call(Some(&alice), Method::GET, &path, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
