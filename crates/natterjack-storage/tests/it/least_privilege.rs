//! The server's SQLite connections cannot do what the API never needs.

use natterjack_core::domain::{MessageText, SpaceName, Timestamp, Username};
use natterjack_core::ports::Store;
use natterjack_core::session::{NewSession, SessionKey, SessionStore};
use natterjack_storage::SqliteStore;
use secrecy::SecretString;

async fn fresh_store(dir: &tempfile::TempDir) -> SqliteStore {
    let path = dir.path().join("natterjack.db");
    SqliteStore::migrate(&path, &crate::support::keyring())
        .await
        .unwrap();
    SqliteStore::open(&path, 2, crate::support::keyring())
        .await
        .unwrap()
}

#[tokio::test]
async fn every_forbidden_statement_fails_on_a_server_connection() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh_store(&dir).await;
    let alice = store
        .create_user(&Username::parse("alice").unwrap(), "$argon2id$stub")
        .await
        .unwrap();
    let space = store
        .create_space(&SpaceName::parse("general").unwrap(), alice.id)
        .await
        .unwrap();
    store
        .insert_message(space.id, alice.id, &MessageText::parse("hello").unwrap())
        .await
        .unwrap();

    let forbidden = [
        "CREATE TABLE evil (x INTEGER)",
        "CREATE TEMP TABLE evil (x INTEGER)",
        "DROP TABLE messages",
        "ALTER TABLE users ADD COLUMN evil TEXT",
        "CREATE INDEX evil ON users (password_hash)",
        "CREATE TRIGGER evil AFTER INSERT ON users BEGIN SELECT 1; END",
        "DROP TRIGGER spaces_are_only_resealed",
        "CREATE VIEW evil AS SELECT * FROM users",
        "ATTACH DATABASE '/tmp/evil.db' AS evil",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA writable_schema = ON",
        "UPDATE users SET username = 'mallory'",
        "UPDATE spaces SET owner_id = 1",
        "UPDATE messages SET author_id = 1",
        "UPDATE data_keys SET current = 0",
        "INSERT INTO data_keys (id, kek_id, created_at, destroyed_at) VALUES (99, 'x', 0, 0)",
        "DELETE FROM data_keys",
        "UPDATE row_ids SET name = 'users'",
        "DELETE FROM row_ids",
        "DELETE FROM users",
        "DELETE FROM spaces",
        "DELETE FROM schema_migrations",
        "UPDATE external_identities SET user_id = 1",
        "DELETE FROM external_identities",
        "UPDATE audit_log SET status = 200",
        "DELETE FROM audit_log",
        "DROP TRIGGER audit_log_is_never_deleted",
        "DELETE FROM audit_export_cursor",
        "DELETE FROM cache_epoch",
        "UPDATE audit_export_cursor SET sink = 'other'",
        "DROP TRIGGER audit_export_cursor_only_moves_forward",
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'evil', 0)",
        "VACUUM INTO '/tmp/natterjack-copy.db'",
        // A session cannot be moved to another account, renamed, made an admin's, or made
        // to outlive its absolute timeout or a password change: only its last use moves.
        "UPDATE console_sessions SET user_id = 1",
        "UPDATE console_sessions SET id_hash = id_hash",
        "UPDATE console_sessions SET is_admin = 1",
        "UPDATE console_sessions SET granted_admin = 1",
        "UPDATE console_sessions SET created_at = created_at + 1",
        "UPDATE console_sessions SET credential_mark = credential_mark",
        "UPDATE console_sessions SET method = 'password'",
        "DROP TABLE console_sessions",
        // A pending sign-on is kept and taken, never rewritten.
        "UPDATE console_pending_logins SET state = 'forged'",
        "UPDATE console_pending_logins SET kind = 'saml'",
        "UPDATE console_pending_logins SET expires_at = expires_at + 1",
        "UPDATE console_pending_logins SET id_hash = id_hash",
        "DROP TABLE console_pending_logins",
    ];
    for sql in forbidden {
        // On the writing connection, and on a reading one (which is read-only besides).
        let written = store
            .on_server_connection(move |c| c.execute_batch(sql))
            .await;
        let read = store.on_reading_connection(|c| c.execute_batch(sql));
        for result in [written, read] {
            let err = result.expect_err(sql).to_string();
            // The writing connection is always inside its group's transaction, where
            // SQLite refuses VACUUM before the authorizer is asked.
            assert!(
                err.contains("not authorized")
                    || err.contains("authorization denied")
                    || (sql.starts_with("VACUUM") && err.contains("within a transaction")),
                "{sql}: {err}"
            );
        }
    }
    // The data is untouched.
    let found = store
        .find_user(&Username::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(
        found.map(|u| u.username.as_str().to_owned()).as_deref(),
        Some("alice")
    );
    let kept: i64 = store
        .on_reading_connection(|c| c.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn the_statements_the_api_needs_still_work_under_the_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh_store(&dir).await;
    let alice = store
        .create_user(&Username::parse("alice").unwrap(), "$argon2id$a")
        .await
        .unwrap();
    let bob = store
        .create_user(&Username::parse("bob").unwrap(), "$argon2id$b")
        .await
        .unwrap();
    store
        .set_password_hash(alice.id, "$argon2id$new")
        .await
        .unwrap();
    store.set_admin(alice.id, true).await.unwrap();
    let space = store
        .create_space(&SpaceName::parse("s").unwrap(), alice.id)
        .await
        .unwrap();
    let granted = store
        .grant(
            space.id,
            bob.id,
            natterjack_core::domain::Permissions::READ,
            alice.id,
        )
        .await
        .unwrap();
    assert_eq!(granted.to_string(), "r");
    let left = store
        .revoke(space.id, bob.id, natterjack_core::domain::Permissions::READ)
        .await
        .unwrap();
    assert!(left.is_empty());
    let m = store
        .insert_message(space.id, alice.id, &MessageText::parse("x").unwrap())
        .await
        .unwrap();
    assert!(store.delete_message(space.id, m.id).await.unwrap());
    let again = store
        .insert_message(space.id, alice.id, &MessageText::parse("y").unwrap())
        .await
        .unwrap();
    assert!(
        again.id > m.id,
        "message ids are never reused after a delete"
    );

    // The console's sessions: open, find, touch, end (one, then all of a user's), and a
    // pending sign-on kept and taken.
    let key = |n: u8| SessionKey::from_bytes(&[n; 32]).unwrap();
    for n in [1, 2] {
        store
            .create_session(&NewSession {
                key: key(n),
                user: bob.id,
                method: "password".to_owned(),
                credential_mark: [n; 16],
                admin: false,
                granted_admin: false,
                created_at: Timestamp::from_micros(1),
                client_ip: "192.0.2.1".to_owned(),
            })
            .await
            .unwrap();
    }
    store
        .touch_session(&key(1), Timestamp::from_micros(2))
        .await
        .unwrap();
    let found = store.find_session(&key(1)).await.unwrap().unwrap();
    assert_eq!(found.last_seen_at, Timestamp::from_micros(2));
    assert_eq!(store.list_sessions().await.unwrap().len(), 2);
    assert!(store.delete_session(&key(1)).await.unwrap());
    assert_eq!(store.delete_sessions_of(bob.id).await.unwrap(), 1);
    store
        .put_pending_login(
            &key(3),
            "oidc",
            &SecretString::from("state"),
            Timestamp::from_micros(1),
            Timestamp::from_micros(100),
        )
        .await
        .unwrap();
    assert!(
        store
            .take_pending_login(&key(3), "oidc")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn usernames_are_unique_regardless_of_case() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh_store(&dir).await;
    store
        .create_user(&Username::parse("alice").unwrap(), "h")
        .await
        .unwrap();
    let dup = store
        .create_user(&Username::parse("ALICE").unwrap(), "h")
        .await;
    assert!(matches!(
        dup,
        Err(natterjack_core::ports::StoreError::Conflict)
    ));
}

#[tokio::test]
async fn a_server_refuses_to_open_an_unmigrated_database() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(&dir.path().join("empty.db"), 1, crate::support::keyring())
        .await
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("natterjack migrate")));
}

#[tokio::test]
async fn triggers_refuse_changes_to_immutable_rows_even_on_a_connection_without_the_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh_store(&dir).await;
    let alice = store
        .create_user(&Username::parse("alice").unwrap(), "h")
        .await
        .unwrap();
    let space = store
        .create_space(&SpaceName::parse("s").unwrap(), alice.id)
        .await
        .unwrap();
    store
        .insert_message(space.id, alice.id, &MessageText::parse("m").unwrap())
        .await
        .unwrap();
    let record = natterjack_core::audit::AuditRecord {
        time: natterjack_core::domain::Timestamp::now(),
        request_id: "r1".into(),
        phase: natterjack_core::audit::Phase::Complete,
        transport: natterjack_core::audit::Transport::Rest,
        client_ip: "127.0.0.1".into(),
        principal: None,
        auth_method: natterjack_core::audit::AuthMethod::None,
        operation: "GET /health".into(),
        target: String::new(),
        status: Some(natterjack_core::audit::Status::Http(200)),
        decision: natterjack_core::audit::Decision::Allow,
        reason: None,
        duration_us: 1,
        count: None,
    };
    let stored = natterjack_core::audit::StoredAuditRecord {
        id: 1,
        record,
        mac: [7; 32],
    };
    natterjack_core::audit::AuditStore::append_audit(&store, &[stored])
        .await
        .unwrap();
    natterjack_core::audit::AuditStore::advance_export_cursor(&store, "siem", 1)
        .await
        .unwrap();
    // An owner connection: what a stolen shell on the host, not the API, would have.
    let owner = rusqlite::Connection::open(dir.path().join("natterjack.db")).unwrap();
    for (sql, message) in [
        ("UPDATE spaces SET name = x'00'", "spaces are immutable"),
        (
            "UPDATE spaces SET owner_id = 2, key_id = 2",
            "spaces are immutable",
        ),
        ("DELETE FROM spaces", "spaces are never deleted"),
        ("UPDATE messages SET body = x'00'", "messages are immutable"),
        (
            "UPDATE messages SET body = x'00', key_id = 99",
            "messages are immutable",
        ),
        (
            "DELETE FROM data_keys",
            "data keys are destroyed, never deleted",
        ),
        ("DELETE FROM users", "users are never deleted"),
        (
            "UPDATE audit_log SET status = 200",
            "the audit log is append-only",
        ),
        ("DELETE FROM audit_log", "the audit log is append-only"),
        (
            "UPDATE audit_export_cursor SET delivered_id = 0",
            "an export cursor only moves forward",
        ),
        (
            "DELETE FROM audit_export_cursor",
            "export cursors are never deleted",
        ),
        (
            "UPDATE cache_epoch SET n = 0",
            "the cache epoch only moves forward",
        ),
        (
            "DELETE FROM cache_epoch",
            "the cache epoch is never deleted",
        ),
    ] {
        let err = owner.execute_batch(sql).expect_err(sql).to_string();
        assert!(err.contains(message), "{sql}: {err}");
    }
}
