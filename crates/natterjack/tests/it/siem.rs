//! SIEM export against a real collector: rsyslog (Debian's package) listening on loopback
//! TCP and TLS ports, configured by `docs/rsyslog/natterjack.conf`, writing what it parsed
//! to a file. Every audit record must arrive, in order, matched one to one against the
//! audit table; a collector outage under load loses nothing; `audit.fail_closed` pauses
//! changes while the backlog is over its bound.

use crate::support::rsyslog::{PERMITTED_PEER, Received, Rsyslog, TlsFiles, all_ids_arrived};
use crate::support::{Creds, TestServer, export_cursor_in};
use natterjack_core::audit::StoredAuditRecord;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The development PKI in `dir/data`, made before the server starts so that rsyslog can
/// serve TLS with a certificate the exporter verifies against the development CA.
pub(crate) fn pki(dir: &Path) -> TlsFiles {
    natterjack::data_dir::ensure_data_dir(&dir.join("data")).unwrap();
    let pki = natterjack::dev_ca::ensure(&dir.join("data")).expect("development PKI");
    TlsFiles {
        ca: pki.ca_cert,
        cert: pki.server_cert,
        key: pki.server_key,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks what one listener received against the table: the first arrival of each id is
/// in order and covers every record exactly; any later arrival of an id is an identical
/// re-send. Returns the number of re-sends.
fn matches_table(table: &[StoredAuditRecord], received: &[&Received], listener: &str) -> usize {
    let mut first: BTreeMap<i64, &Received> = BTreeMap::new();
    let mut order = Vec::new();
    let mut resends = 0;
    for r in received {
        match first.get(&r.id()) {
            Some(earlier) => {
                assert_eq!(
                    earlier.params,
                    r.params,
                    "{listener}: a re-send of {} differs",
                    r.id()
                );
                resends += 1;
            }
            None => {
                first.insert(r.id(), r);
                order.push(r.id());
            }
        }
    }
    let expected: Vec<i64> = table.iter().map(|s| s.id).collect();
    assert_eq!(
        order, expected,
        "{listener}: first arrivals must be every id, in order"
    );
    for stored in table {
        let got = first[&stored.id];
        let rec = &stored.record;
        let p = &got.params;
        assert_eq!(
            p["mac"],
            hex(&stored.mac),
            "{listener}: mac of {}",
            stored.id
        );
        assert_eq!(p["request_id"], rec.request_id);
        assert_eq!(p["phase"], rec.phase.as_str());
        assert_eq!(got.msgid, rec.phase.as_str());
        assert_eq!(p["operation"], rec.operation);
        assert_eq!(p["decision"], rec.decision.as_str());
        assert_eq!(p.get("status").cloned(), rec.status.map(|s| s.to_string()));
        assert_eq!(p.get("principal").cloned(), rec.principal.clone());
        assert_eq!(got.app_name, "natterjack");
        assert_eq!(got.pri / 8, 10, "facility authpriv");
    }
    resends
}

fn sinks_toml(rsyslog: &Rsyslog, ca: &Path, extra: &str) -> String {
    format!(
        r#"
[[audit.sinks]]
name = "rsyslog-tcp"
kind = "syslog-tcp"
address = "{tcp}"
confirm_after_ms = 500

[[audit.sinks]]
name = "rsyslog-tls"
kind = "syslog-tls"
address = "{tls}"
ca_file = "{ca}"
server_name = "localhost"
confirm_after_ms = 500
{extra}
"#,
        tcp = rsyslog.tcp_address(),
        tls = rsyslog.tls_address(),
        ca = ca.display(),
    )
}

pub(crate) fn metric(text: &str, name: &str, sink: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("sink=\"{sink}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn some_traffic(server: &TestServer) {
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let space = server.space(&alice, "général").await;
    server
        .message(&alice, space, "hello \"siem\" ] \\ world")
        .await;
    // Refusals are exported too: a wrong password, a forbidden read, a bad body.
    let wrong = Creds::new("alice", "not-the-password-at-all");
    server
        .call(Some(&wrong), Method::GET, "/spaces", None)
        .await;
    let path = format!("/spaces/{space}/messages");
    assert_eq!(
        server
            .call(Some(&bob), Method::GET, &path, None)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    server
        .call(
            Some(&alice),
            Method::POST,
            &path,
            Some(json!({"message": ""})),
        )
        .await;
}

#[tokio::test]
async fn every_record_reaches_rsyslog_over_tcp_and_tls_and_a_rotated_json_file_matching_the_table()
{
    let dir = tempfile::tempdir().unwrap();
    let tls = pki(dir.path());
    let Some(rsyslog) =
        Rsyslog::start("siem_every_record", &dir.path().join("rsyslog"), &tls).await
    else {
        return;
    };
    let json_path = dir.path().join("audit.jsonl");
    let json_sink = format!(
        "\n[[audit.sinks]]\nname = \"file\"\nkind = \"json-file\"\npath = \"{}\"\nmax_bytes = 8000\nkeep = 100\n",
        json_path.display()
    );
    let toml = sinks_toml(&rsyslog, &tls.ca, &json_sink);
    let server = TestServer::start_configured(dir, &toml, &[]).await;
    some_traffic(&server).await;
    // Let the last completion records commit, then take the table as the reference.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let table = server.audit_records().await;
    let head = table.last().unwrap().id;
    assert!(head >= 12, "only {head} records");
    rsyslog
        .wait_for(Duration::from_secs(30), |r| {
            all_ids_arrived(head, "tcp")(r) && all_ids_arrived(head, "tls")(r)
        })
        .await;
    let received = rsyslog.received();
    for listener in ["tcp", "tls"] {
        let mine: Vec<&Received> = received.iter().filter(|r| r.listener == listener).collect();
        matches_table(&table, &mine, listener);
    }
    // Refusals travel like everything else, with their reasons.
    for status in ["401", "403", "400"] {
        assert!(
            received
                .iter()
                .any(|r| r.params.get("status").is_some_and(|s| s == status)
                    && r.params.contains_key("reason")),
            "no {status} with a reason arrived"
        );
    }

    // The JSON file sink: rotated into several files, together every record once, in order.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let lines = json_lines(&json_path);
        if lines.len() as i64 >= head || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        json_path.with_extension("jsonl.1").exists(),
        "the file was never rotated"
    );
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["event"]["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, table.iter().map(|s| s.id).collect::<Vec<_>>());
    for (line, stored) in lines.iter().zip(&table) {
        assert_eq!(line["event"]["hash"], hex(&stored.mac));
        assert_eq!(line["natterjack"]["request_id"], stored.record.request_id);
        assert_eq!(line["event"]["action"], stored.record.operation);
    }
    // Everything confirmed: no backlog left on any sink.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = server.metrics().await;
    for sink in ["rsyslog-tcp", "rsyslog-tls", "file"] {
        assert_eq!(
            metric(&text, "natterjack_audit_export_backlog", sink),
            Some(0.0),
            "{sink}\n{text}"
        );
        assert!(
            metric(&text, "natterjack_audit_export_delivered_total", sink).unwrap() >= head as f64
        );
    }
}

/// Every line of the rotated JSON files, oldest file first.
fn json_lines(path: &Path) -> Vec<Value> {
    let mut files = Vec::new();
    for n in (1..=100).rev() {
        let rotated = path.with_extension(format!("jsonl.{n}"));
        if rotated.exists() {
            files.push(rotated);
        }
    }
    files.push(path.to_path_buf());
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[tokio::test]
async fn a_collector_outage_under_load_loses_no_record_and_only_resends_whole_ones() {
    let dir = tempfile::tempdir().unwrap();
    let tls = pki(dir.path());
    let Some(mut rsyslog) = Rsyslog::start("siem_outage", &dir.path().join("rsyslog"), &tls).await
    else {
        return;
    };
    let toml = sinks_toml(&rsyslog, &tls.ca, "");
    let server = Arc::new(TestServer::start_configured(dir, &toml, &[]).await);
    let alice = server.user("alice").await;
    let space = server.space(&alice, "load").await;

    const REQUESTS: usize = 3000;
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (server, alice, done) = (server.clone(), alice.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let path = format!("/spaces/{space}/messages");
            let mut statuses = Vec::new();
            for i in 0..REQUESTS / 8 {
                let r = if i % 2 == 0 {
                    server
                        .call(
                            Some(&alice),
                            Method::POST,
                            &path,
                            Some(json!({"message": format!("m{w}-{i}")})),
                        )
                        .await
                } else {
                    server.call(Some(&alice), Method::GET, &path, None).await
                };
                statuses.push(r.status());
                done.fetch_add(1, Ordering::Relaxed);
            }
            statuses
        }));
    }
    // Take the collector down a third of the way in, keep it down, bring it back.
    while done.load(Ordering::Relaxed) < REQUESTS / 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rsyslog.stop().await;
    let stopped_at = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = server.metrics().await;
    rsyslog.restart().await;
    let mut statuses = Vec::new();
    for w in workers {
        statuses.extend(w.await.unwrap());
    }
    // Requests never waited for the SIEM: every one of them succeeded.
    assert!(
        statuses.iter().all(|s| s.is_success()),
        "a request failed during the outage"
    );
    assert!(
        done.load(Ordering::Relaxed) > stopped_at,
        "no load ran during the outage"
    );
    assert!(
        metric(&during, "natterjack_audit_export_backlog", "rsyslog-tcp").unwrap() > 0.0,
        "{during}"
    );
    assert!(
        metric(
            &during,
            "natterjack_audit_export_lag_seconds",
            "rsyslog-tcp"
        )
        .unwrap()
            > 0.0
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let table = server.audit_records().await;
    let head = table.last().unwrap().id;
    // A POST leaves an intent and a completion, a GET a completion.
    assert!(head as usize >= REQUESTS * 3 / 2, "only {head} records");
    rsyslog
        .wait_for(Duration::from_secs(60), |r| {
            all_ids_arrived(head, "tcp")(r) && all_ids_arrived(head, "tls")(r)
        })
        .await;
    let received = rsyslog.received();
    for listener in ["tcp", "tls"] {
        let mine: Vec<&Received> = received.iter().filter(|r| r.listener == listener).collect();
        let resends = matches_table(&table, &mine, listener);
        eprintln!(
            "{listener}: {} records, {resends} re-sent after the outage",
            table.len()
        );
    }
    let text = server.metrics().await;
    assert!(
        metric(
            &text,
            "natterjack_audit_export_failures_total",
            "rsyslog-tcp"
        )
        .unwrap()
            >= 1.0
    );
}

#[tokio::test]
async fn fail_closed_pauses_changes_while_the_collector_is_behind_and_resumes_after() {
    let dir = tempfile::tempdir().unwrap();
    let tls = pki(dir.path());
    let Some(mut rsyslog) =
        Rsyslog::start("siem_fail_closed", &dir.path().join("rsyslog"), &tls).await
    else {
        return;
    };
    let toml = format!(
        "[audit]\nfail_closed = true\nmax_backlog = 20\n\n[[audit.sinks]]\nname = \"tcp\"\nkind = \"syslog-tcp\"\naddress = \"{}\"\nconfirm_after_ms = 200\n",
        rsyslog.tcp_address()
    );
    let server = TestServer::start_configured(dir, &toml, &[]).await;
    let alice = server.user("alice").await;
    let space = server.space(&alice, "paused").await;
    let path = format!("/spaces/{space}/messages");
    rsyslog.stop().await;
    // Changes keep working until the backlog passes the bound, then get 503.
    let mut refused = None;
    for i in 0..200 {
        let r = server
            .call(
                Some(&alice),
                Method::POST,
                &path,
                Some(json!({"message": format!("m{i}")})),
            )
            .await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::CREATED);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("changes were never paused");
    assert!(refused.headers().contains_key("retry-after"));
    let body = crate::support::problem(refused).await;
    assert!(
        body["detail"].as_str().unwrap().contains("audit trail"),
        "{body}"
    );
    // Reads are still served.
    assert_eq!(
        server
            .call(Some(&alice), Method::GET, &path, None)
            .await
            .status(),
        StatusCode::OK
    );
    // The collector returns: the backlog drains and changes are accepted again.
    rsyslog.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = server
            .call(
                Some(&alice),
                Method::POST,
                &path,
                Some(json!({"message": "back"})),
            )
            .await;
        if r.status() == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "changes stayed paused after the collector returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The refusal itself was audited and shipped.
    rsyslog
        .wait_for(Duration::from_secs(30), |received| {
            received.iter().any(|r| {
                r.params.get("status").is_some_and(|s| s == "503")
                    && r.params
                        .get("reason")
                        .is_some_and(|s| s.contains("fail_closed"))
            })
        })
        .await;
}

#[tokio::test]
async fn a_collector_that_requires_a_client_certificate_receives_only_from_the_sink_presenting_one()
{
    let dir = tempfile::tempdir().unwrap();
    let tls = pki(dir.path());
    let Some(rsyslog) = Rsyslog::start("siem_mutual_tls", &dir.path().join("rsyslog"), &tls).await
    else {
        return;
    };
    // The sender's certificate, from the CA the collector trusts, naming the one peer the
    // collector permits.
    let issued = natterjack::dev_ca::issue_client(
        &dir.path().join("data"),
        PERMITTED_PEER,
        &dir.path().join("exporter"),
    )
    .unwrap();
    let toml = format!(
        r#"
[[audit.sinks]]
name = "with-certificate"
kind = "syslog-tls"
address = "{mtls}"
ca_file = "{ca}"
server_name = "localhost"
client_cert = "{cert}"
client_key = "{key}"
confirm_after_ms = 500

[[audit.sinks]]
name = "without-certificate"
kind = "syslog-tls"
address = "{mtls}"
ca_file = "{ca}"
server_name = "localhost"
confirm_after_ms = 500
"#,
        mtls = rsyslog.mtls_address(),
        ca = tls.ca.display(),
        cert = issued.cert.display(),
        key = issued.key.display(),
    );
    let server = TestServer::start_configured(dir, &toml, &[]).await;
    some_traffic(&server).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let table = server.audit_records().await;
    let head = table.last().unwrap().id;
    rsyslog
        .wait_for(Duration::from_secs(30), all_ids_arrived(head, "mtls"))
        .await;
    let received = rsyslog.received();
    let mine: Vec<&Received> = received.iter().filter(|r| r.listener == "mtls").collect();
    // Each record once: only the sink with the certificate got through.
    matches_table(&table, &mine, "mtls");
    // Delivered means confirmed: the backlog empties once the connection has stayed healthy
    // for confirm_after_ms after the last write.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = server.metrics().await;
        let backlog = metric(&text, "natterjack_audit_export_backlog", "with-certificate");
        if backlog == Some(0.0) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        metric(&text, "natterjack_audit_export_backlog", "with-certificate"),
        Some(0.0),
        "{text}"
    );
    // The sink without a certificate confirmed nothing: its writes went out on connections
    // the collector then closed (a TLS 1.3 client learns of the refused certificate only
    // after its first writes), each found closed before its confirmation, so its cursor never
    // moved and every record waits to be re-sent.
    assert!(
        metric(
            &text,
            "natterjack_audit_export_failures_total",
            "without-certificate"
        )
        .is_some_and(|failures| failures > 0.0),
        "the sink without a certificate never failed: {text}"
    );
    assert_eq!(
        export_cursor_in(&server.data_dir(), "without-certificate").await,
        0,
        "the sink without a certificate confirmed a delivery: {text}"
    );
}
