//! Audited versus unaudited write throughput: the cost of the audit trail on the write path.
//!
//! Both runs insert messages through the real SQLite store with `CONCURRENCY` writers for
//! `SECONDS` each. The audited run does what a `POST /spaces/{id}/messages` does: an intent
//! record committed before the insert, and a completion record queued after it, through the
//! group-commit writer; the run ends by waiting for every queued record to be committed. Results go to `target/criterion/audit/throughput.json` for
//! `bench/audit-throughput`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use natterjack::config::Config;
use natterjack_core::audit::{AuditLog, AuditRecord, Phase};
use natterjack_core::domain::{MessageText, SpaceId, SpaceName, Timestamp, UserId, Username};
use natterjack_core::ports::Store;
use natterjack_storage::SqliteStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 32;
const SECONDS: u64 = 5;

fn record(phase: Phase) -> AuditRecord {
    AuditRecord {
        time: Timestamp::now(),
        request_id: "0123456789abcdef0123456789abcdef".into(),
        phase,
        transport: natterjack_core::audit::Transport::Rest,
        client_ip: "127.0.0.1".into(),
        principal: Some("alice".into()),
        auth_method: natterjack_core::audit::AuthMethod::Basic,
        operation: "POST /spaces/{id}/messages".into(),
        target: "id=1".into(),
        status: (phase == Phase::Complete).then_some(natterjack_core::audit::Status::Http(201)),
        decision: if phase == Phase::Complete {
            natterjack_core::audit::Decision::Allow
        } else {
            natterjack_core::audit::Decision::Pending
        },
        reason: None,
        duration_us: 100,
        count: None,
    }
}

async fn setup(
    max_batch: usize,
) -> (
    tempfile::TempDir,
    SqliteStore,
    Arc<AuditLog>,
    UserId,
    SpaceId,
) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let keys = natterjack::storage::keyring(&cfg).await.unwrap();
    natterjack::storage::migrate(&cfg, &keys).await.unwrap();
    let store = SqliteStore::open(
        &cfg.data_dir.join("natterjack.db"),
        cfg.database.max_connections,
        keys,
    )
    .await
    .unwrap();
    let key = natterjack::audit_files::load_or_create_key(&cfg.audit_key_path(), true).unwrap();
    let anchor: Arc<dyn natterjack_core::audit::HeadAnchor> = Arc::new(
        natterjack::audit_files::FileAnchor::new(cfg.audit_head_path()),
    );
    let log = AuditLog::start_with_max_batch(Arc::new(store.clone()), key, Some(anchor), max_batch);
    let audit = Arc::new(log.await.unwrap());
    let user = store
        .create_user(&Username::parse("alice").unwrap(), "unused")
        .await
        .unwrap();
    let space = store
        .create_space(&SpaceName::parse("bench").unwrap(), user.id)
        .await
        .unwrap();
    (dir, store, audit, user.id, space.id)
}

/// Runs `CONCURRENCY` writers for `SECONDS`; returns writes per second. `max_batch` bounds
/// the audit writer's records per transaction (1: no group commit).
async fn run(audited: bool, max_batch: usize) -> f64 {
    let (_dir, store, audit, user, space) = setup(max_batch).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let body = MessageText::parse("benchmark message").unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (store, audit, stop, done, body) = (
                store.clone(),
                audit.clone(),
                stop.clone(),
                done.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if audited {
                        audit.record(record(Phase::Intent)).await.unwrap();
                    }
                    store.insert_message(space, user, &body).await.unwrap();
                    if audited {
                        audit.submit(record(Phase::Complete)).await.unwrap();
                    }
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
    // Count the time to commit the last queued completions too.
    audit.flush().await.unwrap();
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("audit_throughput: benchmark");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Alternate the two runs twice so drift on the machine affects both alike.
    let mut unaudited = Vec::new();
    let mut audited = Vec::new();
    let mut ungrouped = Vec::new();
    for _ in 0..2 {
        unaudited.push(rt.block_on(run(false, 512)));
        audited.push(rt.block_on(run(true, 512)));
        ungrouped.push(rt.block_on(run(true, 1)));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let report = serde_json::json!({
        "concurrency": CONCURRENCY,
        "seconds_per_run": SECONDS,
        "runs_each": unaudited.len(),
        "unaudited_writes_per_s": mean(&unaudited),
        "audited_writes_per_s": mean(&audited),
        "ratio": mean(&audited) / mean(&unaudited),
        "ungrouped_writes_per_s": mean(&ungrouped),
        "ungrouped_ratio": mean(&ungrouped) / mean(&unaudited),
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/criterion/audit/throughput.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("audit throughput: {report}");
}
