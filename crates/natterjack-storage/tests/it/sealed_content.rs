//! Encryption at rest, attacked through the files: the bytes on disk (SQLite file and WAL,
//! a `pg_dump`) hold no message or space name; a ciphertext moved, altered, truncated or
//! relabelled gives a clear error naming its row, never plaintext or a panic; a wrong
//! key-encryption key is refused naming the data key; rotation re-seals every row; an
//! older database's plaintext is sealed by the upgrade.

use crate::support::keyring;
use crate::support::pg::TestDb;
use natterjack_core::domain::{MessageText, SpaceName, Username};
use natterjack_core::ports::{MessagePage, Store, StoreError};
use natterjack_storage::rotation::{ResealCursor, Resealing};
use natterjack_storage::sealing::{KeyEncryptionKey, Keyring};
use natterjack_storage::{PgStore, SqliteStore};
use std::path::Path;
use std::sync::Arc;

const SECRET_MESSAGE: &str = "Zürich meeting moved: ünïcødé ✓ 会议 codeword PELICAN-7731";
const SECRET_SPACE: &str = "Project Kingfisher 鸟";

async fn sqlite_store(path: &Path) -> SqliteStore {
    SqliteStore::migrate(path, &keyring()).await.unwrap();
    SqliteStore::open(path, 2, keyring()).await.unwrap()
}

/// A user, a space and a message with the secret texts; returns (space id, message id).
async fn seed(store: &dyn Store) -> (i64, i64) {
    let alice = store
        .create_user(&Username::parse("alice").unwrap(), "$argon2id$stub")
        .await
        .unwrap();
    let space = store
        .create_space(&SpaceName::parse(SECRET_SPACE).unwrap(), alice.id)
        .await
        .unwrap();
    let message = store
        .insert_message(
            space.id,
            alice.id,
            &MessageText::parse(SECRET_MESSAGE).unwrap(),
        )
        .await
        .unwrap();
    (space.id.get(), message.id.get())
}

/// Every message of `space`, page after page, newest first.
async fn all_messages(
    store: &dyn Store,
    space: natterjack_core::domain::SpaceId,
) -> Vec<natterjack_core::ports::MessageRecord> {
    let mut all: Vec<natterjack_core::ports::MessageRecord> = Vec::new();
    loop {
        let page = MessagePage {
            since: None,
            after: all.last().map(|m| m.id),
            limit: natterjack_core::domain::Limit::parse("100").unwrap(),
        };
        let batch = store.messages_in(space, page).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every file of the database (the main file, the WAL, the shared memory), as bytes.
fn files_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let file = format!("{}{suffix}", path.display());
            std::fs::read(&file).ok().map(|bytes| (file, bytes))
        })
        .collect()
}

fn assert_no_plaintext(path: &Path) {
    for (file, bytes) in files_of(path) {
        for secret in [SECRET_MESSAGE, SECRET_SPACE, "PELICAN-7731", "Kingfisher"] {
            assert!(!contains(&bytes, secret), "{file} contains {secret:?}");
        }
    }
}

/// A connection without the authorizer: what someone holding the file has.
fn owner_connection(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test]
async fn the_sqlite_file_and_its_wal_hold_no_message_or_space_name_yet_the_store_returns_them_exactly()
 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    let store = sqlite_store(&path).await;
    let (space, _) = seed(&store).await;
    // While the server runs, the newest pages are in the WAL: check it before and after
    // the checkpoint that closing makes.
    assert_no_plaintext(&path);
    let space = natterjack_core::domain::SpaceId::from_i64(space).unwrap();
    let found = store.find_space(space).await.unwrap().unwrap();
    assert_eq!(found.name.as_str(), SECRET_SPACE);
    let page = MessagePage {
        since: None,
        after: None,
        limit: natterjack_core::domain::Limit::parse("10").unwrap(),
    };
    let messages = store.messages_in(space, page).await.unwrap();
    assert_eq!(messages[0].body.as_str(), SECRET_MESSAGE);
    store.close().await;
    assert_no_plaintext(&path);
}

#[tokio::test]
async fn a_ciphertext_moved_altered_truncated_or_relabelled_is_refused_naming_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    let store = sqlite_store(&path).await;
    let (space_a, message_a) = seed(&store).await;
    let bob = store
        .create_user(&Username::parse("bob").unwrap(), "$argon2id$stub")
        .await
        .unwrap();
    let space_b = store
        .create_space(&SpaceName::parse("bob's").unwrap(), bob.id)
        .await
        .unwrap();
    let message_b = store
        .insert_message(
            space_b.id,
            bob.id,
            &MessageText::parse("bob's note").unwrap(),
        )
        .await
        .unwrap();
    let owner = owner_connection(&path);
    let (sealed_a, key_a): (Vec<u8>, i64) = owner
        .query_row(
            "SELECT body, key_id FROM messages WHERE id = ?1",
            [message_a],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // The triggers let an update through only when the key id changes, as a re-seal does;
    // an attacker with the file can drop them, so do that first, as they would.
    owner
        .execute_batch(
            "DROP TRIGGER messages_are_only_resealed; DROP TRIGGER spaces_are_only_resealed",
        )
        .unwrap();
    let mut flipped = sealed_a.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let truncated = sealed_a[..sealed_a.len() - 3].to_vec();
    let cases: Vec<(&str, Vec<u8>, i64, &str)> = vec![
        (
            "copied to another row and space",
            sealed_a.clone(),
            key_a,
            "does not open",
        ),
        ("one byte flipped", flipped, key_a, "does not open"),
        ("truncated", truncated, key_a, "does not open"),
        (
            "relabelled with another key id",
            sealed_a.clone(),
            key_a + 1,
            "data key",
        ),
    ];
    for (what, bytes, key, expected) in cases {
        owner
            .execute(
                "UPDATE messages SET body = ?1, key_id = ?2 WHERE id = ?3",
                (&bytes, key, message_b.id.get()),
            )
            .unwrap();
        let err = store
            .find_message(space_b.id, message_b.id)
            .await
            .expect_err(what);
        let StoreError::Unreadable(detail) = &err else {
            panic!("{what}: expected Unreadable, got {err:?}");
        };
        let row = format!("messages.body of row {}", message_b.id.get());
        assert!(detail.contains(&row), "{what}: {detail}");
        assert!(detail.contains(expected), "{what}: {detail}");
        assert!(!detail.contains("PELICAN"), "{what}: {detail}");
    }
    // A space name moved to another space does not open either.
    let (name_a, name_key): (Vec<u8>, i64) = owner
        .query_row(
            "SELECT name, key_id FROM spaces WHERE id = ?1",
            [space_a],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    owner
        .execute(
            "UPDATE spaces SET name = ?1, key_id = ?2 WHERE id = ?3",
            (name_a, name_key, space_b.id.get()),
        )
        .unwrap();
    let err = store.find_space(space_b.id).await.expect_err("moved name");
    assert!(
        matches!(&err, StoreError::Unreadable(d) if d.contains("spaces.name of row") && d.contains("does not open")),
        "{err:?}"
    );
    drop(owner);
    // The original row still opens: damage stays with the damaged row.
    let space_a = natterjack_core::domain::SpaceId::from_i64(space_a).unwrap();
    assert_eq!(
        store
            .find_space(space_a)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_str(),
        SECRET_SPACE
    );
}

#[tokio::test]
async fn a_wrong_key_encryption_key_is_refused_at_open_naming_the_data_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    sqlite_store(&path).await.close().await;
    let stranger = Arc::new(Keyring::new(KeyEncryptionKey::generate().unwrap()));
    let err = SqliteStore::open(&path, 1, stranger.clone())
        .await
        .err()
        .expect("a wrong key must be refused")
        .to_string();
    assert!(
        err.contains("data key 1 is wrapped by key-encryption key"),
        "{err}"
    );
    assert!(err.contains(stranger.kek().id()), "{err}");
    let again = SqliteStore::migrate(&path, &stranger)
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("data key 1"), "{again}");
}

#[tokio::test]
async fn rotation_re_seals_every_row_under_the_new_key_and_frees_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    let store = sqlite_store(&path).await;
    let (space, _) = seed(&store).await;
    let space = natterjack_core::domain::SpaceId::from_i64(space).unwrap();
    let alice = store
        .find_user(&Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    for i in 0..30 {
        store
            .insert_message(
                space,
                alice.id,
                &MessageText::parse(&format!("old {i}")).unwrap(),
            )
            .await
            .unwrap();
    }
    let new_key = SqliteStore::rotate_key(&path, &keyring()).await.unwrap();
    assert_eq!(new_key, 2);
    // Not destroyable while rows use it.
    let refused = SqliteStore::destroy_key(&path, 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("still seals 31 messages and 1 space names"),
        "{refused}"
    );
    // The server learns of the new key, writes under it, and re-seals in small batches.
    store.reload_keys().await.unwrap();
    store
        .insert_message(space, alice.id, &MessageText::parse("new").unwrap())
        .await
        .unwrap();
    let mut cursor = ResealCursor::default();
    let mut batches = 0;
    loop {
        let batch = store.reseal_batch(cursor, 7).await.unwrap();
        assert_eq!(batch.unreadable, 0);
        cursor = batch.cursor;
        batches += 1;
        if batch.finished {
            break;
        }
    }
    assert!(batches >= 5, "{batches} batches");
    let usage = store.key_usage().await.unwrap();
    assert_eq!(
        (usage[0].key, usage[0].messages, usage[0].spaces),
        (1, 0, 0)
    );
    assert_eq!(
        (usage[1].key, usage[1].messages, usage[1].spaces),
        (2, 32, 1)
    );
    assert!(usage[1].current && !usage[0].current);
    // Every row still reads back exactly.
    let page = MessagePage {
        since: None,
        after: None,
        limit: natterjack_core::domain::Limit::parse("100").unwrap(),
    };
    let bodies: Vec<String> = store
        .messages_in(space, page)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body.as_str().to_owned())
        .collect();
    assert_eq!(bodies.len(), 32);
    assert!(bodies.contains(&SECRET_MESSAGE.to_owned()) && bodies.contains(&"old 0".to_owned()));
    // Now the old key can go, once; the current one never.
    SqliteStore::destroy_key(&path, 1).await.unwrap();
    let twice = SqliteStore::destroy_key(&path, 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(twice.contains("destroyed already"), "{twice}");
    let current = SqliteStore::destroy_key(&path, 2)
        .await
        .unwrap_err()
        .to_string();
    assert!(current.contains("is the current key"), "{current}");
    store.reload_keys().await.unwrap();
    assert!(store.key_usage().await.unwrap()[0].destroyed);
    store.close().await;
}

#[tokio::test]
async fn rotating_the_key_encryption_key_re_wraps_the_data_keys_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    let store = sqlite_store(&path).await;
    seed(&store).await;
    store.close().await;
    let body = |path: &Path| -> Vec<u8> {
        owner_connection(path)
            .query_row("SELECT body FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    let before = body(&path);
    let next = KeyEncryptionKey::generate().unwrap();
    let next_hex = next.to_hex();
    assert_eq!(
        SqliteStore::rewrap_keys(&path, &keyring(), &next)
            .await
            .unwrap(),
        1
    );
    let after = body(&path);
    assert_eq!(before, after, "the rows are untouched");
    // The old key-encryption key no longer opens the data keys; the new one does.
    assert!(SqliteStore::open(&path, 1, keyring()).await.is_err());
    let rekeyed = Arc::new(Keyring::new(
        KeyEncryptionKey::parse_hex(&next_hex).unwrap(),
    ));
    let store = SqliteStore::open(&path, 1, rekeyed).await.unwrap();
    let alice = store
        .find_user(&Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.spaces_of(alice.id).await.unwrap()[0].name.as_str(),
        SECRET_SPACE
    );
    store.close().await;
}

#[tokio::test]
async fn a_schema_5_database_with_plaintext_rows_is_sealed_by_the_upgrade_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    let old = owner_connection(&path);
    old.pragma_update(None, "journal_mode", "WAL").unwrap();
    for sql in [
        include_str!("../../migrations/sqlite/0001_initial.sql"),
        include_str!("../../migrations/sqlite/0002_audit_log.sql"),
        include_str!("../../migrations/sqlite/0003_audit_export.sql"),
        include_str!("../../migrations/sqlite/0004_audit_summaries.sql"),
        include_str!("../../migrations/sqlite/0005_external_identities.sql"),
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT;
         INSERT INTO schema_migrations VALUES (1, 'initial', 0), (2, 'audit_log', 0), (3, 'audit_export', 0), (4, 'audit_summaries', 0), (5, 'external_identities', 0);
         INSERT INTO users (username, password_hash, is_admin, created_at) VALUES ('alice', '$argon2id$x', 0, 0);",
    ] {
        old.execute_batch(sql).unwrap();
    }
    old.execute(
        "INSERT INTO spaces (name, owner_id, created_at) VALUES (?1, 1, 0)",
        [SECRET_SPACE],
    )
    .unwrap();
    for i in 0..1500 {
        let body = if i == 700 {
            SECRET_MESSAGE.to_owned()
        } else {
            format!("message {i}")
        };
        old.execute(
            "INSERT INTO messages (space_id, author_id, body, created_at) VALUES (1, 1, ?1, ?2)",
            (body, i),
        )
        .unwrap();
    }
    drop(old);
    assert!(contains(&std::fs::read(&path).unwrap(), "PELICAN-7731"));

    let done = SqliteStore::migrate(&path, &keyring()).await.unwrap();
    assert_eq!(done.applied, [6, 7, 8, 9, 10, 11]);
    assert_eq!(done.sealed, 1501);
    assert_no_plaintext(&path);

    let store = SqliteStore::open(&path, 1, keyring()).await.unwrap();
    let space = natterjack_core::domain::SpaceId::from_i64(1).unwrap();
    assert_eq!(
        store
            .find_space(space)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_str(),
        SECRET_SPACE
    );
    let all = all_messages(&store, space).await;
    assert_eq!(all.len(), 1500);
    assert!(all.iter().any(|m| m.body.as_str() == SECRET_MESSAGE));
    assert!(all.iter().any(|m| m.body.as_str() == "message 1499"));
    store.close().await;
}

#[tokio::test]
async fn a_pg_dump_holds_no_message_or_space_name_and_moved_ciphertexts_do_not_open() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (space, message) = seed(&db.store).await;
    let space = natterjack_core::domain::SpaceId::from_i64(space).unwrap();
    assert_eq!(
        db.store
            .find_space(space)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_str(),
        SECRET_SPACE
    );
    let dump = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(format!(
            "{}/{}",
            crate::support::pg::admin_url().rsplit_once('/').unwrap().0,
            db.name
        ))
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(
        contains(&dump.stdout, "COPY public.messages"),
        "the dump has the table"
    );
    for secret in [SECRET_MESSAGE, SECRET_SPACE, "PELICAN-7731", "Kingfisher"] {
        assert!(
            !contains(&dump.stdout, secret),
            "the dump contains {secret:?}"
        );
    }
    // A second message; its ciphertext copied over the first one's does not open.
    let alice = db
        .store
        .find_user(&Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    let other = db
        .store
        .insert_message(space, alice.id, &MessageText::parse("another").unwrap())
        .await
        .unwrap();
    let mut owner = sqlx::ConnectOptions::connect(db.owner.options())
        .await
        .unwrap();
    sqlx::raw_sql("ALTER TABLE messages DISABLE TRIGGER messages_are_only_resealed")
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE messages SET body = (SELECT body FROM messages WHERE id = $1) WHERE id = $2",
    )
    .bind(other.id.get())
    .bind(message)
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::Connection::close(owner).await.unwrap();
    let id = natterjack_core::domain::MessageId::from_i64(message).unwrap();
    let err = db.store.find_message(space, id).await.expect_err("moved");
    assert!(
        matches!(&err, StoreError::Unreadable(d) if d.contains(&format!("messages.body of row {message}"))),
        "{err:?}"
    );
    // Rotation on PostgreSQL, as the owner: a new key, re-sealed by the app role.
    let key = PgStore::rotate_key(&db.owner, &keyring()).await.unwrap();
    assert_eq!(key, 2);
    db.store.reload_keys().await.unwrap();
    let batch = db
        .store
        .reseal_batch(ResealCursor::default(), 100)
        .await
        .unwrap();
    assert!(batch.finished);
    assert_eq!(
        (batch.resealed, batch.unreadable),
        (2, 1),
        "the damaged row stays behind"
    );
    let usage = db.store.key_usage().await.unwrap();
    assert_eq!((usage[1].messages, usage[1].spaces), (1, 1));
    db.drop_all().await;
}

#[tokio::test]
async fn a_schema_5_postgres_database_with_plaintext_rows_is_sealed_by_the_upgrade_without_loss() {
    let rows = format!(
        "CREATE TABLE public.schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL);
         INSERT INTO public.schema_migrations VALUES (1, 'initial', 0), (2, 'audit_log', 0), (3, 'audit_export', 0), (4, 'audit_summaries', 0), (5, 'external_identities', 0);
         INSERT INTO users (username, password_hash, is_admin, created_at) VALUES ('alice', '$argon2id$x', false, 0);
         INSERT INTO spaces (name, owner_id, created_at) VALUES ('{SECRET_SPACE}', 1, 0);
         INSERT INTO messages (space_id, author_id, body, created_at)
           SELECT 1, 1, CASE WHEN i = 700 THEN '{SECRET_MESSAGE}' ELSE 'message ' || i END, i
           FROM generate_series(0, 1499) AS i;"
    );
    let older = [
        include_str!("../../migrations/postgres/0001_initial.sql"),
        include_str!("../../migrations/postgres/0002_audit_log.sql"),
        include_str!("../../migrations/postgres/0003_audit_export.sql"),
        include_str!("../../migrations/postgres/0004_audit_summaries.sql"),
        include_str!("../../migrations/postgres/0005_external_identities.sql"),
        rows.as_str(),
    ];
    let Some(db) = TestDb::create_from(&older).await else {
        return;
    };
    let space = natterjack_core::domain::SpaceId::from_i64(1).unwrap();
    assert_eq!(
        db.store
            .find_space(space)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_str(),
        SECRET_SPACE
    );
    let all = all_messages(&db.store, space).await;
    assert_eq!(all.len(), 1500);
    assert!(all.iter().any(|m| m.body.as_str() == SECRET_MESSAGE));
    let usage = db.store.key_usage().await.unwrap();
    assert_eq!(
        (usage[0].key, usage[0].messages, usage[0].spaces),
        (1, 1500, 1)
    );
    let dump = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(format!(
            "{}/{}",
            crate::support::pg::admin_url().rsplit_once('/').unwrap().0,
            db.name
        ))
        .output()
        .expect("pg_dump runs");
    assert!(dump.status.success());
    assert!(
        !contains(&dump.stdout, "PELICAN-7731"),
        "the dump holds the old text"
    );
    db.drop_all().await;
}
