//! The export lease on PostgreSQL: one holder per sink per database, taken over once the
//! holder releases it or its session ends, and a holder whose session was ended learns it
//! at its next confirmation. (The SQLite lease's unit tests sit beside it.)

use crate::support::pg::TestDb;
use natterjack_core::audit::ExportLeases;
use sqlx::{ConnectOptions, Connection};

#[tokio::test]
async fn one_process_holds_a_sinks_lease_until_it_releases_it_and_the_app_role_needs_no_grant() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    // Two servers of one deployment, each with its own lease connection as the app role.
    let node_a = db.store.export_leases();
    let node_b = db.store.export_leases();
    let mut a = node_a.lease("siem");
    let mut b = node_b.lease("siem");
    assert!(a.hold().await.unwrap(), "a free lease is taken");
    assert!(!b.hold().await.unwrap(), "a held lease is refused");
    assert!(a.hold().await.unwrap(), "the holder confirms it");
    assert!(!b.hold().await.unwrap());
    let mut other = node_b.lease("elastic");
    assert!(other.hold().await.unwrap(), "each sink has its own lease");

    a.release().await;
    assert!(b.hold().await.unwrap(), "released, it is taken over");
    assert!(!a.hold().await.unwrap(), "and the former holder is refused");
    b.release().await;
    other.release().await;
    a.release().await;
    db.drop_all().await;
}

#[tokio::test]
async fn a_holder_whose_session_ends_loses_the_lease_and_another_takes_it() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let leases = db.store.export_leases();
    let mut a = leases.lease("siem");
    let mut b = leases.lease("siem");
    assert!(a.hold().await.unwrap());
    assert!(!b.hold().await.unwrap());

    // An administrator ends the holder's session, as the server does for a dead client.
    let mut admin = db.admin_in_db().connect().await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l \
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = \
         (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 1, "one session holds one lock");
    // pg_terminate_backend only signals; the ended session leaves pg_stat_activity a
    // moment later, so the count of named lease connections settles at the waiting one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let named: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'natterjack export lease'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if named == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the waiting lease's connection is named, and only it is left: {named} named"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The session is gone at once: the other process takes the lease, and the former
    // holder's next confirmation fails instead of reporting a lease it no longer has.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.hold().await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "never taken over");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(a.hold().await.is_err(), "the lost lease is reported lost");
    assert!(!a.hold().await.unwrap(), "then it waits like any other");
    a.release().await;
    b.release().await;
    admin.close().await.unwrap();
    db.drop_all().await;
}
