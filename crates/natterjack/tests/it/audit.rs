//! The audit log: every request, allowed or refused, leaves an exact record; state changes
//! leave an intent first; the chain exposes every kind of tampering; a crash loses nothing
//! that a client was told had succeeded.

use crate::support::{Creds, PASSWORD, TestServer, cli, client_trusting};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// A read-only view of a data directory's database: each query opens its own connection,
/// so it sees everything committed before it.
#[derive(Clone)]
struct Db(std::path::PathBuf);

impl Db {
    fn connection(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            &self.0,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .unwrap()
    }

    /// The first column of every row `sql` selects with `params`.
    fn column<T: rusqlite::types::FromSql>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Vec<T> {
        self.connection()
            .prepare(sql)
            .unwrap()
            .query_map(params, |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The one value `sql` selects with `params`.
    fn scalar<T: rusqlite::types::FromSql>(&self, sql: &str, params: impl rusqlite::Params) -> T {
        self.connection()
            .query_row(sql, params, |r| r.get(0))
            .unwrap()
    }
}

async fn db(data_dir: &Path) -> Db {
    Db(data_dir.join("natterjack.db"))
}

/// The audit rows of one request once its completion record is committed (completions are
/// queued as the response leaves, so they may land a moment after it).
async fn records_of(pool: &Db, request_id: &str) -> Vec<HashMap<String, Value>> {
    for _ in 0..250 {
        let records = rows_of(pool, request_id).await;
        if records.iter().any(|r| r["phase"] == "complete") {
            return records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    rows_of(pool, request_id).await
}

/// The audit rows of one request, by request id, as committed right now.
async fn rows_of(pool: &Db, request_id: &str) -> Vec<HashMap<String, Value>> {
    let conn = pool.connection();
    let mut stmt = conn
        .prepare(
            "SELECT phase, transport, client_ip, principal, auth_method, operation, target, status, decision, reason \
             FROM audit_log WHERE request_id = ?1 ORDER BY id",
        )
        .unwrap();
    stmt.query_map([request_id], |r| {
        let mut m = HashMap::new();
        for col in [
            "phase",
            "transport",
            "client_ip",
            "principal",
            "auth_method",
            "operation",
            "target",
            "decision",
            "reason",
        ] {
            let v: Option<String> = r.get(col)?;
            m.insert(col.to_owned(), v.map_or(Value::Null, Value::String));
        }
        let status: Option<i64> = r.get("status")?;
        m.insert("status".to_owned(), status.map_or(Value::Null, Value::from));
        Ok(m)
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_owned()
}

/// Checks the `complete` record of a request field by field.
fn assert_complete(records: &[HashMap<String, Value>], expected: Value, what: &str) {
    let complete: Vec<_> = records
        .iter()
        .filter(|r| r["phase"] == "complete")
        .collect();
    assert_eq!(
        complete.len(),
        1,
        "{what}: exactly one complete record: {records:?}"
    );
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&complete[0][k], v, "{what}: field {k}");
    }
    assert_eq!(complete[0]["transport"], "rest");
}

#[tokio::test]
async fn every_outcome_class_leaves_an_exact_record_without_secrets() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_RATE_LIMIT__ENABLED", "true"),
        ("NATTERJACK_RATE_LIMIT__REGISTRATION__BURST", "2"),
        ("NATTERJACK_RATE_LIMIT__REGISTRATION__PER_SECOND", "0.001"),
    ])
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let pool = db(&server.data_dir()).await;
    let client = server.client();
    let secret_message = "the launch code is 0000";

    let r = server
        .call(
            Some(&alice),
            Method::POST,
            "/spaces",
            Some(json!({"name": "ops"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created = records_of(&pool, &request_id(&r)).await;
    assert_eq!(
        created.len(),
        2,
        "a state change has an intent and a completion"
    );
    assert_eq!(created[0]["phase"], "intent");
    assert_eq!(created[0]["decision"], "pending");
    assert_eq!(created[0]["status"], Value::Null);
    assert_eq!(created[0]["principal"], "alice");
    assert_complete(
        &created,
        json!({"status": 201, "decision": "allow", "principal": "alice", "auth_method": "basic",
        "operation": "POST /spaces", "target": "", "client_ip": "127.0.0.1", "reason": null}),
        "201",
    );
    let space: i64 = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = server
        .call(
            Some(&alice),
            Method::POST,
            &format!("/spaces/{space}/messages"),
            Some(json!({"message": secret_message})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let cases: Vec<(u16, reqwest::RequestBuilder, Value)> = vec![
        (
            200,
            client.get(server.url("/health")),
            json!({"decision": "allow", "principal": null, "auth_method": "none", "operation": "GET /health"}),
        ),
        (
            200,
            client
                .get(server.url(&format!("/spaces/{space}")))
                .basic_auth("alice", Some(PASSWORD)),
            json!({"decision": "allow", "principal": "alice", "operation": "GET /spaces/{id}", "target": format!("id={space}"),
                   "reason": format!("holds rwd on space {space}")}),
        ),
        (
            400,
            client
                .get(server.url("/spaces/abc"))
                .basic_auth("alice", Some(PASSWORD)),
            json!({"decision": "reject", "principal": "alice", "target": "id=abc", "reason": "invalid id: must be a positive integer below 2^63"}),
        ),
        (
            401,
            client
                .get(server.url("/spaces"))
                .basic_auth("alice", Some("not-the-password")),
            json!({"decision": "deny", "principal": null, "auth_method": "basic", "reason": "missing or wrong credentials"}),
        ),
        (
            403,
            client
                .get(server.url(&format!("/spaces/{space}/messages")))
                .basic_auth("bob", Some(PASSWORD)),
            json!({"decision": "deny", "principal": "bob", "reason": "missing permission on this space"}),
        ),
        (
            404,
            client
                .get(server.url(&format!("/spaces/{space}/messages/999")))
                .basic_auth("alice", Some(PASSWORD)),
            json!({"decision": "reject", "target": format!("id={space} msgId=999"), "reason": "not found: no such message in this space"}),
        ),
        (
            405,
            client
                .put(server.url("/spaces"))
                .basic_auth("alice", Some(PASSWORD)),
            json!({"decision": "reject", "operation": "PUT /spaces"}),
        ),
        (
            413,
            client
                .post(server.url("/spaces"))
                .basic_auth("alice", Some(PASSWORD))
                .header("content-type", "application/json")
                .body("x".repeat(20_000)),
            json!({"decision": "reject", "principal": null, "reason": "body over the size limit"}),
        ),
        (
            415,
            client
                .post(server.url("/spaces"))
                .basic_auth("alice", Some(PASSWORD))
                .header("content-type", "text/plain")
                .body("{}"),
            json!({"decision": "reject", "reason": "body is not application/json"}),
        ),
        (
            429,
            client
                .post(server.url("/users"))
                .json(&json!({"username": "carol", "password": PASSWORD})),
            json!({"decision": "deny", "operation": "POST /users", "reason": "rate limit registration exceeded"}),
        ),
    ];
    for (status, request, expected) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let id = request_id(&r);
        let mut expected = expected;
        expected["status"] = json!(status);
        assert_complete(&records_of(&pool, &id).await, expected, &status.to_string());
    }
    // 503: the hasher saturated (a separate server with one hashing slot and no queue).
    let busy = TestServer::start_with(&[
        ("NATTERJACK_AUTH__MAX_CONCURRENT_HASHES", "1"),
        ("NATTERJACK_AUTH__HASH_QUEUE_WAIT_MS", "0"),
    ])
    .await;
    let busy_client = busy.client();
    let attempts: Vec<_> = (0..24)
        .map(|i| {
            let req = busy_client
                .get(busy.url("/spaces"))
                .basic_auth(format!("nobody{i}"), Some("wrong-password-1"));
            tokio::spawn(req.send())
        })
        .collect();
    let busy_pool = db(&busy.data_dir()).await;
    let mut saw_503 = false;
    for a in attempts {
        let r = a.await.unwrap().unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            saw_503 = true;
            assert_complete(
                &records_of(&busy_pool, &request_id(&r)).await,
                json!({"status": 503, "decision": "error", "reason": "password hashing saturated"}),
                "503",
            );
        }
    }
    assert!(saw_503);

    // No secret reached the log: no password, no message text, no Authorization header.
    let dump: Vec<String> = pool.column(
        "SELECT request_id || phase || transport || client_ip || coalesce(principal,'') || auth_method || operation || \
         target || decision || coalesce(reason,'') FROM audit_log",
        [],
    );
    let everything = dump.join("\n");
    for secret in [PASSWORD, secret_message, "not-the-password", "Basic "] {
        assert!(
            !everything.contains(secret),
            "{secret:?} leaked into the audit log"
        );
    }
    let _ = (&alice, &bob);
}

#[tokio::test]
async fn n_mixed_requests_from_several_clients_leave_exactly_n_completion_records() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "s").await;
    let pool = db(&server.data_dir()).await;
    let count = |phase: &'static str| {
        let pool = pool.clone();
        async move { pool.scalar::<i64>("SELECT COUNT(*) FROM audit_log WHERE phase = ?1", [phase]) }
    };
    // The set-up's own completion records are queued as its responses leave: count from
    // once they are all written (the count stays put for 100 ms).
    let mut complete_before = count("complete").await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = count("complete").await;
        if now == complete_before {
            break;
        }
        complete_before = now;
    }
    let intent_before = count("intent").await;
    let ca = server.data_dir().join("ca.pem");
    let clients: Vec<Client> = (1..=3)
        .map(|i| client_trusting(&ca, |b| b.local_address(IpAddr::from([127, 0, 0, i]))))
        .collect();
    let mut tasks = Vec::new();
    let mut writes_authenticated = 0;
    for i in 0..60usize {
        let client = clients[i % 3].clone();
        let url = |p: &str| server.url(p);
        let req = match i % 5 {
            0 => client.get(url("/health")),
            1 => client
                .get(url(&format!("/spaces/{space}/messages")))
                .basic_auth("alice", Some(PASSWORD)),
            2 => {
                writes_authenticated += 1;
                client
                    .post(url(&format!("/spaces/{space}/messages")))
                    .basic_auth("alice", Some(PASSWORD))
                    .json(&json!({"message": format!("m{i}")}))
            }
            3 => client
                .get(url("/spaces"))
                .basic_auth("alice", Some("wrong-password-9")),
            _ => client.delete(url("/spaces/abc/messages/1")),
        };
        tasks.push(tokio::spawn(req.send()));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for _ in 0..250 {
        if count("complete").await - complete_before >= 60 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count("complete").await - complete_before, 60);
    // Intents: the authenticated posts only; the anonymous deletes are refused for want of
    // a principal before any intent is written.
    assert_eq!(count("intent").await - intent_before, writes_authenticated);
    let ips: Vec<String> = pool.column(
        "SELECT DISTINCT client_ip FROM audit_log WHERE phase = 'complete' ORDER BY 1",
        [],
    );
    assert_eq!(ips, vec!["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
}

/// A data directory with a known number of audit records, the server stopped.
async fn audited_data_dir() -> (tempfile::TempDir, i64) {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "s").await;
    for i in 0..3 {
        server.message(&alice, space, &format!("m{i}")).await;
    }
    // Five state changes: an intent and a completion each. Completions and the head anchor
    // follow the responses; wait until both have caught up before the hard stop.
    let expected = 10;
    let pool = db(&server.data_dir()).await;
    let head = server.data_dir().join("audit.head");
    for _ in 0..250 {
        let n: i64 = pool.scalar("SELECT COUNT(*) FROM audit_log", []);
        let anchored = std::fs::read_to_string(&head).unwrap_or_default();
        if n == expected && anchored.split_whitespace().next() == Some("10") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (server.stop().await, expected)
}

/// Copies the regular files of `from` (not the admin socket a killed server leaves behind).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A connection with the file owner's power (no authorizer) on a copy of the log whose
/// append-only triggers were dropped: what an intruder holding the database file has.
async fn owner_without_triggers(data: &Path) -> rusqlite::Connection {
    let owner = rusqlite::Connection::open(data.join("natterjack.db")).unwrap();
    owner
        .execute_batch(
            "DROP TRIGGER audit_log_is_never_updated; DROP TRIGGER audit_log_is_never_deleted",
        )
        .unwrap();
    owner
}

/// Applies `sql` as the database owner would (triggers dropped first), then runs
/// `natterjack audit verify`; returns its stdout and whether it succeeded.
async fn tamper_and_verify(source: &Path, sql: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(source, &data);
    if !sql.is_empty() {
        let owner = owner_without_triggers(&data).await;
        for statement in sql {
            owner.execute_batch(statement).unwrap();
        }
        drop(owner);
    }
    let (ok, stdout, _) = cli(&data, &["audit", "verify"], "", &[]);
    (ok, stdout)
}

#[tokio::test]
async fn audit_verify_finds_every_kind_of_tampering() {
    let (dir, n) = audited_data_dir().await;
    let data = dir.path().join("data");
    assert!(n >= 10, "{n} records");
    let (ok, out) = tamper_and_verify(&data, &[]).await;
    assert!(
        ok && out.trim() == format!("OK: {n} audit records, chain intact"),
        "{out}"
    );

    let cases: Vec<(&str, Vec<String>, i64)> = vec![
        (
            "an edited field",
            vec!["UPDATE audit_log SET status = 200 WHERE id = 5".into()],
            5,
        ),
        (
            "an edited principal",
            vec!["UPDATE audit_log SET principal = 'mallory' WHERE id = 7".into()],
            7,
        ),
        (
            "a deleted row",
            vec!["DELETE FROM audit_log WHERE id = 4".into()],
            5,
        ),
        (
            "an inserted row",
            vec![format!(
                "INSERT INTO audit_log SELECT {}, time, request_id, phase, transport, client_ip, principal, \
                auth_method, operation, target, status, decision, reason, duration_us, mac, count FROM audit_log WHERE id = 3",
                n + 1
            )],
            n + 1,
        ),
        (
            "two rows swapped",
            vec![
                "UPDATE audit_log SET id = 1000000 WHERE id = 3".into(),
                "UPDATE audit_log SET id = 3 WHERE id = 4".into(),
                "UPDATE audit_log SET id = 4 WHERE id = 1000000".into(),
            ],
            3,
        ),
        (
            "a truncated tail",
            vec!["DELETE FROM audit_log WHERE id > (SELECT MAX(id) - 2 FROM audit_log)".into()],
            n - 1,
        ),
    ];
    for (what, sql, first_bad) in cases {
        let statements: Vec<&str> = sql.iter().map(String::as_str).collect();
        let (ok, out) = tamper_and_verify(&data, &statements).await;
        assert!(!ok, "{what}: verify must fail: {out}");
        assert!(
            out.starts_with(&format!("FAIL: first bad record {first_bad}:")),
            "{what}: {out}"
        );
    }
}

#[tokio::test]
async fn a_server_refuses_to_start_on_a_log_whose_tail_was_removed() {
    let (dir, n) = audited_data_dir().await;
    let data = dir.path().join("data");
    let owner = owner_without_triggers(&data).await;
    owner
        .execute("DELETE FROM audit_log WHERE id > ?1", [n - 3])
        .unwrap();
    drop(owner);
    let (ok, _, stderr) = cli(&data, &["serve", "--listen", "127.0.0.1:0"], "", &[]);
    assert!(!ok);
    assert!(
        stderr.contains("audit log ends before its anchored head"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_missing_head_anchor_fails_verification_and_stops_the_server_from_starting() {
    let (dir, _) = audited_data_dir().await;
    let data = dir.path().join("data");
    std::fs::remove_file(data.join("audit.head")).unwrap();
    let (ok, out, _) = cli(&data, &["audit", "verify"], "", &[]);
    assert!(!ok);
    assert!(out.contains("anchor is missing"), "{out}");
    let (ok, _, stderr) = cli(&data, &["serve", "--listen", "127.0.0.1:0"], "", &[]);
    assert!(!ok);
    assert!(stderr.contains("anchor is missing"), "{stderr}");
}

#[tokio::test]
async fn only_admins_read_the_audit_log_newest_first_with_filters() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let r = server.call(Some(&bob), Method::GET, "/audit", None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (ok, _, stderr) = cli(
        &server.data_dir(),
        &["user", "admin", "alice", "--grant"],
        "",
        &[],
    );
    assert!(ok, "{stderr}");
    server.call(Some(&bob), Method::GET, "/spaces", None).await;
    let page: Value = server
        .call(
            Some(&alice),
            Method::GET,
            "/audit?principal=bob&limit=2",
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["principal"] == "bob"));
    assert!(
        records[0]["id"].as_i64() > records[1]["id"].as_i64(),
        "newest first"
    );
    assert_eq!(records[0]["operation"], "GET /spaces");
    let next = page["next"].as_str().unwrap();
    assert!(
        next.starts_with("/audit?after=") && next.contains("principal=bob"),
        "{next}"
    );
    let page2: Value = server
        .call(Some(&alice), Method::GET, next, None)
        .await
        .json()
        .await
        .unwrap();
    let records2 = page2["records"].as_array().unwrap();
    assert!(records2.iter().all(|r| r["principal"] == "bob"));
    assert!(
        records2
            .iter()
            .all(|r| r["id"].as_i64() < records[1]["id"].as_i64())
    );
    let r = server
        .call(Some(&alice), Method::GET, "/audit?since=tomorrow", None)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let all: Value = server
        .call(
            Some(&alice),
            Method::GET,
            "/audit?limit=100&since=2000-01-01T00:00:00Z",
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(all["records"].as_array().unwrap().len() > 4);
    let _ = Creds::new("x", "y");
}

#[tokio::test]
async fn a_crash_during_a_write_load_loses_no_acknowledged_message_or_its_record() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "load").await;
    let client = server.client();
    let url = server.url(&format!("/spaces/{space}/messages"));
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(i64, String)>::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, acknowledged) = (client.clone(), url.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let sent = client
                    .post(&url)
                    .basic_auth("alice", Some(PASSWORD))
                    .json(&json!({"message": format!("writer {w} message {i}")}))
                    .send()
                    .await;
                let Ok(r) = sent else { break };
                if r.status() != StatusCode::CREATED {
                    break;
                }
                let rid = request_id(&r);
                let Ok(body) = r.json::<Value>().await else {
                    break;
                };
                acknowledged
                    .lock()
                    .unwrap()
                    .push((body["id"].as_i64().unwrap(), rid));
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let dir = server.stop().await; // SIGKILL in the middle of the load
    for w in writers {
        let _ = w.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "the load wrote {} messages",
        acknowledged.len()
    );

    let data = dir.path().join("data");
    let (ok, out, stderr) = cli(&data, &["audit", "verify"], "", &[]);
    assert!(ok, "{out}{stderr}");
    let restarted = TestServer::start_in(dir, &[]).await;
    let pool = db(&restarted.data_dir()).await;
    for (message, rid) in &acknowledged {
        let r = restarted
            .call(
                Some(&alice),
                Method::GET,
                &format!("/spaces/{space}/messages/{message}"),
                None,
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "message {message} was acknowledged with 201"
        );
        // The intent was committed before the message; the completion was queued as the 201
        // left and may have been lost with the process, but never in place of the intent.
        let records = rows_of(&pool, rid).await;
        let first = records.first().map(|r| r["phase"].clone());
        assert_eq!(first, Some(json!("intent")), "message {message}");
        assert!(records.len() <= 2);
        if let Some(done) = records.get(1) {
            assert_eq!(done["status"], 201);
        }
    }
    // The restarted server extends the same chain.
    restarted
        .call(Some(&alice), Method::GET, "/spaces", None)
        .await;
    let (ok, out, _) = cli(&restarted.data_dir(), &["audit", "verify"], "", &[]);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_server_restarts_on_an_empty_log_anchored_at_its_start() {
    let first = TestServer::start().await;
    let dir = first.stop().await;
    let again = TestServer::start_in(dir, &[]).await;
    let r = again
        .client()
        .get(again.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
