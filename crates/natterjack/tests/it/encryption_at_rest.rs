//! Encryption at rest through the real binary: the key-encryption key's sources and their
//! refusals, rotation while clients read and write, and a server killed in the middle of
//! re-sealing that finishes the pass after a restart.

use crate::support::pg::PgDatabase;
use crate::support::{TestServer, cli};
use reqwest::StatusCode;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const KEY_HEX: &str = "8f0e6d1c2b3a49586776859483a2b1c0d0e1f2031425364758697a8b9cadbecf";

/// Rows still sealed under retired keys, as `keys status` reports them.
fn remaining(data: &Path) -> u64 {
    remaining_with(data, &[])
}

/// [`remaining`] with extra environment (the PostgreSQL URLs).
fn remaining_with(data: &Path, env: &[(&str, &str)]) -> u64 {
    let (ok, out, err) = cli(data, &["keys", "status"], "", env);
    assert!(ok, "keys status failed: {err}");
    out.lines()
        .map(|line| line.split_whitespace().collect::<Vec<&str>>())
        .filter(|cols| cols.len() == 4 && cols[1] == "retired")
        .map(|cols| cols[2].parse::<u64>().unwrap() + cols[3].parse::<u64>().unwrap())
        .sum()
}

/// Polls [`remaining_with`] every 500 ms, at most `tries` times, until no row is left under a
/// retired key; returns what was left at the last look.
async fn resealed_within(data: &Path, env: &[(&str, &str)], tries: u32) -> u64 {
    let mut left = remaining_with(data, env);
    for _ in 1..tries {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = remaining_with(data, env);
    }
    left
}

#[tokio::test]
async fn a_key_file_other_users_can_read_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("kek");
    std::fs::write(&key, KEY_HEX).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let key_var = key.display().to_string();
    let env = [("NATTERJACK_ENCRYPTION__KEY_FILE", key_var.as_str())];
    let (ok, _, err) = cli(&dir.path().join("data"), &["migrate"], "", &env);
    assert!(!ok);
    assert!(err.contains(&key_var) && err.contains("chmod 600"), "{err}");
    // Made private, the same file is accepted.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, _, err) = cli(&dir.path().join("data"), &["migrate"], "", &env);
    assert!(ok, "{err}");
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_refused_naming_the_data_key() {
    let server = TestServer::start().await;
    let data = server.data_dir();
    let dir = server.stop().await;
    std::fs::remove_file(data.join("encryption.key")).unwrap();
    let (ok, _, err) = cli(&data, &["migrate"], "", &[]);
    assert!(!ok);
    assert!(
        err.contains("is missing but the database holds data keys 1"),
        "{err}"
    );
    assert!(
        !data.join("encryption.key").exists(),
        "no new key was generated"
    );
    let (ok, _, err) = cli(
        &data,
        &["migrate"],
        "",
        &[("NATTERJACK_ENCRYPTION__KEY", KEY_HEX)],
    );
    assert!(!ok);
    assert!(
        err.contains("data key 1 is wrapped by key-encryption key"),
        "{err}"
    );
    assert!(
        !err.contains(KEY_HEX),
        "the key never appears in an error: {err}"
    );
    drop(dir);
}

#[tokio::test]
async fn a_key_command_supplies_the_key_and_a_failing_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = dir.path().join("kek");
    std::fs::write(&key, KEY_HEX).unwrap();
    let config = dir.path().join("natterjack.toml");
    std::fs::write(
        &config,
        format!(
            "[encryption]\nkey_command = [\"cat\", \"{}\"]\n",
            key.display()
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let (ok, _, err) = cli(&data, &["--config", &config_arg, "migrate"], "", &[]);
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&data, &["--config", &config_arg, "keys", "status"], "", &[]);
    assert!(ok, "{err}");
    assert!(out.contains("   1  current"), "{out}");
    std::fs::write(&config, "[encryption]\nkey_command = [\"false\"]\n").unwrap();
    let (ok, _, err) = cli(&data, &["--config", &config_arg, "migrate"], "", &[]);
    assert!(!ok);
    assert!(err.contains("encryption.key_command false failed"), "{err}");
}

#[tokio::test]
async fn rotation_under_concurrent_reads_and_writes_fails_no_request_and_leaves_every_row_under_the_new_key()
 {
    let server = TestServer::start_with(&[("NATTERJACK_ENCRYPTION__KEY_POLL_SECS", "1")]).await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "rotating").await;
    for i in 0..300 {
        server
            .message(&alice, space, &format!("before rotation {i} ✓"))
            .await;
    }
    let data = server.data_dir();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let traffic = {
        let (client, stop, answered) = (server.client(), stop.clone(), answered.clone());
        let (post, read) = (
            server.url(&format!("/spaces/{space}/messages")),
            server.url(&format!("/spaces/{space}/messages?limit=100")),
        );
        let alice = alice.clone();
        tokio::spawn(async move {
            let (mut requests, mut failures) = (0u32, Vec::new());
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let posted = client
                    .post(&post)
                    .basic_auth(&alice.name, Some(&alice.password))
                    .json(&serde_json::json!({ "message": format!("during rotation {i} ✓") }))
                    .send()
                    .await
                    .unwrap();
                let listed = client
                    .get(&read)
                    .basic_auth(&alice.name, Some(&alice.password))
                    .send()
                    .await
                    .unwrap();
                requests += 2;
                answered.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
                for status in [posted.status(), listed.status()] {
                    if !status.is_success() {
                        failures.push(status);
                    }
                }
            }
            (requests, failures)
        })
    };
    let rotate_dir = data.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        cli(
            &rotate_dir,
            &["keys", "rotate"],
            "",
            &[
                ("NATTERJACK_ENCRYPTION__RESEAL_BATCH", "25"),
                ("NATTERJACK_ENCRYPTION__RESEAL_PAUSE_MS", "100"),
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "keys rotate failed: {err}");
    let during = answered.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        during >= 10,
        "only {during} requests overlapped the rotation"
    );
    assert!(out.contains("data key 2 is now current"), "{out}");
    // The server has taken up the new key by now; keep the traffic a little longer.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (requests, failures) = traffic.await.unwrap();
    assert!(requests > 0);
    assert!(
        failures.is_empty(),
        "{failures:?} of {requests} requests failed"
    );
    // Writes made before the server re-read the keys were sealed under key 1; its resealer
    // moves them within a poll or two.
    let left = resealed_within(&data, &[], 41).await;
    assert_eq!(left, 0, "rows still under the retired key");
    let listed = server
        .call(
            Some(&alice),
            reqwest::Method::GET,
            &format!("/spaces/{space}/messages?limit=100"),
            None,
        )
        .await;
    assert_eq!(listed.status(), StatusCode::OK);
    let (ok, out, err) = cli(&data, &["audit", "verify"], "", &[]);
    assert!(ok, "audit verify: {out} {err}");
    let (ok, _, err) = cli(&data, &["keys", "destroy", "1"], "", &[]);
    assert!(ok, "{err}");
}

#[tokio::test]
async fn a_server_killed_in_the_middle_of_re_sealing_finishes_the_pass_after_a_restart() {
    let slow = [
        ("NATTERJACK_ENCRYPTION__KEY_POLL_SECS", "1"),
        ("NATTERJACK_ENCRYPTION__RESEAL_BATCH", "5"),
        ("NATTERJACK_ENCRYPTION__RESEAL_PAUSE_MS", "150"),
    ];
    let server = TestServer::start_with(&slow).await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "interrupted").await;
    for i in 0..200 {
        server.message(&alice, space, &format!("message {i}")).await;
    }
    let data = server.data_dir();
    let (ok, _, err) = cli(&data, &["keys", "rotate", "--no-wait"], "", &[]);
    assert!(ok, "{err}");
    // 200 messages and the space's name; the server's pass may have begun already.
    let total = 201;
    assert!(remaining(&data) <= total);
    // Wait for the server's pass to begin, then kill it mid-pass.
    let mut left = total;
    for _ in 0..100 {
        left = remaining(&data);
        if left < total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = server.stop().await;
    let left_at_kill = remaining(&data);
    assert!(
        left < total && left_at_kill > 0,
        "killed at {left_at_kill} of {total}"
    );
    let server = TestServer::start_in(dir, &[("NATTERJACK_ENCRYPTION__KEY_POLL_SECS", "1")]).await;
    let left = resealed_within(&data, &[], 60).await;
    assert_eq!(left, 0, "the restarted server did not finish the pass");
    let listed = server
        .call(
            Some(&alice),
            reqwest::Method::GET,
            &format!("/spaces/{space}/messages?limit=100"),
            None,
        )
        .await;
    assert_eq!(listed.status(), StatusCode::OK);
    let body: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(body["messages"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn a_backup_taken_while_serving_stays_sealed_and_restores_only_with_the_key() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "Backup Kingfisher").await;
    let message = server
        .message(&alice, space, "PELICAN-4411 in the backup ✓")
        .await;
    let data = server.data_dir();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("natterjack-backup.db");
    let copy_arg = copy.display().to_string();
    // The runbook's order: the audit anchor first (it only lags the log, so taken before
    // the copy it never runs ahead of it), then the database.
    let head = dir.path().join("audit.head");
    std::fs::copy(data.join("audit.head"), &head).unwrap();
    let (ok, out, err) = cli(&data, &["backup", &copy_arg], "", &[]);
    assert!(ok, "{err}");
    assert!(out.contains("needs key-encryption key"), "{out}");
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bytes = std::fs::read(&copy).unwrap();
    for secret in ["PELICAN-4411", "Backup Kingfisher"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the backup holds {secret:?}"
        );
    }
    let (ok, _, err) = cli(&data, &["backup", &copy_arg], "", &[]);
    assert!(
        !ok && err.contains("cannot create"),
        "an existing file is never overwritten: {err}"
    );
    let original = server.stop().await;

    // Restored into a new data directory: without the key it is refused, with it served.
    let restored = tempfile::tempdir().unwrap();
    let restored_data = restored.path().join("data");
    std::fs::create_dir_all(&restored_data).unwrap();
    std::fs::set_permissions(&restored_data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(&copy, restored_data.join("natterjack.db")).unwrap();
    let (ok, _, err) = cli(&restored_data, &["keys", "status"], "", &[]);
    assert!(!ok && err.contains("holds data keys 1"), "{err}");
    for file in ["encryption.key", "audit.key"] {
        std::fs::copy(data.join(file), restored_data.join(file)).unwrap();
    }
    std::fs::copy(&head, restored_data.join("audit.head")).unwrap();
    drop(original);
    let server = TestServer::start_in(restored, &[]).await;
    let read = server
        .call(
            Some(&alice),
            reqwest::Method::GET,
            &format!("/spaces/{space}/messages/{message}"),
            None,
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    let body: serde_json::Value = read.json().await.unwrap();
    assert_eq!(body["message"], "PELICAN-4411 in the backup ✓");
    let restored_data = server.data_dir();
    let (ok, out, err) = cli(&restored_data, &["audit", "verify"], "", &[]);
    assert!(ok && out.starts_with("OK"), "{out}{err}");
}

#[tokio::test]
async fn a_message_whose_ciphertext_was_moved_answers_500_and_its_audit_record_names_the_row() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "tampered").await;
    let victim = server.message(&alice, space, "the original ✓").await;
    let other = server
        .message(&alice, space, "PELICAN-9090 elsewhere")
        .await;
    // With the database file alone (no key), move one row's ciphertext onto another's,
    // dropping the trigger that would refuse it, as an attacker with the file would.
    let owner = rusqlite::Connection::open(server.data_dir().join("natterjack.db")).unwrap();
    owner
        .execute_batch("DROP TRIGGER messages_are_only_resealed")
        .unwrap();
    owner
        .execute(
            "UPDATE messages SET body = (SELECT body FROM messages WHERE id = ?1) WHERE id = ?2",
            (other, victim),
        )
        .unwrap();
    drop(owner);
    let read = server
        .call(
            Some(&alice),
            reqwest::Method::GET,
            &format!("/spaces/{space}/messages/{victim}"),
            None,
        )
        .await;
    assert_eq!(read.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let request_id = read.headers()["x-request-id"].to_str().unwrap().to_owned();
    let text = read.text().await.unwrap();
    assert!(
        !text.contains("PELICAN") && !text.contains("sealed"),
        "{text}"
    );
    let record = server.completion(&request_id).await;
    let reason = record.record.reason.unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "sealed value unreadable: messages.body of row {victim}: does not open under data key 1"
        )),
        "{reason}"
    );
    assert!(!reason.contains("PELICAN"), "{reason}");
    // The other message is untouched.
    let fine = server
        .call(
            Some(&alice),
            reqwest::Method::GET,
            &format!("/spaces/{space}/messages/{other}"),
            None,
        )
        .await;
    assert_eq!(fine.status(), StatusCode::OK);
}

#[tokio::test]
async fn on_postgres_rotation_under_traffic_survives_a_killed_server_and_finishes_after_restart() {
    let Some(db) = PgDatabase::fresh("rotation_on_postgres").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    db.prepare(&data);
    let env = db.env();
    let mut slow: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let base = slow.clone();
    slow.extend([
        ("NATTERJACK_ENCRYPTION__KEY_POLL_SECS", "1"),
        ("NATTERJACK_ENCRYPTION__RESEAL_BATCH", "5"),
        ("NATTERJACK_ENCRYPTION__RESEAL_PAUSE_MS", "150"),
    ]);
    let server = TestServer::start_in(dir, &slow).await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "on postgres").await;
    for i in 0..150 {
        server
            .message(&alice, space, &format!("message {i} ✓"))
            .await;
    }
    let (ok, out, err) = cli(&data, &["keys", "rotate", "--no-wait"], "", &base);
    assert!(ok, "{out}{err}");
    // 150 messages and the space's name; the server's pass may have begun already.
    let total = 151;
    assert!(remaining_with(&data, &base) <= total);
    // Reads and writes while the server re-seals, until it is half way through (it sees the
    // new key at its next poll, so a fast client can be done with a fixed number of requests
    // before the pass begins): none fails.
    let client = server.client();
    let mut failures = Vec::new();
    let mut left = total;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for i in 0.. {
        let posted = client
            .post(server.url(&format!("/spaces/{space}/messages")))
            .basic_auth(&alice.name, Some(&alice.password))
            .json(&serde_json::json!({ "message": format!("during {i}") }))
            .send()
            .await
            .unwrap()
            .status();
        let read = client
            .get(server.url(&format!("/spaces/{space}/messages?limit=100")))
            .basic_auth(&alice.name, Some(&alice.password))
            .send()
            .await
            .unwrap()
            .status();
        failures.extend([posted, read].into_iter().filter(|s| !s.is_success()));
        if i % 20 == 19 {
            left = remaining_with(&data, &base);
            if left < total / 2 || std::time::Instant::now() > deadline {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        left < total,
        "the server's pass never started within a minute"
    );
    let dir = server.stop().await;
    let at_kill = remaining_with(&data, &base);
    assert!(at_kill > 0, "the pass finished before the kill");
    let fast: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .chain([("NATTERJACK_ENCRYPTION__KEY_POLL_SECS", "1")])
        .collect();
    let server = TestServer::start_in(dir, &fast).await;
    let left = resealed_within(&data, &base, 60).await;
    assert_eq!(left, 0, "the restarted server did not finish the pass");
    let page = server
        .call(
            Some(&alice),
            reqwest::Method::GET,
            &format!("/spaces/{space}/messages?limit=100"),
            None,
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let dir = server.stop().await;
    let (ok, out, err) = cli(&dir.path().join("data"), &["audit", "verify"], "", &base);
    assert!(ok && out.starts_with("OK"), "{out}{err}");
    db.drop_all().await;
}
