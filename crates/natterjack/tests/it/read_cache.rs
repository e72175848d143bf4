//! The read cache across two real `natterjack serve` processes on one PostgreSQL database:
//! node B answers a user's row and membership from memory, and a change made on node A or
//! by the operator CLI reaches B through the database's notifications, within the bound
//! docs/CONFIGURATION.md documents. Each test prints the delay it measured.

use crate::support::nodes::Nodes;
use crate::support::{Creds, PASSWORD, TestServer};
use reqwest::{Method, StatusCode};
use sqlx::Connection;
use std::time::{Duration, Instant};

/// With the listener connected, a change reaches another node as fast as PostgreSQL
/// delivers a notification; the tests that rely on it give B a maximum age far above this,
/// so that only the notification can explain a refusal within it.
const NOTIFIED_WITHIN: Duration = Duration::from_secs(3);

/// B's maximum age when the notification is what is measured.
const LONG_MAX_AGE_MS: &str = "30000";

impl Nodes {
    /// Alice's space `shared`, created on A, which bob may read: B has answered bob's read
    /// of it with his user row and his membership both warm in its cache.
    async fn shared_with_bob(&self) -> Shared {
        let alice = self.a.user("alice").await;
        let bob = self.a.user("bob").await;
        let space = self.a.space(&alice, "shared").await;
        assert_eq!(
            self.a.grant(&alice, space, "bob", "r").await,
            StatusCode::CREATED
        );
        let path = format!("/spaces/{space}");
        assert_eq!(warm(&self.b, &bob, &path, 2.0).await, StatusCode::OK);
        Shared {
            alice,
            bob,
            space,
            path,
        }
    }
}

/// What [`Nodes::shared_with_bob`] set up.
struct Shared {
    alice: Creds,
    bob: Creds,
    space: i64,
    /// The space's own path, which bob reads.
    path: String,
}

/// Reads B's count of reads the cache answered from memory.
async fn hits(server: &TestServer) -> f64 {
    let text = server.metrics().await;
    text.lines()
        .find(|l| l.starts_with("natterjack_store_cache_reads_total{") && l.contains("\"hit\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Calls `path` on `server` as `who` until the cache answers both of the request's reads
/// (user row and membership, or user row alone) from memory: the listener is connected and
/// the entries are warm. Returns the status the warm request got.
async fn warm(server: &TestServer, who: &Creds, path: &str, reads: f64) -> StatusCode {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        server.call(Some(who), Method::GET, path, None).await;
        let before = hits(server).await;
        let status = server
            .call(Some(who), Method::GET, path, None)
            .await
            .status();
        if hits(server).await - before >= reads {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the cache of {path} never warmed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Calls `path` on `server` as `who` until it answers `expected`; the time that took.
async fn until_status(
    server: &TestServer,
    who: &Creds,
    path: &str,
    expected: &[StatusCode],
    give_up: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let status = server
            .call(Some(who), Method::GET, path, None)
            .await
            .status();
        if expected.contains(&status) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < give_up,
            "{path} still answered {status} after {give_up:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_revocation_on_one_node_refuses_the_member_on_the_other_within_the_notification_bound() {
    let Some(nodes) = Nodes::start("read_cache_revocation", LONG_MAX_AGE_MS).await else {
        return;
    };
    let (a, b) = (&nodes.a, &nodes.b);
    let Shared {
        alice,
        bob,
        space,
        path,
    } = nodes.shared_with_bob().await;

    let revoked = a
        .call(
            Some(&alice),
            Method::DELETE,
            &format!("/spaces/{space}/members/bob"),
            None,
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let delay = until_status(
        b,
        &bob,
        &path,
        &[StatusCode::FORBIDDEN, StatusCode::NOT_FOUND],
        Duration::from_secs(40),
    )
    .await;
    println!("revocation on node A refused on node B after {delay:?}");
    assert!(
        delay < NOTIFIED_WITHIN,
        "took {delay:?}: the notification did not arrive, the maximum age expired"
    );
    nodes.finish().await;
}

#[tokio::test]
async fn a_password_change_and_an_admin_role_from_the_cli_reach_a_running_node_within_the_notification_bound()
 {
    let Some(nodes) = Nodes::start("read_cache_cli", LONG_MAX_AGE_MS).await else {
        return;
    };
    let b = &nodes.b;
    let bob = b.user("bob").await;
    assert_eq!(warm(b, &bob, "/audit", 1.0).await, StatusCode::FORBIDDEN);

    nodes.cli(&["user", "admin", "bob", "--grant"], "");
    let delay = until_status(
        b,
        &bob,
        "/audit",
        &[StatusCode::OK],
        Duration::from_secs(40),
    )
    .await;
    println!("admin role granted by the CLI honoured on node B after {delay:?}");
    assert!(delay < NOTIFIED_WITHIN, "took {delay:?}");

    assert_eq!(warm(b, &bob, "/spaces", 1.0).await, StatusCode::OK);
    let new_password = "quartz-lantern-88-meadow";
    nodes.cli(&["user", "passwd", "bob"], &format!("{new_password}\n"));
    let delay = until_status(
        b,
        &bob,
        "/spaces",
        &[StatusCode::UNAUTHORIZED],
        Duration::from_secs(40),
    )
    .await;
    println!("password changed by the CLI: old password refused on node B after {delay:?}");
    assert!(delay < NOTIFIED_WITHIN, "took {delay:?}");
    let renewed = Creds::new("bob", new_password);
    let r = b.call(Some(&renewed), Method::GET, "/spaces", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(PASSWORD, new_password);
    nodes.finish().await;
}

#[tokio::test]
async fn a_change_whose_notification_is_lost_is_seen_once_the_maximum_age_expires() {
    const MAX_AGE: Duration = Duration::from_millis(1500);
    let Some(nodes) = Nodes::start("read_cache_max_age", "1500").await else {
        return;
    };
    let b = &nodes.b;
    let Shared { bob, path, .. } = nodes.shared_with_bob().await;

    // The owner removes bob's membership with the announcing trigger switched off for that
    // one transaction: a notification lost on a connection that looks alive.
    let mut owner = sqlx::PgConnection::connect(&nodes.db.owner_url)
        .await
        .unwrap();
    let mut tx = owner.begin().await.unwrap();
    for statement in [
        "ALTER TABLE memberships DISABLE TRIGGER memberships_changes_are_announced",
        "DELETE FROM memberships WHERE user_id = (SELECT id FROM users WHERE username = 'bob')",
        "ALTER TABLE memberships ENABLE TRIGGER memberships_changes_are_announced",
    ] {
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    owner.close().await.unwrap();

    let stale = b.call(Some(&bob), Method::GET, &path, None).await.status();
    let delay = until_status(
        b,
        &bob,
        &path,
        &[StatusCode::FORBIDDEN, StatusCode::NOT_FOUND],
        Duration::from_secs(20),
    )
    .await;
    println!(
        "unannounced revocation refused on node B after {delay:?} (maximum age {MAX_AGE:?}; \
         first answer after the change: {stale})"
    );
    // The entry was read before the change, so it expires at most MAX_AGE after it; the
    // slack covers one request's round trip.
    assert!(
        delay <= MAX_AGE + Duration::from_millis(500),
        "took {delay:?}"
    );
    nodes.finish().await;
}
