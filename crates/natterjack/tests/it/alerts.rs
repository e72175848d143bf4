//! Anomaly flags: bursts of 401, 403 and 429 from one principal or one client address
//! raise an `alert` audit record, once per window, with the evidence; alerts reach the SIEM
//! sinks like every other record.

use crate::support::{Creds, TestServer};
use natterjack_core::audit::{Phase, StoredAuditRecord};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn alerts_in_table(server: &TestServer) -> Vec<StoredAuditRecord> {
    server
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r.record.phase == Phase::Alert)
        .collect()
}

fn targets(alerts: &[StoredAuditRecord], kind: &str) -> Vec<String> {
    let mut t: Vec<String> = alerts
        .iter()
        .filter(|a| a.record.operation == format!("alert {kind}"))
        .map(|a| a.record.target.clone())
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn bursts_of_401_403_and_429_each_raise_one_alert_per_subject_and_window() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("siem.jsonl");
    let toml = format!(
        "[audit.alerts]\nwindow_secs = 300\nunauthenticated = 4\nforbidden = 3\nrate_limited = 5\n\n\
         [[audit.sinks]]\nname = \"file\"\nkind = \"json-file\"\npath = \"{}\"\n",
        sink.display()
    );
    let server = TestServer::start_configured(
        dir,
        &toml,
        &[
            ("NATTERJACK_RATE_LIMIT__ENABLED", "true"),
            ("NATTERJACK_RATE_LIMIT__PER_IP__BURST", "40"),
            ("NATTERJACK_RATE_LIMIT__PER_IP__PER_SECOND", "0.01"),
        ],
    )
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let space = server.space(&alice, "private").await;

    // A password guesser on alice's account: alerts on the account and on the address.
    let guess = Creds::new("alice", "not-the-password-at-all");
    for _ in 0..4 {
        let r = server
            .call(Some(&guess), Method::GET, "/spaces", None)
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // bob probing a space he was never granted, twice the threshold: still one alert each.
    let path = format!("/spaces/{space}/messages");
    for _ in 0..6 {
        let r = server.call(Some(&bob), Method::GET, &path, None).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let before_flood = alerts_in_table(&server).await;
    assert_eq!(
        targets(&before_flood, "unauthenticated"),
        ["client_ip=127.0.0.1", "principal=alice"]
    );
    assert_eq!(
        targets(&before_flood, "forbidden"),
        ["client_ip=127.0.0.1", "principal=bob"]
    );
    assert!(targets(&before_flood, "rate_limited").is_empty());

    // A flood from one address until the per-address limit answers 429.
    let mut refused = 0;
    for _ in 0..80 {
        if server
            .call(None, Method::GET, "/health", None)
            .await
            .status()
            == StatusCode::TOO_MANY_REQUESTS
        {
            refused += 1;
        }
    }
    assert!(refused >= 5, "only {refused} requests were refused");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alerts = alerts_in_table(&server).await;
    assert_eq!(targets(&alerts, "rate_limited"), ["client_ip=127.0.0.1"]);
    assert_eq!(
        alerts.len(),
        5,
        "one alert per subject and kind within the window"
    );

    // The evidence: counts, threshold, window and the requests that made it.
    let guessing = alerts
        .iter()
        .find(|a| a.record.target == "principal=alice")
        .unwrap();
    assert_eq!(guessing.record.decision.as_str(), "alert");
    assert_eq!(guessing.record.transport.as_str(), "monitor");
    assert_eq!(guessing.record.client_ip, "127.0.0.1");
    let evidence = guessing.record.reason.as_deref().unwrap();
    assert!(
        evidence.starts_with("4 unauthenticated refusals within 300 s (threshold 4)"),
        "{evidence}"
    );
    assert!(evidence.contains("latest requests: "), "{evidence}");
    // The alert was recorded after the request that crossed the threshold.
    let crossing = evidence
        .split("latest requests: ")
        .nth(1)
        .unwrap()
        .split(", ")
        .next()
        .unwrap();
    assert_eq!(guessing.record.request_id, crossing);

    // And the SIEM sink received every alert as an ECS alert event.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shipped: Vec<Value> = std::fs::read_to_string(&sink)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|l: &Value| l["event"]["kind"] == "alert")
            .collect();
        if shipped.len() == alerts.len() {
            let ids: Vec<i64> = shipped
                .iter()
                .map(|l| l["event"]["sequence"].as_i64().unwrap())
                .collect();
            assert_eq!(ids, alerts.iter().map(|a| a.id).collect::<Vec<_>>());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sink has {} of {} alerts",
            shipped.len(),
            alerts.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = server.metrics().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("natterjack_alerts_total{kind=\"forbidden\"} 2")),
        "{text}"
    );
}
