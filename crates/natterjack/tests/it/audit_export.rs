//! Audit export without an external collector: ECS JSON lines on standard output, and a
//! JSON file sink that resumes from its persisted cursor after the server is killed.

use crate::support::TestServer;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The audit ids in the JSON lines of `text`.
fn ids(lines: impl Iterator<Item = String>) -> Vec<i64> {
    lines
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter_map(|v| v["event"]["sequence"].as_i64())
        .collect()
}

fn file_ids(path: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    ids(text.lines().map(str::to_owned))
}

/// Waits until `read` shows every id from 1 to `head`.
async fn wait_for_all(head: i64, read: impl Fn() -> Vec<i64>) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = read();
        let seen: BTreeSet<i64> = got.iter().copied().collect();
        if (1..=head).all(|id| seen.contains(&id)) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {head} records",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn head(server: &TestServer) -> i64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.audit_records().await.last().expect("records").id
}

#[tokio::test]
async fn a_json_stdout_sink_prints_every_record_as_one_ecs_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[[audit.sinks]]\nname = \"stdout\"\nkind = \"json-stdout\"\n";
    let server = TestServer::start_configured(dir, toml, &[]).await;
    let alice = server.user("alice").await;
    server.space(&alice, "printed").await;
    let head = head(&server).await;
    let got = wait_for_all(head, || ids(server.stdout_lines().into_iter())).await;
    assert_eq!(got, (1..=head).collect::<Vec<_>>());
    let first: Value = serde_json::from_str(
        server
            .stdout_lines()
            .iter()
            .find(|l| l.starts_with('{'))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["ecs"]["version"], "8.11.0");
    assert_eq!(first["event"]["dataset"], "natterjack.audit");
}

#[tokio::test]
async fn a_killed_server_resumes_export_from_its_persisted_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let toml = format!(
        "[[audit.sinks]]\nname = \"file\"\nkind = \"json-file\"\npath = \"{}\"\n",
        path.display()
    );
    let server = TestServer::start_configured(dir, &toml, &[]).await;
    let alice = server.user("alice").await;
    server.space(&alice, "before").await;
    let first_head = head(&server).await;
    wait_for_all(first_head, || file_ids(&path)).await;
    // Give the exporter a moment to save its cursor, then kill the process outright.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let dir = server.stop().await;

    let server = TestServer::start_configured(dir, &toml, &[]).await;
    server.space(&alice, "after").await;
    let second_head = head(&server).await;
    assert!(second_head > first_head);
    let got = wait_for_all(second_head, || file_ids(&path)).await;
    // Every record once, in order: the restarted exporter neither skipped nor repeated any.
    assert_eq!(got, (1..=second_head).collect::<Vec<_>>());
}
