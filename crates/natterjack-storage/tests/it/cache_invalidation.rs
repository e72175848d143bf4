//! The read cache's invalidation sources. On PostgreSQL the schema-8 triggers announce
//! every change the app role makes to users and memberships (the role needs no extra grant
//! for that), and `PgInvalidations` relays them, says when it is connected, and notices a
//! lost connection. On SQLite the triggers move a counter that `SqliteInvalidations` polls,
//! so a change made by another process (the operator's CLI) reaches the cache too.

use crate::support::pg::TestDb;
use natterjack_core::domain::{Permissions, SpaceName, Username};
use natterjack_core::ports::Store;
use natterjack_core::store_cache::{Invalidation, InvalidationSink, InvalidationSource};
use natterjack_storage::postgres::INVALIDATION_CHANNEL;
use sqlx::postgres::PgListener;
use sqlx::{ConnectOptions, Connection};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Everything a sink was told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Told {
    Connected,
    Disconnected,
    Changed(Invalidation),
}

#[derive(Default)]
struct RecordingSink {
    told: Mutex<Vec<Told>>,
    news: Notify,
}

impl RecordingSink {
    fn push(&self, told: Told) {
        self.told.lock().unwrap().push(told);
        self.news.notify_waiters();
    }

    /// Waits (at most 10 s) until the sink has been told `what`, then forgets what it was
    /// told so far.
    async fn wait_for(&self, what: &Told) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let news = self.news.notified();
            {
                let mut told = self.told.lock().unwrap();
                if let Some(at) = told.iter().position(|t| t == what) {
                    told.drain(..=at);
                    return;
                }
            }
            if tokio::time::timeout_at(deadline, news).await.is_err() {
                panic!("never told {what:?}: {:?}", self.told.lock().unwrap());
            }
        }
    }
}

impl InvalidationSink for RecordingSink {
    fn connected(&self) {
        self.push(Told::Connected);
    }
    fn disconnected(&self) {
        self.push(Told::Disconnected);
    }
    fn invalidate(&self, what: Invalidation) {
        self.push(Told::Changed(what));
    }
}

#[tokio::test]
async fn every_change_the_app_role_makes_to_users_and_memberships_is_announced() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut listener = PgListener::connect_with(db.store.pool()).await.unwrap();
    listener.listen(INVALIDATION_CHANNEL).await.unwrap();
    let store = &db.store;
    let alice = store
        .create_user(&Username::parse("alice").unwrap(), "$argon2id$a")
        .await
        .unwrap();
    let bob = store
        .create_user(&Username::parse("bob").unwrap(), "$argon2id$b")
        .await
        .unwrap();
    let space = store
        .create_space(&SpaceName::parse("general").unwrap(), alice.id)
        .await
        .unwrap()
        .id;
    store
        .grant(space, bob.id, Permissions::READ, alice.id)
        .await
        .unwrap();
    store
        .grant(space, bob.id, Permissions::WRITE, alice.id)
        .await
        .unwrap();
    store
        .revoke(space, bob.id, Permissions::WRITE)
        .await
        .unwrap();
    store
        .revoke(space, bob.id, Permissions::READ)
        .await
        .unwrap();
    store.set_admin(bob.id, true).await.unwrap();
    store
        .set_password_hash(bob.id, "$argon2id$b2")
        .await
        .unwrap();
    let mut heard = Vec::new();
    for _ in 0..7 {
        let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .expect("a notification")
            .unwrap();
        heard.push(n.payload().to_owned());
    }
    let m = format!("m:{space}:{}", bob.id);
    let u = format!("u:{}", bob.id);
    assert_eq!(
        heard,
        [
            format!("m:{space}:{}", alice.id),
            m.clone(),
            m.clone(),
            m.clone(),
            m,
            u.clone(),
            u
        ]
    );
    // Creating the users announced nothing (the first notification is the owner's
    // membership): the cache never holds a name that did not exist. Nothing else came.
    let quiet = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(quiet.is_err(), "unexpected notification: {quiet:?}");
    drop(listener);
    db.drop_all().await;
}

#[tokio::test]
async fn the_source_reports_each_change_and_reconnects_after_its_connection_is_killed() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sink = Arc::new(RecordingSink::default());
    let source = db.store.invalidations();
    let reporting: Arc<dyn InvalidationSink> = sink.clone();
    let task = tokio::spawn(async move { source.run(reporting).await });
    sink.wait_for(&Told::Connected).await;

    let alice = db
        .store
        .create_user(&Username::parse("alice").unwrap(), "$argon2id$a")
        .await
        .unwrap();
    db.store.set_admin(alice.id, true).await.unwrap();
    sink.wait_for(&Told::Changed(Invalidation::User(alice.id)))
        .await;

    // An administrator ends the listening session: the source says so, then reconnects.
    let mut admin = db.admin_in_db().connect().await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE usename = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(db.app.get_username())
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    sink.wait_for(&Told::Disconnected).await;
    sink.wait_for(&Told::Connected).await;
    db.store.set_admin(alice.id, false).await.unwrap();
    sink.wait_for(&Told::Changed(Invalidation::User(alice.id)))
        .await;

    task.abort();
    let _ = task.await;
    admin.close().await.unwrap();
    db.drop_all().await;
}

#[tokio::test]
async fn on_sqlite_a_change_made_by_another_process_drops_the_cache_within_a_poll() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    natterjack_storage::SqliteStore::migrate(&path, &crate::support::keyring())
        .await
        .unwrap();
    let store = natterjack_storage::SqliteStore::open(&path, 2, crate::support::keyring())
        .await
        .unwrap();
    let alice = store
        .create_user(&Username::parse("alice").unwrap(), "$argon2id$x")
        .await
        .unwrap();
    let space = store
        .create_space(&SpaceName::parse("s").unwrap(), alice.id)
        .await
        .unwrap();
    let sink = Arc::new(RecordingSink::default());
    let source = store.invalidations(Duration::from_millis(5));
    let running = {
        let sink: Arc<dyn InvalidationSink> = sink.clone();
        tokio::spawn(async move { source.run(sink).await })
    };
    sink.wait_for(&Told::Connected).await;
    // What the operator's CLI does, on a connection of its own (no authorizer, no cache).
    let other = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "UPDATE users SET is_admin = 1",
        "UPDATE users SET password_hash = 'changed'",
        "UPDATE memberships SET permissions = 1",
        "DELETE FROM memberships",
    ] {
        other.execute_batch(sql).unwrap();
        sink.wait_for(&Told::Changed(Invalidation::Everything))
            .await;
    }
    // The server's own writes move it too (their entries are dropped at once besides).
    store
        .grant(space.id, alice.id, Permissions::READ, alice.id)
        .await
        .unwrap();
    sink.wait_for(&Told::Changed(Invalidation::Everything))
        .await;
    running.abort();
    store.close().await;
}
