//! One SIEM exporter per sink for a whole deployment: several real `natterjack serve`
//! processes on one PostgreSQL database, all configured with the same syslog sink, sending to
//! a real rsyslog collector. Only the holder of the sink's lease exports, so the collector
//! receives each record once; when the holder is killed with SIGKILL another node takes the
//! lease over and resumes from the shared cursor, so nothing is missing, only the records
//! the dead holder had sent but not yet confirmed arrive twice, and the cursor never moves
//! back. Each test prints what it measured.

use crate::siem::{metric, pki};
use crate::support::pg::PgDatabase;
use crate::support::rsyslog::{Received, Rsyslog, all_ids_arrived};
use crate::support::{Creds, TestServer, pairs};
use reqwest::Method;
use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SINK: &str = "siem";

/// How often a node without the lease tries to take it (`audit.export_lease_retry_ms`).
const LEASE_RETRY: Duration = Duration::from_millis(500);

/// A take-over within this much more than the retry passes: a killed holder's session ends
/// at once on one host, so the rest is slack for a loaded test machine, not the mechanism.
const TAKE_OVER_SLACK: Duration = Duration::from_secs(5);

/// Nodes of one deployment, a collector, and the database they share.
struct Deployment {
    db: PgDatabase,
    rsyslog: Rsyslog,
    nodes: Vec<TestServer>,
    /// The collector's directory; kept until the end.
    _dir: tempfile::TempDir,
}

impl Deployment {
    /// `count` nodes on a fresh database, started one after the other, each with the same
    /// sink; they share the audit key and the key-encryption key of the first.
    async fn start(test: &str, count: usize) -> Option<Self> {
        let db = PgDatabase::fresh(test).await?;
        let dir = tempfile::tempdir().unwrap();
        let tls = pki(dir.path());
        let rsyslog = Rsyslog::start(test, &dir.path().join("rsyslog"), &tls).await?;
        let toml = format!(
            r#"
[audit]
export_lease_retry_ms = {retry}

[[audit.sinks]]
name = "{SINK}"
kind = "syslog-tcp"
address = "{tcp}"
confirm_after_ms = 500
"#,
            retry = LEASE_RETRY.as_millis(),
            tcp = rsyslog.tcp_address(),
        );
        let first_dir = tempfile::tempdir().unwrap();
        db.prepare(&first_dir.path().join("data"));
        let mut env = db.env();
        let first = TestServer::start_configured(first_dir, &toml, &pairs(&env)).await;
        let path = |file: &str| first.data_dir().join(file).to_str().unwrap().to_owned();
        env.push(("NATTERJACK_AUDIT__KEY_FILE", path("audit.key")));
        env.push(("NATTERJACK_ENCRYPTION__KEY_FILE", path("encryption.key")));
        let mut nodes = vec![first];
        for _ in 1..count {
            let node_dir = tempfile::tempdir().unwrap();
            nodes.push(TestServer::start_configured(node_dir, &toml, &pairs(&env)).await);
        }
        Some(Self {
            db,
            rsyslog,
            nodes,
            _dir: dir,
        })
    }

    /// A connection to the shared database as the owner role, to read what the nodes
    /// wrote.
    async fn database(&self) -> PgConnection {
        PgConnection::connect(&self.db.owner_url).await.unwrap()
    }

    async fn finish(self) {
        drop(self.nodes);
        self.db.drop_all().await;
    }
}

/// The newest audit id of the deployment.
async fn head(db: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM audit_log")
        .fetch_one(db)
        .await
        .unwrap()
}

/// The sink's shared cursor (0 before the first confirmation).
async fn cursor(db: &mut PgConnection) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT delivered_id FROM audit_export_cursor WHERE sink = $1")
        .bind(SINK)
        .fetch_optional(db)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Whether each node says it holds the lease (`natterjack_audit_export_leader`).
async fn leaders(nodes: &[&TestServer]) -> Vec<bool> {
    let mut out = Vec::new();
    for node in nodes {
        let text = node.metrics().await;
        out.push(metric(&text, "natterjack_audit_export_leader", SINK) == Some(1.0));
    }
    out
}

/// Polls until exactly one of `nodes` holds the lease; its index, and how long that took.
async fn the_leader(nodes: &[&TestServer], give_up: Duration) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        let held = leaders(nodes).await;
        if held.iter().filter(|h| **h).count() == 1 {
            let index = held.iter().position(|h| *h).unwrap();
            return (index, started.elapsed());
        }
        assert!(
            started.elapsed() < give_up,
            "no single leader within {give_up:?}: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until every node reports the sink's backlog at 0: the holder from what it
/// confirmed, the others from the shared cursor they follow.
async fn backlogs_drain(nodes: &[&TestServer]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut backlogs = Vec::new();
        for node in nodes {
            backlogs.push(metric(
                &node.metrics().await,
                "natterjack_audit_export_backlog",
                SINK,
            ));
        }
        if backlogs.iter().all(|b| *b == Some(0.0)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backlogs never drained: {backlogs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writers posting messages (and reading them) on `nodes` until `stop` is set; each
/// returns the number of requests that did not succeed.
fn load(
    nodes: &[Arc<TestServer>],
    who: &Creds,
    space: i64,
    stop: &Arc<AtomicBool>,
    done: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    let mut workers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..3 {
            let (node, who, stop, done) = (node.clone(), who.clone(), stop.clone(), done.clone());
            workers.push(tokio::spawn(async move {
                let path = format!("/spaces/{space}/messages");
                let mut failed = 0;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = if i % 2 == 0 {
                        let body = json!({"message": format!("n{n}-w{w}-{i}")});
                        node.call(Some(&who), Method::POST, &path, Some(body)).await
                    } else {
                        node.call(Some(&who), Method::GET, &path, None).await
                    };
                    if !r.status().is_success() {
                        failed += 1;
                    }
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                failed
            }));
        }
    }
    workers
}

/// Stops the writers; panics if any request failed.
async fn stop_load(stop: &AtomicBool, workers: Vec<tokio::task::JoinHandle<usize>>) {
    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    for w in workers {
        failed += w.await.unwrap();
    }
    assert_eq!(failed, 0, "requests failed under load");
}

/// Reads the shared cursor every 20 ms until `stop` is set; panics the moment it is
/// smaller than before. Returns the number of samples.
fn watch_cursor(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut db = PgConnection::connect(&url).await.unwrap();
        let (mut last, mut samples) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let now = cursor(&mut db).await;
            assert!(now >= last, "the cursor rewound from {last} to {now}");
            last = now;
            samples += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples
    })
}

/// Arrivals per id, up to `head`, and the PROCIDs (the sending server's pid) of each.
fn arrivals(received: &[Received], head: i64) -> BTreeMap<i64, Vec<String>> {
    let mut by_id: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in received.iter().filter(|r| r.listener == "tcp") {
        if r.id() <= head {
            by_id.entry(r.id()).or_default().push(r.procid.clone());
        }
    }
    by_id
}

/// The ids in the order they first arrived.
fn first_arrivals(received: &[Received]) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    received
        .iter()
        .filter(|r| r.listener == "tcp" && seen.insert(r.id()))
        .map(Received::id)
        .collect()
}

/// Waits until the collector holds every id from 1 to `head`.
async fn collector_has_all(rsyslog: &Rsyslog, head: i64) -> Vec<Received> {
    rsyslog
        .wait_for(Duration::from_secs(60), all_ids_arrived(head, "tcp"))
        .await
}

#[tokio::test]
async fn two_nodes_with_the_same_sink_deliver_each_record_exactly_once_under_load() {
    let Some(deployment) = Deployment::start("export_lease_once", 2).await else {
        return;
    };
    let nodes: Vec<&TestServer> = deployment.nodes.iter().collect();
    let (leader, _) = the_leader(&nodes, Duration::from_secs(20)).await;
    let leader_pid = nodes[leader].pid().to_string();

    let Deployment {
        db,
        rsyslog,
        nodes,
        _dir,
    } = deployment;
    let nodes: Vec<Arc<TestServer>> = nodes.into_iter().map(Arc::new).collect();
    let alice = nodes[0].user("alice").await;
    let space = nodes[0].space(&alice, "load").await;
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let workers = load(&nodes, &alice, space, &stop, &done);
    while done.load(Ordering::Relaxed) < 600 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_load(&stop, workers).await;

    let mut conn = PgConnection::connect(&db.owner_url).await.unwrap();
    let head = head(&mut conn).await;
    assert!(head >= 900, "only {head} records");
    let received = collector_has_all(&rsyslog, head).await;
    let refs: Vec<&TestServer> = nodes.iter().map(|n| n.as_ref()).collect();
    backlogs_drain(&refs).await;

    let by_id = arrivals(&received, head);
    let twice: Vec<i64> = by_id
        .iter()
        .filter(|(_, from)| from.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    assert!(twice.is_empty(), "ids received more than once: {twice:?}");
    assert_eq!(
        first_arrivals(&received)
            .into_iter()
            .filter(|id| *id <= head)
            .collect::<Vec<_>>(),
        (1..=head).collect::<Vec<_>>(),
        "every id, in order"
    );
    assert!(
        by_id.values().flatten().all(|pid| *pid == leader_pid),
        "only the lease holder (pid {leader_pid}) sent"
    );
    assert_eq!(leaders(&refs).await.iter().filter(|h| **h).count(), 1);
    assert!(
        cursor(&mut conn).await >= head,
        "the cursor reached the table's head"
    );
    eprintln!(
        "{head} records from two nodes, each received once, all sent by node {leader} (pid {leader_pid})"
    );
    conn.close().await.unwrap();
    drop(nodes);
    drop(rsyslog);
    db.drop_all().await;
}

#[tokio::test]
async fn when_the_exporting_node_is_killed_another_takes_over_within_the_lease_time_and_nothing_is_missing()
 {
    let Some(mut deployment) = Deployment::start("export_lease_take_over", 3).await else {
        return;
    };
    let nodes: Vec<&TestServer> = deployment.nodes.iter().collect();
    let (leader, _) = the_leader(&nodes, Duration::from_secs(20)).await;
    let dead = deployment.nodes.remove(leader);
    let dead_pid = dead.pid().to_string();
    let survivors: Vec<Arc<TestServer>> = std::mem::take(&mut deployment.nodes)
        .into_iter()
        .map(Arc::new)
        .collect();
    let mut db = deployment.database().await;
    let watching = Arc::new(AtomicBool::new(false));
    let watcher = watch_cursor(deployment.db.owner_url.clone(), watching.clone());

    // Load on the two other nodes; the holder exports it.
    let alice = survivors[0].user("alice").await;
    let space = survivors[0].space(&alice, "load").await;
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let workers = load(&survivors, &alice, space, &stop, &done);
    deployment
        .rsyslog
        .wait_for(Duration::from_secs(30), |r| r.len() >= 300)
        .await;

    // kill -9 of the exporting node, mid-stream.
    let dead_dir = dead.stop().await;
    let killed_at = Instant::now();
    let cursor_at_kill = cursor(&mut db).await;
    let refs: Vec<&TestServer> = survivors.iter().map(|n| n.as_ref()).collect();
    let (new_leader, _) = the_leader(&refs, LEASE_RETRY + TAKE_OVER_SLACK).await;
    let took_over = killed_at.elapsed();
    let new_pid = refs[new_leader].pid().to_string();

    // More load under the new holder, then the collector must hold the whole table.
    let at_take_over = done.load(Ordering::Relaxed);
    while done.load(Ordering::Relaxed) < at_take_over + 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_load(&stop, workers).await;
    let head = head(&mut db).await;
    let received = collector_has_all(&deployment.rsyslog, head).await;
    backlogs_drain(&refs).await;
    assert!(
        cursor(&mut db).await >= head,
        "the cursor reached the table's head"
    );
    watching.store(true, Ordering::Relaxed);
    let samples = watcher.await.unwrap();

    // No gap, and the first arrivals are in id order across the take-over.
    let by_id = arrivals(&received, head);
    assert_eq!(by_id.len() as i64, head, "every id from 1 to {head}");
    assert_eq!(
        first_arrivals(&received)
            .into_iter()
            .filter(|id| *id <= head)
            .collect::<Vec<_>>(),
        (1..=head).collect::<Vec<_>>(),
        "first arrivals in id order"
    );
    // Duplicates: only records the dead holder had sent but not yet confirmed (a syslog
    // batch is confirmed once the connection stayed healthy for confirm_after_ms, 500 ms):
    // the new holder resumes at the shared cursor, so it sends them again. They are the ids
    // right after the cursor as the dead holder left it, each sent once by each holder.
    let twice: Vec<i64> = by_id
        .iter()
        .filter(|(_, from)| from.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    for id in &twice {
        assert_eq!(
            by_id[id],
            vec![dead_pid.clone(), new_pid.clone()],
            "record {id} arrived from {:?}",
            by_id[id]
        );
    }
    // (The dead holder's last cursor update may commit a moment after the kill: the new
    // holder resumes at or after the cursor read just after it.)
    let resumed_after = twice.first().map_or(cursor_at_kill, |first| first - 1);
    assert!(resumed_after >= cursor_at_kill, "resumed before the cursor");
    let expected: Vec<i64> = (resumed_after + 1..).take(twice.len()).collect();
    assert_eq!(
        twice, expected,
        "the re-sent ids follow the cursor the dead holder left"
    );
    assert!(
        twice.len() < 2000,
        "{} re-sends: more than the dead holder's last unconfirmed batches",
        twice.len()
    );
    // Before the kill only the dead holder sent, after it only the new one.
    assert!(
        by_id
            .iter()
            .all(|(id, from)| *id > resumed_after || *from == vec![dead_pid.clone()]),
        "a record up to the cursor came from another node than the holder"
    );
    eprintln!(
        "node {new_leader} took over {took_over:?} after the kill (lease retry {LEASE_RETRY:?}); \
         {head} records, none missing, {} re-sent after the cursor {resumed_after}; \
         the cursor never rewound in {samples} samples",
        twice.len()
    );
    db.close().await.unwrap();
    drop(dead_dir);
    drop(survivors);
    deployment.finish().await;
}

#[tokio::test]
async fn a_holder_whose_lease_connection_is_cut_stops_exporting_and_another_node_takes_over() {
    let Some(deployment) = Deployment::start("export_lease_cut", 2).await else {
        return;
    };
    let nodes: Vec<&TestServer> = deployment.nodes.iter().collect();
    let (leader, _) = the_leader(&nodes, Duration::from_secs(20)).await;
    let alice = nodes[0].user("alice").await;
    let space = nodes[0].space(&alice, "cut").await;
    for i in 0..20 {
        nodes[i % 2]
            .message(&alice, space, &format!("before {i}"))
            .await;
    }

    // The database ends the holder's lease session (as it does for a client it gave up on)
    // while the holder itself runs on.
    let mut admin = PgConnection::connect(&crate::support::pg::admin_url())
        .await
        .unwrap();
    // Only the sink's lease: an audit append holds another advisory lock for the length of
    // its transaction, and would be counted (and cut) too.
    let key = lease_key(SINK);
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l \
         JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1 \
         AND l.objsubid = 1 AND l.classid::bigint = $2 AND l.objid::bigint = $3",
    )
    .bind(&deployment.db.name)
    .bind((key >> 32) & 0xffff_ffff)
    .bind(key & 0xffff_ffff)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(cut, 1, "one session holds the sink's lease");
    assert!(
        nodes[leader]
            .logs_eventually("audit export lease lost: stopped exporting")
            .await,
        "the holder says it stopped"
    );
    // The other node takes the lease at its next try (the former holder tries again too, so
    // either may win; exactly one holds it).
    let (holder, took) = the_leader(&nodes, LEASE_RETRY + TAKE_OVER_SLACK).await;

    for i in 0..20 {
        nodes[i % 2]
            .message(&alice, space, &format!("after {i}"))
            .await;
    }
    let mut db = deployment.database().await;
    let head = head(&mut db).await;
    let received = collector_has_all(&deployment.rsyslog, head).await;
    let by_id = arrivals(&received, head);
    assert_eq!(by_id.len() as i64, head, "every id from 1 to {head}");
    // Re-sends: what the former holder had sent but not confirmed when it stopped.
    assert!(
        by_id.values().all(|from| from.len() <= 2),
        "a record arrived 3 times"
    );
    let twice = by_id.values().filter(|from| from.len() > 1).count();
    eprintln!(
        "lease cut: node {holder} holds it {took:?} later; {head} records, none missing, {twice} re-sent"
    );
    db.close().await.unwrap();
    admin.close().await.unwrap();
    deployment.finish().await;
}

/// The audit ids in a JSON-lines sink's file (none while it does not exist).
fn file_ids(path: &std::path::Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["event"]["sequence"].as_i64())
        .collect()
}

/// Waits until the files together hold every id from 1 to `head`; the arrivals per id.
async fn files_have_all(files: &[std::path::PathBuf], head: i64) -> BTreeMap<i64, usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut by_id: BTreeMap<i64, usize> = BTreeMap::new();
        for file in files {
            for id in file_ids(file) {
                *by_id.entry(id).or_default() += 1;
            }
        }
        if (1..=head).all(|id| by_id.contains_key(&id)) {
            return by_id;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {head} records",
            by_id.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_servers_on_one_sqlite_file_export_once_and_the_survivor_takes_over_a_kill() {
    // Each server writes the shared sink to a file of its own, so the files show who sent.
    let sink = |out: &std::path::Path| {
        format!(
            "[audit]\nexport_lease_retry_ms = {}\n\n[[audit.sinks]]\nname = \"{SINK}\"\nkind = \"json-file\"\npath = \"{}\"\n",
            LEASE_RETRY.as_millis(),
            out.display()
        )
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let outs = [a_dir.path().join("a.jsonl"), b_dir.path().join("b.jsonl")];
    let a = TestServer::start_configured(a_dir, &sink(&outs[0]), &[]).await;
    let shared = a.data_dir();
    let file = |name: &str| shared.join(name).to_str().unwrap().to_owned();
    let url = format!("sqlite:{}", file("natterjack.db"));
    let b_env = [
        ("NATTERJACK_DATABASE__URL", url.as_str()),
        ("NATTERJACK_AUDIT__KEY_FILE", &file("audit.key")),
        ("NATTERJACK_ENCRYPTION__KEY_FILE", &file("encryption.key")),
    ];
    let b = TestServer::start_configured(b_dir, &sink(&outs[1]), &b_env).await;
    let mut nodes = vec![a, b];
    let refs: Vec<&TestServer> = nodes.iter().collect();
    let (leader, _) = the_leader(&refs, Duration::from_secs(20)).await;

    let alice = refs[1].user("alice").await;
    let space = refs[0].space(&alice, "shared file").await;
    for i in 0..10 {
        refs[i % 2].message(&alice, space, &format!("m{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let head = crate::support::audit_records_in(&shared).await.len() as i64;
    let by_id = files_have_all(&outs, head).await;
    assert!(
        by_id.range(..=head).all(|(_, n)| *n == 1),
        "each record once"
    );
    assert!(
        file_ids(&outs[1 - leader]).is_empty(),
        "the server without the lease sent nothing"
    );

    // kill -9 of the holder: the kernel drops its lock with the process.
    let dead = nodes.remove(leader);
    let _dead_dir = dead.stop().await;
    let killed_at = Instant::now();
    let survivor = &nodes[0];
    the_leader(&[survivor], LEASE_RETRY + TAKE_OVER_SLACK).await;
    let took_over = killed_at.elapsed();
    for i in 0..10 {
        survivor.message(&alice, space, &format!("after {i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let head = crate::support::audit_records_in(&shared).await.len() as i64;
    let by_id = files_have_all(&outs, head).await;
    // A file sink confirms on fdatasync, so at most the batch written before the cursor
    // was saved is sent again.
    assert!(by_id.values().all(|n| *n <= 2));
    let twice = by_id.values().filter(|n| **n == 2).count();
    assert!(twice <= 256, "{twice} re-sends: more than one batch");
    eprintln!(
        "sqlite: the survivor took over {took_over:?} after the kill; {head} records, none missing, {twice} re-sent"
    );
}

/// The advisory lock key of a sink's lease, derived as the PostgreSQL lease derives it
/// (`natterjack_storage::postgres::export_lease::lock_key`): the first 64 bits of SHA-256
/// over a fixed prefix and the sink's name.
fn lease_key(sink: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"natterjack export lease\0")
        .chain_update(sink.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}
