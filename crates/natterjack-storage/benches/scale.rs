//! Scale: does a request's storage work stay flat as the database grows?
//!
//! Two SQLite databases, each read through one connection on the calling thread, measured
//! side by side in alternating rounds so that machine drift affects both alike: an "empty" one holding only the probe user, their space and a page
//! of messages, and a "full" one with 10,000 spaces and 1,000,000 messages (100,000 of them
//! in the probe space, the rest spread over the other spaces). Each operation is the
//! storage work of one request, as the service layer issues it:
//!
//! - list spaces (`GET /spaces`): `spaces_of` the probe user;
//! - list messages (`GET /spaces/{id}/messages`): `permissions_of`, then the newest page;
//! - a deep page (`…?after=ID`): `permissions_of`, then the page after a message half-way
//!   down the space;
//! - recent messages (`…?since=T`, T matching the space's ten newest): `permissions_of`, then
//!   the page since T, which the time index answers without walking the space;
//! - read one message (`GET /spaces/{id}/messages/{msgId}`): `permissions_of`, then
//!   `find_message`.
//!
//! Indexes and keyset pagination should keep the full database within 1.5× of the empty one.
//! The probe user, their space and the empty database are made through the storage port; the
//! bulk of the full one is inserted in one transaction: the users by a set-based statement
//! (a recursive counter, no values spliced into SQL), the spaces and messages one prepared
//! insert each, since every name and body is sealed for its row id, which is why this
//! benchmark lives in the storage crate. Then, on the full database, one key rotation:
//! its re-sealing rate and the reads' latency while it runs. Prints
//! its results as one JSON object on stdout, for `bench/scale`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use natterjack_core::domain::{
    Limit, MessageId, MessageText, SpaceId, SpaceName, Timestamp, UserId, Username,
};
use natterjack_core::ports::{MessagePage, Store};
use natterjack_storage::SqliteStore;
use natterjack_storage::rotation::{Resealing, reseal_pass};
use natterjack_storage::sealing::Place;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPACES: usize = 10_000;
const MESSAGES: usize = 1_000_000;
const IN_PROBE_SPACE: usize = 100_000;
const OTHER_USERS: usize = 100;
const PAGE: u32 = 50;
const ROUNDS: usize = 20;
const PER_ROUND: usize = 200;

/// What the probe requests address in one database.
#[derive(Clone, Copy)]
struct Probe {
    user: UserId,
    space: SpaceId,
    middle: MessageId,
    /// The time of the probe space's tenth newest message: a `since` that ten match.
    recent: Timestamp,
}

/// The time of the tenth newest message of `space`.
async fn tenth_newest(store: &SqliteStore, space: SpaceId) -> Timestamp {
    store.messages_in(space, page(None)).await.unwrap()[9].created_at
}

async fn open(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    let path = dir.path().join("natterjack.db");
    SqliteStore::migrate(&path, &keyring()).await.unwrap();
    Arc::new(SqliteStore::open(&path, 1, keyring()).await.unwrap())
}

/// Inserts `count` messages into `space` through the port (the empty database's page).
async fn fill(store: &SqliteStore, space: SpaceId, author: UserId, count: usize) {
    let body = MessageText::parse(BODY).unwrap();
    for _ in 0..count {
        store.insert_message(space, author, &body).await.unwrap();
    }
}

const BODY: &str = "a message of ordinary length, as people write them";

/// The probe user and their space, through the port.
async fn probe_user_and_space(store: &SqliteStore) -> (UserId, SpaceId) {
    let user = store
        .create_user(&Username::parse("probe").unwrap(), "unused")
        .await
        .unwrap()
        .id;
    let space = store
        .create_space(&SpaceName::parse("probe space").unwrap(), user)
        .await
        .unwrap()
        .id;
    (user, space)
}

/// Statistics and a checkpointed log, as in a database that has been running for a while;
/// both databases get them, so that only their size differs.
async fn settle(path: &std::path::Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch("ANALYZE").unwrap();
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

async fn seed_empty(store: &SqliteStore, path: &std::path::Path) -> Probe {
    let (user, space) = probe_user_and_space(store).await;
    fill(store, space, user, PAGE as usize * 2).await;
    settle(path).await;
    let ids: Vec<MessageId> = store
        .messages_in(space, page(None))
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    Probe {
        user,
        space,
        middle: ids[ids.len() / 2],
        recent: tenth_newest(store, space).await,
    }
}

/// 100 other users, 9,999 other spaces (each with its owner's membership) and 1,000,000
/// messages, every tenth in the probe space and the rest round-robin over the other spaces,
/// so that each space's messages are spread over the whole table as live traffic leaves them.
async fn seed_full(store: &SqliteStore, path: &std::path::Path) -> Probe {
    let (user, space) = probe_user_and_space(store).await;
    let started = Instant::now();
    let mut db = rusqlite::Connection::open(path).unwrap();
    let tx = db.transaction().unwrap();
    let now = natterjack_core::domain::Timestamp::now().micros();
    tx.execute(
        "INSERT INTO users (username, password_hash, is_admin, created_at) \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1) \
         SELECT 'user' || i, 'unused', 0, ?2 FROM n",
        (OTHER_USERS as i64, now),
    )
    .unwrap();
    let first_user: i64 = tx
        .query_row(
            "SELECT min(id) FROM users WHERE id <> ?1",
            [user.get()],
            |r| r.get(0),
        )
        .unwrap();
    // Names and bodies are sealed like the store's own writes, so each row is bound to its
    // id: the ids are chosen here (the probe's space and message ids come first).
    let keyring = store.keyring().clone();
    let key = i64::from(keyring.current().unwrap());
    for i in 0..SPACES as i64 - 1 {
        let id = space.get() + 1 + i;
        let name = keyring
            .seal(&Place::space_name(id), &format!("space {i}"))
            .unwrap()
            .bytes;
        tx.prepare_cached(
            "INSERT INTO spaces (id, name, key_id, owner_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .unwrap()
        .execute((id, name, key, first_user + i % OTHER_USERS as i64, now))
        .unwrap();
    }
    let first_space: i64 = tx
        .query_row(
            "SELECT min(id) FROM spaces WHERE id <> ?1",
            [space.get()],
            |r| r.get(0),
        )
        .unwrap();
    tx.execute(
        "INSERT INTO memberships (space_id, user_id, permissions, granted_by, granted_at) \
         SELECT id, owner_id, 7, owner_id, created_at FROM spaces WHERE id <> ?1",
        [space.get()],
    )
    .unwrap();
    let others = SPACES as i64 - 1;
    let every = (MESSAGES / IN_PROBE_SPACE) as i64;
    for i in 0..MESSAGES as i64 {
        let (in_space, author) = if i % every == 0 {
            (space.get(), user.get())
        } else {
            (
                first_space + i % others,
                first_user + (i % others) % OTHER_USERS as i64,
            )
        };
        let id = i + 1;
        let body = keyring
            .seal(&Place::message_body(id, in_space), BODY)
            .unwrap()
            .bytes;
        tx.prepare_cached(
            "INSERT INTO messages (id, space_id, author_id, body, key_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .unwrap()
        .execute((id, in_space, author, body, key, now + i))
        .unwrap();
    }
    // The ids were chosen here: move the store's reservations past them.
    tx.execute_batch(
        "UPDATE row_ids SET next = (SELECT max(id) + 1 FROM spaces) WHERE name = 'spaces'; \
         UPDATE row_ids SET next = (SELECT max(id) + 1 FROM messages) WHERE name = 'messages'",
    )
    .unwrap();
    let middle: i64 = tx
        .query_row(
            "SELECT id FROM messages WHERE space_id = ?1 ORDER BY id LIMIT 1 OFFSET ?2",
            (space.get(), IN_PROBE_SPACE as i64 / 2),
            |r| r.get(0),
        )
        .unwrap();
    tx.commit().unwrap();
    drop(db);
    settle(path).await;
    let counts: (i64, i64, i64) = store
        .on_reading_connection(|c| {
            c.query_row(
                "SELECT (SELECT count(*) FROM spaces), (SELECT count(*) FROM messages), \
                 (SELECT count(*) FROM messages WHERE space_id = ?1)",
                [space.get()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .unwrap();
    assert_eq!(
        counts,
        (SPACES as i64, MESSAGES as i64, IN_PROBE_SPACE as i64)
    );
    eprintln!("seeded the full database in {:?}", started.elapsed());
    Probe {
        user,
        space,
        middle: MessageId::from_i64(middle).unwrap(),
        recent: tenth_newest(store, space).await,
    }
}

fn page(after: Option<MessageId>) -> MessagePage {
    MessagePage {
        since: None,
        after,
        limit: Limit::parse(&PAGE.to_string()).unwrap(),
    }
}

/// The access check every request on a space makes first: the probe user's membership.
async fn access_check(store: &SqliteStore, probe: Probe) {
    assert!(
        !store
            .permissions_of(probe.space, probe.user)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The storage work of one request of `kind`.
async fn request(store: &SqliteStore, probe: Probe, kind: &str) {
    match kind {
        "list_spaces" => {
            assert!(!store.spaces_of(probe.user).await.unwrap().is_empty());
        }
        "list_messages" => {
            access_check(store, probe).await;
            assert_eq!(
                store
                    .messages_in(probe.space, page(None))
                    .await
                    .unwrap()
                    .len(),
                PAGE as usize
            );
        }
        "deep_page" => {
            access_check(store, probe).await;
            let got = store
                .messages_in(probe.space, page(Some(probe.middle)))
                .await
                .unwrap();
            assert_eq!(got.len(), PAGE as usize);
        }
        "since_few" => {
            access_check(store, probe).await;
            let since = MessagePage {
                since: Some(probe.recent),
                ..page(None)
            };
            let got = store.messages_in(probe.space, since).await.unwrap();
            assert_eq!(got.len(), 10);
        }
        "read_message" => {
            access_check(store, probe).await;
            assert!(
                store
                    .find_message(probe.space, probe.middle)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        _ => unreachable!(),
    }
}

/// `PER_ROUND` sequential requests; their latencies.
async fn sample(store: &SqliteStore, probe: Probe, kind: &str) -> Vec<Duration> {
    let mut out = Vec::with_capacity(PER_ROUND);
    for _ in 0..PER_ROUND {
        let t = Instant::now();
        request(store, probe, kind).await;
        out.push(t.elapsed());
    }
    out
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Key rotation on the full database: a new data key, then one re-sealing pass with the
/// server's defaults (250 rows a batch, 20 ms between batches) on a store of its own, as a
/// server runs it beside requests, while the probe reads one message after another; the
/// same reads, as many, right before and right after give the reference.
async fn rotate(full: &SqliteStore, path: &std::path::Path, probe: Probe) -> serde_json::Value {
    const BATCH: u32 = 250;
    const PAUSE: Duration = Duration::from_millis(20);
    let mut before = Vec::new();
    for _ in 0..ROUNDS {
        before.extend(sample(full, probe, "read_message").await);
    }
    SqliteStore::rotate_key(path, &keyring()).await.unwrap();
    full.reload_keys().await.unwrap();
    let resealer = Arc::new(SqliteStore::open(path, 1, keyring()).await.unwrap());
    let started = Instant::now();
    let pass = tokio::spawn({
        let resealer = resealer.clone();
        async move {
            reseal_pass(resealer.as_ref(), BATCH, PAUSE, |_| {})
                .await
                .unwrap()
        }
    });
    let mut during = Vec::new();
    while !pass.is_finished() {
        during.extend(sample(full, probe, "read_message").await);
    }
    let pass = pass.await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let mut after = Vec::new();
    for _ in 0..ROUNDS {
        after.extend(sample(full, probe, "read_message").await);
    }
    before.sort();
    during.sort();
    after.sort();
    let usage = full.key_usage().await.unwrap();
    assert_eq!(pass.unreadable, 0);
    assert!(
        usage
            .iter()
            .all(|k| k.current || k.messages + k.spaces == 0)
    );
    resealer.close().await;
    json!({
        "rows": pass.resealed, "seconds": seconds, "rows_per_s": pass.resealed as f64 / seconds,
        "batch": BATCH, "pause_ms": PAUSE.as_millis() as u64, "reads_during": during.len(),
        "read_p50_us_during": quantile(&during, 0.5), "read_p99_us_during": quantile(&during, 0.99),
        "reads_before": before.len(), "reads_after": after.len(),
        "read_p50_us_before": quantile(&before, 0.5), "read_p99_us_before": quantile(&before, 0.99),
        "read_p50_us_after": quantile(&after, 0.5), "read_p99_us_after": quantile(&after, 0.99),
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (empty_dir, full_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (empty, full) = (open(&empty_dir).await, open(&full_dir).await);
        let started = Instant::now();
        let empty_probe = seed_empty(&empty, &empty_dir.path().join("natterjack.db")).await;
        let full_probe = seed_full(&full, &full_dir.path().join("natterjack.db")).await;
        let seeding = started.elapsed();
        let kinds = [
            "list_spaces",
            "list_messages",
            "deep_page",
            "since_few",
            "read_message",
        ];
        let mut results = serde_json::Map::new();
        for kind in kinds {
            // Warm both caches, then alternate between the two databases.
            sample(&empty, empty_probe, kind).await;
            sample(&full, full_probe, kind).await;
            let (mut e, mut f) = (Vec::new(), Vec::new());
            // Each round swaps which database goes first, so neither always follows the other.
            for round in 0..ROUNDS {
                if round % 2 == 0 {
                    e.extend(sample(&empty, empty_probe, kind).await);
                    f.extend(sample(&full, full_probe, kind).await);
                } else {
                    f.extend(sample(&full, full_probe, kind).await);
                    e.extend(sample(&empty, empty_probe, kind).await);
                }
            }
            e.sort();
            f.sort();
            let row = json!({
                "empty_p50_us": quantile(&e, 0.5), "empty_p99_us": quantile(&e, 0.99),
                "full_p50_us": quantile(&f, 0.5), "full_p99_us": quantile(&f, 0.99),
            });
            eprintln!("{kind}: {row}");
            results.insert(kind.to_owned(), row);
        }
        let rotation = rotate(&full, &full_dir.path().join("natterjack.db"), full_probe).await;
        eprintln!("rotation: {rotation}");
        let out = json!({
            "rotation": rotation,
            "spaces": SPACES, "messages": MESSAGES, "in_probe_space": IN_PROBE_SPACE,
            "other_users": OTHER_USERS, "page": PAGE, "samples": ROUNDS * PER_ROUND,
            "seeding_s": seeding.as_secs_f64(), "results": results,
        });
        println!("{out}");
        empty.close().await;
        full.close().await;
    });
}

/// A keyring under a fixed benchmark key-encryption key, so migrating and opening agree.
fn keyring() -> std::sync::Arc<natterjack_storage::sealing::Keyring> {
    let kek = natterjack_storage::sealing::KeyEncryptionKey::from_bytes(zeroize::Zeroizing::new(
        [7u8; 32],
    ))
    .expect("benchmark key");
    std::sync::Arc::new(natterjack_storage::sealing::Keyring::new(kek))
}
