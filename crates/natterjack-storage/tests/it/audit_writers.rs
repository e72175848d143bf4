//! Several audit writers on one database (as several server processes would be): the chain
//! stays one valid line, and a writer with the wrong key refuses to start.

use natterjack_core::audit::{
    AuditKey, AuditLog, AuditRecord, AuditStore, Phase, VerifyReport, verify,
};
use natterjack_core::domain::Timestamp;
use natterjack_storage::{PgStore, SqliteStore};
use std::sync::Arc;
use std::time::Duration;

fn record(writer: usize, n: usize) -> AuditRecord {
    AuditRecord {
        time: Timestamp::now(),
        request_id: format!("{writer:02}{n:030}"),
        phase: Phase::Complete,
        transport: natterjack_core::audit::Transport::Rest,
        client_ip: "127.0.0.1".into(),
        principal: Some(format!("writer{writer}")),
        auth_method: natterjack_core::audit::AuthMethod::Basic,
        operation: "GET /health".into(),
        target: String::new(),
        status: Some(natterjack_core::audit::Status::Http(200)),
        decision: natterjack_core::audit::Decision::Allow,
        reason: None,
        duration_us: 10,
        count: None,
    }
}

async fn store(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(path, 4, crate::support::keyring())
        .await
        .unwrap()
}

/// Two writers, each with its own idea of the head, as two server processes have; the first
/// with six busy clients, so that it always has its next batch ready, the second with one.
/// Checks that every record of both is committed, once, in one valid chain.
async fn two_writers_keep_one_valid_chain(first: Arc<dyn AuditStore>, second: Arc<dyn AuditStore>) {
    let key = [7u8; 32];
    let logs = [
        Arc::new(
            AuditLog::start(first.clone(), AuditKey::new(key), None)
                .await
                .unwrap(),
        ),
        Arc::new(
            AuditLog::start(second, AuditKey::new(key), None)
                .await
                .unwrap(),
        ),
    ];
    let clients = [6, 1];
    let mut tasks = Vec::new();
    for (writer, log) in logs.iter().enumerate() {
        for client in 0..clients[writer] {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..60 {
                    log.record(record(writer, client * 100 + n))
                        .await
                        .unwrap_or_else(|e| panic!("writer {writer} lost a record: {e:?}"));
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = 60 * (clients[0] + clients[1]);
    let head = first.audit_head().await.unwrap();
    let report = verify(&AuditKey::new(key), first.as_ref(), head)
        .await
        .unwrap();
    assert_eq!(
        report,
        VerifyReport::Intact {
            records: total as u64
        }
    );
    let ids: Vec<i64> = first
        .audit_in_order(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, (1..=total as i64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_sharing_one_sqlite_database_keep_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    SqliteStore::migrate(&path, &crate::support::keyring())
        .await
        .unwrap();
    two_writers_keep_one_valid_chain(Arc::new(store(&path).await), Arc::new(store(&path).await))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_sharing_one_postgres_database_keep_one_valid_chain() {
    let Some(db) = crate::support::pg::TestDb::create().await else {
        return;
    };
    let second = PgStore::open(
        &db.app,
        4,
        Duration::from_secs(5),
        crate::support::keyring(),
    )
    .await
    .unwrap();
    two_writers_keep_one_valid_chain(Arc::new(db.store.clone()), Arc::new(second.clone())).await;
    second.close().await;
    db.drop_all().await;
}

#[tokio::test]
async fn a_writer_with_another_key_refuses_to_start_on_an_existing_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    SqliteStore::migrate(&path, &crate::support::keyring())
        .await
        .unwrap();
    let db = store(&path).await;
    let log = AuditLog::start(Arc::new(db.clone()), AuditKey::new([1; 32]), None)
        .await
        .unwrap();
    log.record(record(0, 0)).await.unwrap();
    log.record(record(0, 1)).await.unwrap();

    let refused = AuditLog::start(Arc::new(db.clone()), AuditKey::new([2; 32]), None).await;
    let message = refused.err().expect("a foreign key must be refused");
    assert!(message.contains("same key"), "{message}");
    assert!(
        AuditLog::start(Arc::new(db), AuditKey::new([1; 32]), None)
            .await
            .is_ok(),
        "the right key is accepted"
    );
}

#[tokio::test]
async fn a_writer_with_another_key_appends_nothing_after_a_collision_on_a_new_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("natterjack.db");
    SqliteStore::migrate(&path, &crate::support::keyring())
        .await
        .unwrap();
    let db = store(&path).await;
    // Both start on an empty log, where no key can be checked yet.
    let right = AuditLog::start(Arc::new(db.clone()), AuditKey::new([1; 32]), None)
        .await
        .unwrap();
    let wrong = AuditLog::start(Arc::new(store(&path).await), AuditKey::new([2; 32]), None)
        .await
        .unwrap();
    right.record(record(0, 0)).await.unwrap();
    assert!(
        wrong.record(record(1, 0)).await.is_err(),
        "a writer with another key continued the chain"
    );
    right.record(record(0, 1)).await.unwrap();
    let head = db.audit_head().await.unwrap();
    let report = verify(&AuditKey::new([1; 32]), &db, head).await.unwrap();
    assert_eq!(report, VerifyReport::Intact { records: 2 });
}
