//! The PostgreSQL roles hold exactly what they should: the app role the server connects as
//! cannot change the schema, rewrite history or reach the server's files; even the owner
//! cannot change the audit log; and the server refuses to start as anything but the app
//! role. Bootstrap and migration converge when run again.

use crate::support::pg::TestDb;
use natterjack_core::audit::{AuditRecord, AuditStore, Phase, StoredAuditRecord};
use natterjack_core::domain::{MessageText, SpaceName, Timestamp, Username};
use natterjack_core::ports::{Store, StoreError};
use natterjack_storage::PgStore;
use natterjack_storage::postgres::connect_options;
use sqlx::{ConnectOptions, Connection};
use std::time::Duration;

/// The SQLSTATE of a failed statement, or what else happened.
fn sqlstate(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match result {
        Ok(done) => format!("succeeded ({} rows)", done.rows_affected()),
        Err(sqlx::Error::Database(db)) => db.code().unwrap().into_owned(),
        Err(other) => format!("failed outside the database: {other}"),
    }
}

fn audit_record(id: i64) -> StoredAuditRecord {
    StoredAuditRecord {
        id,
        record: AuditRecord {
            time: Timestamp::now(),
            request_id: format!("req-{id}"),
            phase: Phase::Complete,
            transport: natterjack_core::audit::Transport::Rest,
            client_ip: "192.0.2.1".to_owned(),
            principal: Some("alice".to_owned()),
            auth_method: natterjack_core::audit::AuthMethod::Basic,
            operation: "GET /spaces".to_owned(),
            target: String::new(),
            status: Some(natterjack_core::audit::Status::Http(200)),
            decision: natterjack_core::audit::Decision::Allow,
            reason: None,
            duration_us: 12,
            count: None,
        },
        mac: [7; 32],
    }
}

/// Some rows in every table, so that refused statements would have something to change.
async fn seed(store: &PgStore) {
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
    store.append_audit(&[audit_record(1)]).await.unwrap();
}

#[tokio::test]
async fn every_forbidden_statement_fails_for_the_app_role_with_insufficient_privilege() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    seed(&db.store).await;

    // All of these are refused by the grants (SQLSTATE 42501) before any trigger fires:
    // the app role holds no UPDATE on audit_log, no DELETE on users, spaces or audit_log,
    // UPDATE on users only for password_hash and is_admin, on spaces and messages only for
    // the sealed value and its key id, on console_sessions only for last_seen_at, none on
    // console_pending_logins, and only SELECT on data_keys.
    let forbidden = [
        "DROP TABLE messages",
        "ALTER TABLE users ADD COLUMN evil TEXT",
        "TRUNCATE audit_log",
        "TRUNCATE messages",
        "CREATE TABLE evil (x int)",
        "CREATE TEMP TABLE evil (x int)",
        "CREATE SCHEMA evil",
        "UPDATE audit_log SET status = 200",
        "DELETE FROM audit_log",
        "DELETE FROM audit_export_cursor",
        "UPDATE audit_export_cursor SET sink = 'other'",
        "TRUNCATE audit_export_cursor",
        "UPDATE users SET username = 'mallory'",
        "UPDATE messages SET author_id = 1",
        "UPDATE spaces SET owner_id = 1",
        "UPDATE data_keys SET current = false",
        "INSERT INTO data_keys (id, kek_id, created_at, destroyed_at) VALUES (99, 'x', 0, 0)",
        "DELETE FROM data_keys",
        "UPDATE row_ids SET name = 'users'",
        "DELETE FROM row_ids",
        "TRUNCATE row_ids",
        "DELETE FROM users",
        "DELETE FROM spaces",
        "DELETE FROM schema_migrations",
        "UPDATE external_identities SET user_id = 1",
        "DELETE FROM external_identities",
        "SELECT pg_read_file('/etc/passwd')",
        "COPY messages TO PROGRAM 'id'",
        "COPY messages FROM '/etc/passwd'",
        "INSERT INTO schema_migrations VALUES (99, 'evil', 0)",
        "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'select 1'",
        "DROP TRIGGER audit_log_is_never_deleted ON audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "SET ROLE postgres",
        // A session cannot be moved to another account, renamed, made an admin's, or made
        // to outlive its absolute timeout or a password change: only its last use moves.
        "UPDATE console_sessions SET user_id = 1",
        "UPDATE console_sessions SET id_hash = id_hash",
        "UPDATE console_sessions SET is_admin = true",
        "UPDATE console_sessions SET granted_admin = true",
        "UPDATE console_sessions SET created_at = created_at + 1",
        "UPDATE console_sessions SET credential_mark = credential_mark",
        "UPDATE console_sessions SET method = 'password'",
        "TRUNCATE console_sessions",
        "DROP TABLE console_sessions",
        // A pending sign-on is kept and taken, never rewritten.
        "UPDATE console_pending_logins SET state = 'forged'",
        "UPDATE console_pending_logins SET kind = 'saml'",
        "UPDATE console_pending_logins SET expires_at = expires_at + 1",
        "UPDATE console_pending_logins SET id_hash = id_hash",
        "TRUNCATE console_pending_logins",
        "DROP TABLE console_pending_logins",
    ];
    let mut wrong = Vec::new();
    for sql in forbidden {
        let code = sqlstate(sqlx::query(sql).execute(db.store.pool()).await);
        if code != "42501" {
            wrong.push(format!("{sql}: {code}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as insufficient_privilege: {wrong:#?}"
    );
    // What the grants allow on sealed content, the triggers narrow to re-sealing under
    // another live key: an overwrite under the same key, or under no key, is refused.
    for (sql, message) in [
        (
            "UPDATE spaces SET name = '\\x00'::bytea",
            "spaces are immutable",
        ),
        (
            "UPDATE messages SET body = '\\x00'::bytea, key_id = 99",
            "messages are immutable",
        ),
        ("UPDATE row_ids SET next = 1", "row ids only move forward"),
    ] {
        let err = sqlx::query(sql)
            .execute(db.store.pool())
            .await
            .expect_err(sql)
            .to_string();
        assert!(err.contains(message), "{sql}: {err}");
    }

    // PostgreSQL answers a GRANT by a role that holds the privilege without GRANT OPTION
    // with a WARNING ("no privileges were granted"), not an error: the statement
    // "succeeds" and grants nothing. Check the nothing.
    for sql in [
        "GRANT SELECT ON users TO PUBLIC",
        "GRANT ALL ON audit_log TO PUBLIC",
        "GRANT INSERT ON audit_log TO pg_monitor",
    ] {
        sqlx::query(sql).execute(db.store.pool()).await.unwrap();
    }
    let others: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT c.relname || ' to ' || a.grantee::regrole::text \
         FROM pg_class c, aclexplode(c.relacl) a \
         WHERE c.relnamespace = 'public'::regnamespace AND a.grantee NOT IN (c.relowner, $1::regrole)",
    )
    .bind(db.app.get_username())
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    assert!(others.is_empty(), "granted to others: {others:?}");

    // The data is untouched.
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM spaces), \
         (SELECT count(*) FROM messages), (SELECT count(*) FROM audit_log)",
    )
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert_eq!(counts, (1, 1, 1, 1));
    let found = db
        .store
        .find_user(&Username::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(found.unwrap().username.as_str(), "alice");
    db.drop_all().await;
}

#[tokio::test]
async fn even_the_owner_cannot_update_delete_or_truncate_the_audit_log() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    seed(&db.store).await;
    let mut owner = db.owner.connect().await.unwrap();
    for sql in [
        "UPDATE audit_log SET status = 500",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "UPDATE messages SET body = 'forged'",
        "DELETE FROM spaces",
        "DELETE FROM users",
    ] {
        // The owner holds every privilege: the triggers are what refuse (raise_exception).
        let err = sqlx::query(sql).execute(&mut owner).await.expect_err(sql);
        let db_err = err.as_database_error().expect(sql);
        assert_eq!(db_err.code().as_deref(), Some("P0001"), "{sql}: {err}");
        let message = db_err.message();
        assert!(
            message.contains("append-only")
                || message.contains("immutable")
                || message.contains("never deleted"),
            "{sql}: {message}"
        );
    }
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(kept, 1);
    owner.close().await.unwrap();
    db.drop_all().await;
}

#[tokio::test]
async fn the_server_refuses_to_open_as_a_superuser_and_says_why() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let result = PgStore::open(
        &db.admin_in_db(),
        1,
        Duration::from_secs(5),
        crate::support::keyring(),
    )
    .await;
    let Err(StoreError::Internal(message)) = result else {
        panic!("opened as a superuser");
    };
    assert!(
        message.starts_with(&format!(
            "refusing to serve as PostgreSQL role \"{}\": it is a superuser",
            db.admin.get_username()
        )),
        "{message}"
    );
    assert!(message.contains("natterjack db init"), "{message}");
    db.drop_all().await;
}

#[tokio::test]
async fn the_server_refuses_to_open_as_the_owner_because_it_owns_the_tables() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let result = PgStore::open(
        &db.owner,
        1,
        Duration::from_secs(5),
        crate::support::keyring(),
    )
    .await;
    let Err(StoreError::Internal(message)) = result else {
        panic!("opened as the owner");
    };
    assert!(
        message.starts_with(&format!(
            "refusing to serve as PostgreSQL role \"{}\":",
            db.owner.get_username()
        )),
        "{message}"
    );
    assert!(
        message.contains("it owns tables or sequences ("),
        "{message}"
    );
    assert!(message.contains("it owns the database"), "{message}");
    assert!(message.contains("it owns schemas (public)"), "{message}");
    assert!(!message.contains("superuser"), "{message}");
    db.drop_all().await;
}

#[tokio::test]
async fn a_grant_the_api_never_uses_stops_the_server_until_migrate_reapplies_the_grants() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let app = db.app.get_username().to_owned();
    let mut admin = sqlx::PgConnection::connect_with(&db.admin_in_db())
        .await
        .unwrap();
    // Test-only DDL on a role name this suite generated.
    sqlx::raw_sql(&format!(
        "GRANT UPDATE, TRUNCATE ON audit_log TO {app}; GRANT UPDATE ON console_sessions TO {app}"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let result = PgStore::open(
        &db.app,
        1,
        Duration::from_secs(5),
        crate::support::keyring(),
    )
    .await;
    let Err(StoreError::Internal(message)) = result else {
        panic!("opened with UPDATE on the audit log");
    };
    assert!(
        message
            .contains("table privileges the API never uses (audit_log TRUNCATE, audit_log UPDATE, console_sessions UPDATE)"),
        "{message}"
    );
    PgStore::migrate(&db.owner, &app, &crate::support::keyring())
        .await
        .unwrap();
    PgStore::open(
        &db.app,
        1,
        Duration::from_secs(5),
        crate::support::keyring(),
    )
    .await
    .expect("migrate re-applied exactly the grants the API needs");
    drop(admin);
    db.drop_all().await;
}

#[tokio::test]
async fn init_and_migrate_run_twice_change_nothing_the_second_time() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let report = PgStore::init(&db.admin, &db.owner, &db.app).await.unwrap();
    let changes = [
        "created",
        "password changed",
        "owner changed",
        "attributes reset",
        "privileges set",
        "password set",
        "removed from role",
    ];
    for line in &report {
        assert!(
            !changes.iter().any(|change| line.contains(change)),
            "second init changed something: {report:#?}"
        );
    }
    assert!(
        report.iter().any(|l| l.ends_with(": exists")),
        "{report:#?}"
    );
    assert!(
        report.iter().any(|l| l.contains("password unchanged")),
        "{report:#?}"
    );
    let applied = PgStore::migrate(&db.owner, db.app.get_username(), &crate::support::keyring())
        .await
        .unwrap();
    assert!(applied.applied.is_empty(), "{applied:?}");
    // The store still works after the grants were reapplied.
    db.store.ping().await.unwrap();
    db.store.append_audit(&[audit_record(1)]).await.unwrap();
    db.drop_all().await;
}

#[tokio::test]
async fn init_stores_scram_verifiers_and_converges_a_role_given_too_much() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut admin = db.admin.connect().await.unwrap();
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT rolname::text, rolpassword FROM pg_authid WHERE rolname = ANY($1) ORDER BY rolname",
    )
    .bind(vec![
        db.app.get_username().to_owned(),
        db.owner.get_username().to_owned(),
    ])
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(stored.len(), 2);
    for (role, verifier) in &stored {
        assert!(
            verifier.starts_with("SCRAM-SHA-256$4096:"),
            "{role}: {verifier}"
        );
    }

    // Someone gives the app role powers and a membership; init takes them away again.
    for sql in [
        "ALTER ROLE %I CREATEDB CREATEROLE INHERIT",
        "GRANT pg_read_server_files TO %I",
    ] {
        let statement: String = sqlx::query_scalar("SELECT format($1, $2)")
            .bind(sql)
            .bind(db.app.get_username())
            .fetch_one(&mut admin)
            .await
            .unwrap();
        sqlx::raw_sql(&statement).execute(&mut admin).await.unwrap();
    }
    let refused = PgStore::open(
        &db.app,
        1,
        Duration::from_secs(5),
        crate::support::keyring(),
    )
    .await;
    let Err(StoreError::Internal(message)) = refused else {
        panic!("opened as an app role with CREATEDB");
    };
    assert!(message.contains("it has CREATEDB"), "{message}");
    assert!(message.contains("it has CREATEROLE"), "{message}");
    assert!(message.contains("pg_read_server_files"), "{message}");

    let report = PgStore::init(&db.admin, &db.owner, &db.app).await.unwrap();
    assert!(
        report.iter().any(|l| l.contains("attributes reset")),
        "{report:#?}"
    );
    assert!(
        report
            .iter()
            .any(|l| l.contains("removed from role pg_read_server_files")),
        "{report:#?}"
    );
    let attributes: (bool, bool, bool) = sqlx::query_as(
        "SELECT rolcreatedb, rolcreaterole, rolinherit FROM pg_roles WHERE rolname = $1",
    )
    .bind(db.app.get_username())
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(attributes, (false, false, false));
    PgStore::open(
        &db.app,
        1,
        Duration::from_secs(5),
        crate::support::keyring(),
    )
    .await
    .unwrap()
    .close()
    .await;
    admin.close().await.unwrap();
    db.drop_all().await;
}

#[tokio::test]
async fn the_pool_reconnects_after_its_connections_are_killed() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    db.store.ping().await.unwrap();
    let mut admin = db.admin.connect().await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1) t",
    )
    .bind(db.app.get_username())
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(killed >= 1);
    admin.close().await.unwrap();
    // The dead connection is noticed before use and replaced.
    db.store.ping().await.unwrap();
    let found = db
        .store
        .find_user(&Username::parse("nobody").unwrap())
        .await
        .unwrap();
    assert!(found.is_none());
    db.drop_all().await;
}

#[tokio::test]
async fn opening_against_no_server_is_unavailable() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let options = connect_options("postgres://nj_app@127.0.0.1:1/natterjack", None).unwrap();
    let result = PgStore::open(
        &options,
        1,
        Duration::from_secs(2),
        crate::support::keyring(),
    )
    .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn init_refuses_names_it_would_have_to_quote_before_connecting() {
    let admin = connect_options("postgres://postgres@127.0.0.1:1/test", None).unwrap();
    let good = connect_options("postgres://nj_owner@127.0.0.1:1/natterjack", None).unwrap();
    for (owner, app) in [
        (
            "postgres://Evil@127.0.0.1:1/natterjack",
            "postgres://nj_app@127.0.0.1:1/natterjack",
        ),
        (
            "postgres://nj_owner@127.0.0.1:1/natterjack",
            "postgres://nj_app@127.0.0.1:1/nat%22terjack",
        ),
        (
            "postgres://nj_owner@127.0.0.1:1/natterjack",
            "postgres://nj_owner@127.0.0.1:1/natterjack",
        ),
        (
            "postgres://nj_owner@127.0.0.1:1/natterjack",
            "postgres://nj_app@127.0.0.1:1/other",
        ),
        (
            "postgres://nj_owner@127.0.0.1:1/natterjack",
            "postgres://postgres@127.0.0.1:1/natterjack",
        ),
        (
            "postgres://pg_owner@127.0.0.1:1/natterjack",
            "postgres://nj_app@127.0.0.1:1/natterjack",
        ),
        (
            "postgres://nj_owner@127.0.0.1:1/postgres",
            "postgres://nj_app@127.0.0.1:1/postgres",
        ),
    ] {
        let owner = connect_options(owner, None).unwrap();
        let app = connect_options(app, None).unwrap();
        // Port 1 refuses connections: an Internal error here was raised before connecting.
        let result = PgStore::init(&admin, &owner, &app).await;
        assert!(
            matches!(result, Err(StoreError::Internal(_))),
            "{} / {}: {:?}",
            owner.get_username(),
            app.get_username(),
            result
        );
    }
    let result = PgStore::migrate(&good, "nj_owner", &crate::support::keyring()).await;
    assert!(matches!(result, Err(StoreError::Internal(_))), "{result:?}");
}
