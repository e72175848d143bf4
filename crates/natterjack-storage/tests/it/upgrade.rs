//! Upgrading a database made by an earlier version keeps every audit record, the chain's
//! bytes and the append-only triggers (schemas 3 and 4 rebuild SQLite's audit table), and
//! its accounts (schema 5 adds the links of external identities beside them).

use natterjack_core::audit::{AuditStore, Phase};
use natterjack_storage::sqlite::SqliteStore;

#[tokio::test]
async fn a_schema_2_database_keeps_its_audit_records_and_triggers_through_schemas_3_to_7() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    // A database exactly as schema 2 left it, with two records.
    let old = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        include_str!("../../migrations/sqlite/0001_initial.sql"),
        include_str!("../../migrations/sqlite/0002_audit_log.sql"),
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT;
         INSERT INTO schema_migrations VALUES (1, 'initial', 0), (2, 'audit_log', 0);
         INSERT INTO users (username, password_hash, is_admin, created_at) VALUES ('alice', '$argon2id$x', 1, 0);
         INSERT INTO audit_log VALUES
           (1, 10, 'r1', 'intent', 'rest', '192.0.2.1', 'alice', 'basic', 'POST /spaces', '', NULL, 'pending', NULL, 5, zeroblob(32)),
           (2, 11, 'r1', 'complete', 'rest', '192.0.2.1', 'alice', 'basic', 'POST /spaces', '', 201, 'allow', 'granted', 9, randomblob(32));",
    ] {
        old.execute_batch(sql).unwrap();
    }
    let before: Vec<(i64, Vec<u8>)> = old
        .prepare("SELECT id, mac FROM audit_log ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(old);

    assert_eq!(
        SqliteStore::migrate(&path, &crate::support::keyring())
            .await
            .unwrap()
            .applied,
        [3, 4, 5, 6, 7, 8, 9, 10, 11]
    );

    let store = SqliteStore::open(&path, 1, crate::support::keyring())
        .await
        .unwrap();
    let records = store.audit_in_order(0, 10).await.unwrap();
    let after: Vec<(i64, Vec<u8>)> = records.iter().map(|r| (r.id, r.mac.to_vec())).collect();
    assert_eq!(after, before);
    assert_eq!(records[1].record.phase, Phase::Complete);
    assert_eq!(records[1].record.reason.as_deref(), Some("granted"));
    assert!(records.iter().all(|r| r.record.count.is_none()));
    assert_eq!(store.export_cursor("siem").await.unwrap(), 0);
    // The account is still there, with its password, and can be linked to an identity.
    use natterjack_core::ports::Store;
    let alice = natterjack_core::domain::Username::parse("alice").unwrap();
    let found = store.find_user(&alice).await.unwrap().unwrap();
    assert!(found.admin && found.has_local_password());
    store
        .link_identity(found.id, "https://id.example", "248289761001")
        .await
        .unwrap();
    let linked = store
        .find_linked_user("https://id.example", "248289761001")
        .await
        .unwrap();
    assert_eq!(linked.map(|u| u.id), Some(found.id));
    store.close().await;

    // The rebuilt table is as append-only as the old one, even for the owner.
    let owner = rusqlite::Connection::open(&path).unwrap();
    for sql in ["UPDATE audit_log SET status = 500", "DELETE FROM audit_log"] {
        let err = owner.execute_batch(sql).expect_err(sql).to_string();
        assert!(err.contains("the audit log is append-only"), "{sql}: {err}");
    }
}
