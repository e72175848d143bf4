//! Pure formatting of stored audit records for SIEM export: RFC 5424 syslog messages with
//! octet-counting framing (RFC 6587 §3.4.1, RFC 5425 §4.3), and Elastic Common Schema JSON
//! lines. No I/O here (apart from reading the host name once), so the exact bytes a SIEM
//! receives are unit-tested; the outbox and the transports live elsewhere.
//!
//! A record can never break framing or forge a message: syslog output is length-prefixed,
//! SD values are escaped, and control characters become `?` (ECS lines rely on JSON escaping).

use std::net::IpAddr;

pub use crate::syslog_facility::Facility;
use natterjack_core::audit::{AuditRecord, Decision, Phase, StoredAuditRecord, Transport};
use serde_json::{Value, json};

/// Our SD-ID. 32473 is the IANA enterprise number reserved for documentation (RFC 5612);
/// a deployment with its own private enterprise number can change it here.
pub const SD_ID: &str = "natterjack@32473";

/// The ECS version the field names follow, sent so the SIEM can map the fields.
pub const ECS_VERSION: &str = "8.11.0";

/// The per-sender part of the RFC 5424 header, sanitised once at start-up so every message
/// has a valid header whatever the configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogHeader {
    /// Goes into PRI.
    pub facility: Facility,
    /// HOSTNAME: PRINTUSASCII, at most 255 characters, or `-`.
    pub hostname: String,
    /// APP-NAME: PRINTUSASCII, at most 48 characters, or `-`.
    pub app_name: String,
    /// PROCID: PRINTUSASCII, at most 128 characters, or `-`.
    pub procid: String,
}

impl SyslogHeader {
    /// Builds a header that obeys RFC 5424 §6.2 whatever the input, because a space or a
    /// non-ASCII byte in a header field would make receivers mis-parse every message.
    pub fn new(facility: Facility, hostname: &str, app_name: &str, procid: &str) -> Self {
        Self {
            facility,
            hostname: header_field(hostname, 255),
            app_name: header_field(app_name, 48),
            procid: header_field(procid, 128),
        }
    }
}

/// The host name for HOSTNAME, read from procfs so no libc call (and no `unsafe`) is needed;
/// `-` (NILVALUE) when it cannot be read.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

/// The RFC 5424 severity, so SIEM rules can filter on PRI alone: alerts are `1` (alert),
/// server errors `3` (err), denials `4` (warning), other refusals `5` (notice), the rest `6`.
pub fn severity(record: &AuditRecord) -> u8 {
    match record.phase {
        Phase::Alert => 1,
        Phase::Intent | Phase::Complete | Phase::Summary => match record.decision {
            Decision::Error => 3,
            Decision::Deny => 4,
            Decision::Reject => 5,
            Decision::Allow | Decision::Pending | Decision::Alert => 6,
        },
    }
}

/// One RFC 5424 message for a record: the chain position and MAC travel in the structured
/// data so the SIEM can check completeness and integrity, and MSG is a human summary.
pub fn syslog_message(header: &SyslogHeader, stored: &StoredAuditRecord) -> String {
    let r = &stored.record;
    let pri = u16::from(header.facility.code()) * 8 + u16::from(severity(r));
    let mut out = format!(
        "<{pri}>1 {} {} {} {} {} [{SD_ID}",
        syslog_timestamp(r),
        header.hostname,
        header.app_name,
        header.procid,
        r.phase.as_str(),
    );
    let text = |s: &str| Some(s.to_owned());
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let params = [
        ("id", Some(stored.id.to_string())),
        ("mac", Some(hex(&stored.mac))),
        ("request_id", text(&r.request_id)),
        ("phase", text(r.phase.as_str())),
        ("transport", text(r.transport.as_str())),
        ("client_ip", nonempty(&r.client_ip)),
        ("principal", r.principal.clone()),
        ("auth_method", text(r.auth_method.as_str())),
        ("operation", text(&r.operation)),
        ("target", nonempty(&r.target)),
        ("status", r.status.map(|s| s.to_string())),
        ("decision", text(r.decision.as_str())),
        ("reason", r.reason.clone()),
        ("duration_us", Some(r.duration_us.to_string())),
        ("count", r.count.map(|c| c.to_string())),
    ];
    for (name, value) in params.iter().filter_map(|(n, v)| Some((n, v.as_deref()?))) {
        out.push_str(&format!(" {name}=\"{}\"", sd_escape(value)));
    }
    out.push_str("] \u{FEFF}");
    out.push_str(&summary(r));
    out
}

/// Octet-counting framing (RFC 6587 §3.4.1, RFC 5425 §4.3): `MSG-LEN SP SYSLOG-MSG`, the
/// length in bytes, so a receiver never has to look for a delimiter inside the message.
pub fn octet_counted(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

/// One ECS JSON line (object + `\n`) for a record, so Elastic-style SIEMs map it without a
/// custom parser; the `natterjack` object repeats every field verbatim (null when absent)
/// so the SIEM can check completeness and recompute the chain.
pub fn ecs_line(stored: &StoredAuditRecord) -> Vec<u8> {
    let r = &stored.record;
    let mac = hex(&stored.mac);
    let alert = r.phase == Phase::Alert;
    let (category, protocol) = match r.transport {
        Transport::Rest | Transport::Console => (Some("web"), Some("http")),
        Transport::Grpc => (Some("network"), Some("grpc")),
        Transport::Internal | Transport::Monitor => (None, None),
    };
    let category = if alert {
        Some("intrusion_detection")
    } else {
        category
    };
    let outcome = match r.decision {
        Decision::Allow => "success",
        Decision::Deny | Decision::Reject | Decision::Error => "failure",
        Decision::Pending | Decision::Alert => "unknown",
    };
    // ECS `ip` fields reject anything that is not an address, which would drop the event.
    let ip = r
        .client_ip
        .parse::<IpAddr>()
        .ok()
        .map(|ip| json!({ "ip": ip.to_string() }));
    let http = (r.transport == Transport::Rest).then(|| {
        json!({ "request": { "id": r.request_id },
                "response": r.status.map(|s| json!({ "status_code": s })) })
    });
    let mut doc = json!({
        "@timestamp": r.time.to_rfc3339(),
        "ecs": { "version": ECS_VERSION },
        "message": summary(r),
        "event": {
            "kind": if alert { "alert" } else { "event" },
            "category": category.map(|c| [c]),
            "type": ["info"],
            "action": r.operation,
            "outcome": outcome,
            "sequence": stored.id,
            "duration": r.duration_us.saturating_mul(1000),
            "dataset": "natterjack.audit",
            "id": stored.id.to_string(),
            "hash": mac,
            "reason": r.reason,
        },
        "http": http,
        "client": ip,
        "source": ip,
        "user": r.principal.as_ref().map(|p| json!({ "name": p })),
        "network": protocol.map(|p| json!({ "protocol": p })),
        "natterjack": {
            "audit_id": stored.id, "mac": mac, "request_id": r.request_id,
            "phase": r.phase.as_str(), "transport": r.transport, "client_ip": r.client_ip,
            "principal": r.principal, "auth_method": r.auth_method, "operation": r.operation,
            "target": r.target, "status": r.status, "decision": r.decision,
            "reason": r.reason, "duration_us": r.duration_us, "count": r.count,
        },
    });
    drop_nulls(&mut doc);
    // JSON escapes every control character, so the line holds exactly one `\n`.
    let mut line = doc.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// ECS leaves absent fields out; only the verbatim `natterjack` copy keeps its nulls.
fn drop_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        for (key, v) in map.iter_mut() {
            if key != "natterjack" {
                drop_nulls(v);
            }
        }
    }
}

/// `{operation} {target} -> {status|pending|alert} {decision}[ by p][ from ip][ (count n)]`.
fn summary(r: &AuditRecord) -> String {
    let status = match (r.status, r.phase) {
        (Some(status), _) => status.to_string(),
        (None, Phase::Alert) => "alert".to_owned(),
        (None, _) => "pending".to_owned(),
    };
    let mut text = r.operation.clone();
    if !r.target.is_empty() {
        text.push(' ');
        text.push_str(&r.target);
    }
    text.push_str(&format!(" -> {status} {}", r.decision));
    if let Some(principal) = &r.principal {
        text.push_str(&format!(" by {principal}"));
    }
    if !r.client_ip.is_empty() {
        text.push_str(&format!(" from {}", r.client_ip));
    }
    if let Some(count) = r.count {
        text.push_str(&format!(" (count {count})"));
    }
    text.chars().map(scrub).collect()
}

/// RFC 5424 §6.2.3 wants a `Z` or offset and at most 6 fractional digits; `to_rfc3339`
/// gives both, but anything else is sent as NILVALUE rather than as an invalid header.
fn syslog_timestamp(r: &AuditRecord) -> String {
    let text = r.time.to_rfc3339();
    let Some(body) = text.strip_suffix('Z') else {
        return "-".to_owned();
    };
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    let secs_ok = secs.len() == 19
        && secs
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'T'));
    let frac_ok = frac.len() <= 6 && frac.bytes().all(|b| b.is_ascii_digit());
    if secs_ok && frac_ok {
        text
    } else {
        "-".to_owned()
    }
}

/// PRINTUSASCII only (anything else becomes `_`), at most `max` characters, `-` if empty.
fn header_field(value: &str, max: usize) -> String {
    let clean: String = value
        .chars()
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .take(max)
        .collect();
    if clean.is_empty() {
        "-".to_owned()
    } else {
        clean
    }
}

/// PARAM-VALUE escaping (RFC 5424 §6.3.3) plus control-character scrubbing.
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(scrub(c));
    }
    out
}

/// Control characters and Unicode line/paragraph separators become `?`.
fn scrub(c: char) -> char {
    if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
        '?'
    } else {
        c
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use natterjack_core::audit::{AuthMethod, Status};
    use natterjack_core::domain::Timestamp;

    /// 2026-11-28T03:04:05.123456Z
    const TIME: i64 = 1_795_835_045_123_456;

    fn stored() -> StoredAuditRecord {
        let record = AuditRecord {
            time: Timestamp::from_micros(TIME),
            request_id: "req-1".into(),
            phase: Phase::Complete,
            transport: Transport::Rest,
            client_ip: "192.0.2.7".into(),
            principal: Some("alice".into()),
            auth_method: AuthMethod::Basic,
            operation: "POST /spaces/{id}/messages".into(),
            target: "id=3".into(),
            status: Some(natterjack_core::audit::Status::Http(403)),
            decision: Decision::Deny,
            reason: Some("missing w".into()),
            duration_us: 1500,
            count: None,
        };
        StoredAuditRecord {
            id: 42,
            record,
            mac: [0xab; 32],
        }
    }

    fn syslog(stored: &StoredAuditRecord) -> String {
        let header = SyslogHeader::new(Facility::default(), "host1", "natterjack", "77");
        syslog_message(&header, stored)
    }

    fn ecs(stored: &StoredAuditRecord) -> Value {
        serde_json::from_slice(&ecs_line(stored)).unwrap()
    }

    #[test]
    fn a_complete_record_becomes_one_exact_rfc_5424_message() {
        let expected = format!(
            "<84>1 2026-11-28T03:04:05.123456Z host1 natterjack 77 complete [natterjack@32473 \
             id=\"42\" mac=\"{}\" request_id=\"req-1\" phase=\"complete\" transport=\"rest\" \
             client_ip=\"192.0.2.7\" principal=\"alice\" auth_method=\"basic\" \
             operation=\"POST /spaces/{{id}}/messages\" target=\"id=3\" status=\"403\" \
             decision=\"deny\" reason=\"missing w\" duration_us=\"1500\"] \u{FEFF}\
             POST /spaces/{{id}}/messages id=3 -> 403 deny by alice from 192.0.2.7",
            "ab".repeat(32)
        );
        assert_eq!(syslog(&stored()), expected);
    }

    #[test]
    fn pri_is_facility_code_times_eight_plus_severity() {
        let mut s = stored();
        let expect = [
            ("error", 3),
            ("deny", 4),
            ("reject", 5),
            ("allow", 6),
            ("pending", 6),
        ];
        for (decision, severity_code) in expect {
            s.record.decision = Decision::parse(decision).unwrap();
            assert_eq!(severity(&s.record), severity_code, "{decision}");
        }
        let local7: Facility = serde_json::from_str("\"local7\"").unwrap();
        let header = SyslogHeader::new(local7, "h", "a", "p");
        assert!(syslog_message(&header, &s).starts_with("<190>1 ")); // 23 * 8 + 6
        assert_eq!(
            (Facility::default().code(), Facility::Audit.code()),
            (10, 13)
        );
    }

    #[test]
    fn header_fields_are_printable_ascii_bounded_and_nil_when_empty() {
        let h = SyslogHeader::new(Facility::Auth, "my host", &"a".repeat(60), "");
        assert_eq!((h.hostname.as_str(), h.procid.as_str()), ("my_host", "-"));
        assert_eq!(h.app_name, "a".repeat(48));
        assert_eq!(
            SyslogHeader::new(Facility::Auth, "zoë", "x", "1").hostname,
            "zo_"
        );
    }

    #[test]
    fn sd_values_escape_quotes_backslashes_and_brackets() {
        assert_eq!(sd_escape(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        let mut s = stored();
        s.record.reason = Some("x\"] [forged@1 a=\"b".into());
        assert!(syslog(&s).contains(r#" reason="x\"\] [forged@1 a=\"b" "#));
    }

    #[test]
    fn optional_params_are_omitted_when_absent() {
        let mut s = stored();
        let r = &mut s.record;
        (r.phase, r.status, r.decision) = (Phase::Intent, None, Decision::Pending);
        (r.principal, r.reason) = (None, None);
        (r.client_ip, r.target) = (String::new(), String::new());
        let msg = syslog(&s);
        for absent in ["client_ip=", "principal=", "target=", "status=", "reason="] {
            assert!(!msg.contains(absent), "{absent} in {msg}");
        }
        assert!(msg.starts_with("<86>1 2026-11-28T03:04:05.123456Z host1 natterjack 77 intent "));
        assert!(msg.ends_with("\u{FEFF}POST /spaces/{id}/messages -> pending pending"));
    }

    #[test]
    fn no_control_character_survives_so_a_record_cannot_forge_a_line() {
        let mut s = stored();
        s.record.reason = Some("x\n<13>1 forged".into());
        s.record.principal = Some("bob\r\u{2028}".into());
        let msg = syslog(&s);
        assert!(!msg.chars().any(|c| c.is_control() || c == '\u{2028}'));
        assert!(msg.contains(r#"reason="x?<13>1 forged""#));
        assert!(msg.ends_with("by bob?? from 192.0.2.7"));
    }

    #[test]
    fn timestamps_end_in_z_with_at_most_six_fractional_digits() {
        let mut r = stored().record;
        assert_eq!(syslog_timestamp(&r), "2026-11-28T03:04:05.123456Z");
        r.time = Timestamp::from_micros(TIME - 123_456);
        assert_eq!(syslog_timestamp(&r), "2026-11-28T03:04:05Z");
    }

    #[test]
    fn octet_counting_uses_the_byte_length() {
        assert_eq!(octet_counted("zoë"), b"4 zo\xc3\xab".to_vec());
        let mut s = stored();
        s.record.principal = Some("zoë".into());
        let msg = syslog(&s);
        assert!(msg.len() > msg.chars().count());
        assert!(octet_counted(&msg).starts_with(format!("{} <84>1 ", msg.len()).as_bytes()));
    }

    #[test]
    fn the_ecs_line_is_one_json_line_with_the_expected_fields() {
        let mut s = stored();
        s.record.reason = Some("two\nlines".into());
        let line = ecs_line(&s);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        let expected = json!({
            "@timestamp": "2026-11-28T03:04:05.123456Z",
            "ecs": { "version": "8.11.0" },
            "message": "POST /spaces/{id}/messages id=3 -> 403 deny by alice from 192.0.2.7",
            "event": {
                "kind": "event", "category": ["web"], "type": ["info"],
                "action": "POST /spaces/{id}/messages", "outcome": "failure", "sequence": 42,
                "duration": 1_500_000, "dataset": "natterjack.audit", "id": "42",
                "hash": "ab".repeat(32), "reason": "two\nlines",
            },
            "http": { "request": { "id": "req-1" }, "response": { "status_code": 403 } },
            "client": { "ip": "192.0.2.7" },
            "source": { "ip": "192.0.2.7" },
            "user": { "name": "alice" },
            "network": { "protocol": "http" },
            "natterjack": {
                "audit_id": 42, "mac": "ab".repeat(32), "request_id": "req-1",
                "phase": "complete", "transport": "rest", "client_ip": "192.0.2.7",
                "principal": "alice", "auth_method": "basic",
                "operation": "POST /spaces/{id}/messages", "target": "id=3", "status": 403,
                "decision": "deny", "reason": "two\nlines", "duration_us": 1500,
                "count": null,
            },
        });
        assert_eq!(ecs(&s), expected);
    }

    #[test]
    fn a_summary_carries_its_count_in_both_formats() {
        let mut s = stored();
        let r = &mut s.record;
        (r.phase, r.status, r.count) = (Phase::Summary, Some(Status::Http(429)), Some(12_345));
        (r.operation, r.target) = (
            "rate limit per-ip".into(),
            "policy=per-ip key=192.0.2.7".into(),
        );
        let v = ecs(&s);
        assert_eq!(v["natterjack"]["count"], 12_345);
        assert_eq!(v["natterjack"]["phase"], "summary");
        assert!(
            v["message"].as_str().unwrap().ends_with(" (count 12345)"),
            "{v}"
        );
        let line = syslog(&s);
        assert!(line.contains(" count=\"12345\""), "{line}");
        assert!(line.contains(" summary [natterjack@"), "{line}");
    }

    #[test]
    fn ecs_omits_a_client_ip_that_is_not_an_address_and_http_for_grpc() {
        let mut s = stored();
        let r = &mut s.record;
        (r.transport, r.client_ip, r.status) =
            (Transport::Grpc, "unknown".into(), Some(Status::Grpc(7)));
        (r.principal, r.reason) = (None, None);
        let v = ecs(&s);
        for absent in ["client", "source", "http", "user"] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
        assert!(v["event"].get("reason").is_none());
        assert_eq!(v["natterjack"]["client_ip"], "unknown");
        assert_eq!(v["natterjack"]["reason"], Value::Null);
        assert_eq!(v["event"]["category"], json!(["network"]));
        assert_eq!(v["network"]["protocol"], "grpc");
    }

    #[test]
    fn alert_records_are_kind_alert_with_severity_one() {
        let mut s = stored();
        let r = &mut s.record;
        (r.phase, r.transport, r.status, r.decision) =
            (Phase::Alert, Transport::Monitor, None, Decision::Alert);
        assert_eq!(severity(&s.record), 1);
        let msg = syslog(&s);
        assert!(msg.starts_with("<81>1 2026-11-28T03:04:05.123456Z host1 natterjack 77 alert "));
        assert!(msg.contains("-> alert alert"));
        let v = ecs(&s);
        assert_eq!(v["event"]["kind"], "alert");
        assert_eq!(v["event"]["outcome"], "unknown");
        assert_eq!(v["event"]["category"], json!(["intrusion_detection"]));
        assert!(v.get("network").is_none() && v.get("http").is_none());
    }
}
