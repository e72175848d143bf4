//! Message write and read throughput through the storage port, PostgreSQL beside SQLite.
//!
//! Each round runs both backends, one after the other, with `CONCURRENCY` tasks for
//! `SECONDS` of `insert_message`, then `SECONDS` of `messages_in` (a page of `PAGE`, newest
//! first) over what was written. PostgreSQL is the local server, prepared the way an
//! operator does (`PgStore::init` and `PgStore::migrate`, then the app role); SQLite is a
//! file in a temporary directory. Results go to `target/criterion/storage/backends.json`
//! for `bench/storage-backends`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use natterjack_core::domain::{Limit, MessageText, SpaceId, SpaceName, UserId, Username};
use natterjack_core::ports::{MessagePage, Store};
use natterjack_storage::postgres::connect_options;
use natterjack_storage::{PgStore, SqliteStore};
use serde_json::json;
use sqlx::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 16;
const SECONDS: u64 = 4;
const PAGE: u32 = 50;
const ROUNDS: usize = 2;

fn admin_url() -> String {
    std::env::var("NATTERJACK_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Runs `op` on `CONCURRENCY` tasks for `SECONDS`; returns operations per second.
async fn measure<F, Fut>(op: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (op, stop, done) = (op.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    op().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Writes, then reads; returns (writes/s, reads/s).
async fn run(store: Arc<dyn Store>) -> (f64, f64) {
    let user: UserId = store
        .create_user(&Username::parse("alice").unwrap(), "unused")
        .await
        .unwrap()
        .id;
    let space: SpaceId = store
        .create_space(&SpaceName::parse("bench").unwrap(), user)
        .await
        .unwrap()
        .id;
    let body = MessageText::parse("benchmark message").unwrap();
    let writes = measure({
        let store = store.clone();
        move || {
            let (store, body) = (store.clone(), body.clone());
            async move {
                store.insert_message(space, user, &body).await.unwrap();
            }
        }
    })
    .await;
    let page = MessagePage {
        since: None,
        after: None,
        limit: Limit::parse(&PAGE.to_string()).unwrap(),
    };
    let reads = measure({
        let store = store.clone();
        move || {
            let store = store.clone();
            async move {
                let got = store.messages_in(space, page).await.unwrap();
                assert_eq!(got.len(), PAGE as usize);
            }
        }
    })
    .await;
    (writes, reads)
}

async fn sqlite() -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    SqliteStore::migrate(&path, &keyring()).await.unwrap();
    let store = SqliteStore::open(&path, 8, keyring()).await.unwrap();
    let result = run(Arc::new(store.clone())).await;
    store.close().await;
    result
}

async fn postgres(round: usize) -> (f64, f64) {
    let name = format!("nj_bench_{}_{round}", std::process::id());
    let base = admin_url();
    let host = base
        .trim_start_matches("postgres://")
        .split_once('@')
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default().to_owned())
        .unwrap();
    let app_url = format!("postgres://{name}_app:app-{name}@{host}/{name}");
    let owner_url = format!("postgres://{name}_owner:owner-{name}@{host}/{name}");
    let admin = connect_options(&base, None).unwrap();
    let owner = connect_options(&owner_url, None).unwrap();
    let app = connect_options(&app_url, None).unwrap();
    PgStore::init(&admin, &owner, &app).await.unwrap();
    PgStore::migrate(&owner, &format!("{name}_app"), &keyring())
        .await
        .unwrap();
    let store = PgStore::open(&app, 8, Duration::from_secs(5), keyring())
        .await
        .unwrap();
    let result = run(Arc::new(store.clone())).await;
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {name}_app"),
        format!("DROP ROLE IF EXISTS {name}_owner"),
    ] {
        // Benchmark-only DDL on names made above from the process id, not from input.
        sqlx::raw_sql(&statement).execute(&mut conn).await.unwrap();
    }
    result
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("storage_backends: benchmark");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if rt
        .block_on(sqlx::PgConnection::connect(&admin_url()))
        .is_err()
    {
        eprintln!(
            "SKIPPED: storage_backends: PostgreSQL not reachable at {}",
            admin_url()
        );
        return;
    }
    let (mut sq, mut pg) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        sq.push(rt.block_on(sqlite()));
        pg.push(rt.block_on(postgres(round)));
    }
    let mean =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let report = json!({
        "concurrency": CONCURRENCY,
        "seconds_per_run": SECONDS,
        "rounds": ROUNDS,
        "page": PAGE,
        "sqlite_writes_per_s": mean(&sq, |r| r.0),
        "sqlite_reads_per_s": mean(&sq, |r| r.1),
        "postgres_writes_per_s": mean(&pg, |r| r.0),
        "postgres_reads_per_s": mean(&pg, |r| r.1),
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/criterion/storage/backends.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("storage backends: {report}");
}

/// A keyring under a fixed benchmark key-encryption key, so migrating and opening agree.
fn keyring() -> std::sync::Arc<natterjack_storage::sealing::Keyring> {
    let kek = natterjack_storage::sealing::KeyEncryptionKey::from_bytes(zeroize::Zeroizing::new(
        [7u8; 32],
    ))
    .expect("benchmark key");
    std::sync::Arc::new(natterjack_storage::sealing::Keyring::new(kek))
}
