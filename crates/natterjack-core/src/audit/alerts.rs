//! Anomaly flags: sliding-window counters of refusals per principal and per client address.
//!
//! One refused request is routine; twenty in a minute from one address is a password spray,
//! and twenty against one account from many addresses is a targeted attack. The monitor sees
//! every `complete` record (it sits in the audit writer, so every transport is covered) and,
//! when a subject crosses a configured threshold, yields an `alert` record with the evidence.
//! It alerts at most once per window per subject, so an ongoing attack is reported once a
//! window instead of once a request.

use super::record::{AuditRecord, Phase, clean};
use crate::domain::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The refusals the monitor counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 401, or gRPC `UNAUTHENTICATED`: wrong or missing credentials.
    Unauthenticated,
    /// 403, or gRPC `PERMISSION_DENIED`: an authenticated user reaching beyond its grants.
    Forbidden,
    /// 429, or gRPC `RESOURCE_EXHAUSTED`: a client over its rate limit.
    RateLimited,
}

impl Refusal {
    /// The refusal a completed request's record shows, if any. Statuses are HTTP codes on
    /// REST and gRPC codes on gRPC (the record's transport says which).
    pub fn of(record: &AuditRecord) -> Option<Self> {
        if record.phase != Phase::Complete {
            return None;
        }
        match (record.transport.as_str(), record.status?) {
            ("grpc", 16) | ("rest", 401) => Some(Refusal::Unauthenticated),
            ("grpc", 7) | ("rest", 403) => Some(Refusal::Forbidden),
            ("grpc", 8) | ("rest", 429) => Some(Refusal::RateLimited),
            _ => None,
        }
    }

    /// The name used in the alert's operation and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Forbidden => "forbidden",
            Refusal::RateLimited => "rate_limited",
        }
    }
}

/// When to alert: refusals of one kind by one subject within `window`. A threshold of 0
/// switches that kind off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertThresholds {
    /// The sliding window.
    pub window: Duration,
    /// 401s per subject within the window.
    pub unauthenticated: u32,
    /// 403s per subject within the window.
    pub forbidden: u32,
    /// 429s per subject within the window.
    pub rate_limited: u32,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            unauthenticated: 20,
            forbidden: 20,
            rate_limited: 100,
        }
    }
}

impl AlertThresholds {
    fn for_kind(&self, kind: Refusal) -> u32 {
        match kind {
            Refusal::Unauthenticated => self.unauthenticated,
            Refusal::Forbidden => self.forbidden,
            Refusal::RateLimited => self.rate_limited,
        }
    }
}

/// Who a counter follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Principal(String),
    ClientIp(String),
}

impl Subject {
    fn target(&self) -> String {
        match self {
            Subject::Principal(name) => format!("principal={name}"),
            Subject::ClientIp(ip) => format!("client_ip={ip}"),
        }
    }
}

/// One subject's recent refusals of one kind: at most `threshold` of them are kept, which is
/// all the evidence an alert needs and bounds the memory per subject.
#[derive(Debug, Default)]
struct Window {
    events: VecDeque<(Instant, Timestamp, String)>,
    quiet_until: Option<Instant>,
}

/// Subjects tracked at once; beyond this, stale windows are dropped first, then (under a
/// flood of distinct addresses) everything, so memory stays bounded.
const MAX_SUBJECTS: usize = 50_000;

/// Request ids quoted in an alert's evidence.
const SAMPLE_IDS: usize = 3;

/// The monitor: thread-safe, cheap per record (one map lookup per subject).
pub struct AnomalyMonitor {
    thresholds: AlertThresholds,
    windows: Mutex<HashMap<(Refusal, Subject), Window>>,
}

impl AnomalyMonitor {
    /// A monitor with these thresholds.
    pub fn new(thresholds: AlertThresholds) -> Self {
        Self {
            thresholds,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts `record` if it is a refusal, under its principal (or, for a 401, the user name
    /// the client claimed: the account under attack) and its client address; returns the
    /// alerts this record triggers.
    pub fn observe(
        &self,
        record: &AuditRecord,
        claimed: Option<&str>,
        now: Instant,
    ) -> Vec<AuditRecord> {
        let Some(kind) = Refusal::of(record) else {
            return Vec::new();
        };
        let threshold = self.thresholds.for_kind(kind) as usize;
        if threshold == 0 {
            return Vec::new();
        }
        let mut subjects = Vec::with_capacity(2);
        if let Some(name) = record.principal.as_deref().or(claimed) {
            subjects.push(Subject::Principal(name.to_owned()));
        }
        if !record.client_ip.is_empty() {
            subjects.push(Subject::ClientIp(record.client_ip.clone()));
        }
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        if windows.len() >= MAX_SUBJECTS {
            let window = self.thresholds.window;
            windows.retain(|_, w| {
                w.events
                    .back()
                    .is_some_and(|(t, _, _)| now.duration_since(*t) < window)
            });
            if windows.len() >= MAX_SUBJECTS {
                windows.clear();
            }
        }
        let mut alerts = Vec::new();
        for subject in subjects {
            let window = windows.entry((kind, subject.clone())).or_default();
            window
                .events
                .push_back((now, record.time, record.request_id.clone()));
            while window.events.len() > threshold
                || window
                    .events
                    .front()
                    .is_some_and(|(t, _, _)| now.duration_since(*t) >= self.thresholds.window)
            {
                window.events.pop_front();
            }
            let quiet = window.quiet_until.is_some_and(|until| now < until);
            if window.events.len() >= threshold && !quiet {
                window.quiet_until = Some(now + self.thresholds.window);
                alerts.push(self.alert(kind, &subject, record, window));
            }
        }
        alerts
    }

    fn alert(
        &self,
        kind: Refusal,
        subject: &Subject,
        trigger: &AuditRecord,
        window: &Window,
    ) -> AuditRecord {
        let first = window.events.front().map_or(trigger.time, |(_, t, _)| *t);
        let samples: Vec<&str> = window
            .events
            .iter()
            .rev()
            .take(SAMPLE_IDS)
            .map(|(_, _, id)| id.as_str())
            .collect();
        let evidence = format!(
            "{count} {kind} refusals within {window} s (threshold {count}) from {first} to {last}; latest requests: {samples}",
            count = window.events.len(),
            kind = kind.as_str(),
            window = self.thresholds.window.as_secs(),
            first = first.to_rfc3339(),
            last = trigger.time.to_rfc3339(),
            samples = samples.join(", "),
        );
        AuditRecord {
            time: Timestamp::now(),
            request_id: trigger.request_id.clone(),
            phase: Phase::Alert,
            transport: "monitor".to_owned(),
            client_ip: trigger.client_ip.clone(),
            principal: match subject {
                Subject::Principal(name) => Some(name.clone()),
                Subject::ClientIp(_) => trigger.principal.clone(),
            },
            auth_method: "none".to_owned(),
            operation: format!("alert {}", kind.as_str()),
            target: clean(&subject.target(), 200),
            status: None,
            decision: "alert".to_owned(),
            reason: Some(clean(&evidence, 400)),
            duration_us: trigger.time.micros().saturating_sub(first.micros()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, ip: &str, principal: Option<&str>, id: &str) -> AuditRecord {
        AuditRecord {
            time: Timestamp::now(),
            request_id: id.to_owned(),
            phase: Phase::Complete,
            transport: "rest".to_owned(),
            client_ip: ip.to_owned(),
            principal: principal.map(str::to_owned),
            auth_method: "basic".to_owned(),
            operation: "GET /spaces".to_owned(),
            target: String::new(),
            status: Some(status),
            decision: "deny".to_owned(),
            reason: None,
            duration_us: 5,
        }
    }

    fn monitor(threshold: u32) -> AnomalyMonitor {
        AnomalyMonitor::new(AlertThresholds {
            window: Duration::from_secs(60),
            unauthenticated: threshold,
            forbidden: threshold,
            rate_limited: threshold,
        })
    }

    #[test]
    fn the_threshold_crossing_refusal_yields_one_alert_per_subject_with_evidence() {
        let m = monitor(3);
        let t = Instant::now();
        assert!(
            m.observe(&refusal(401, "192.0.2.1", None, "r1"), Some("alice"), t)
                .is_empty()
        );
        assert!(
            m.observe(&refusal(401, "192.0.2.1", None, "r2"), Some("alice"), t)
                .is_empty()
        );
        let alerts = m.observe(&refusal(401, "192.0.2.1", None, "r3"), Some("alice"), t);
        let targets: Vec<&str> = alerts.iter().map(|a| a.target.as_str()).collect();
        assert_eq!(targets, ["principal=alice", "client_ip=192.0.2.1"]);
        let alert = &alerts[0];
        assert_eq!(alert.phase, Phase::Alert);
        assert_eq!(alert.decision, "alert");
        assert_eq!(alert.operation, "alert unauthenticated");
        assert_eq!(alert.principal.as_deref(), Some("alice"));
        let evidence = alert.reason.as_deref().unwrap();
        assert!(
            evidence.starts_with("3 unauthenticated refusals within 60 s"),
            "{evidence}"
        );
        assert!(evidence.contains("r3, r2, r1"), "{evidence}");
    }

    #[test]
    fn a_subject_alerts_once_per_window_and_again_in_the_next() {
        let m = monitor(2);
        let t = Instant::now();
        let mut alerts = 0;
        for i in 0..10 {
            alerts += m
                .observe(
                    &refusal(403, "192.0.2.2", Some("bob"), &format!("r{i}")),
                    None,
                    t,
                )
                .len();
        }
        assert_eq!(alerts, 2, "one for bob, one for his address");
        let later = t + Duration::from_secs(61);
        assert!(
            m.observe(&refusal(403, "192.0.2.2", Some("bob"), "x1"), None, later)
                .is_empty()
        );
        assert_eq!(
            m.observe(&refusal(403, "192.0.2.2", Some("bob"), "x2"), None, later)
                .len(),
            2
        );
    }

    #[test]
    fn refusals_spread_wider_than_the_window_never_alert() {
        let m = monitor(3);
        let start = Instant::now();
        for i in 0..10u64 {
            let t = start + Duration::from_secs(31 * i);
            assert!(
                m.observe(&refusal(429, "192.0.2.3", None, "r"), None, t)
                    .is_empty()
            );
        }
    }

    #[test]
    fn each_kind_counts_separately_and_successes_are_not_counted() {
        let m = monitor(2);
        let t = Instant::now();
        assert!(
            m.observe(&refusal(401, "192.0.2.4", None, "a"), None, t)
                .is_empty()
        );
        assert!(
            m.observe(&refusal(403, "192.0.2.4", None, "b"), None, t)
                .is_empty()
        );
        assert!(
            m.observe(&refusal(200, "192.0.2.4", None, "c"), None, t)
                .is_empty()
        );
        assert!(
            m.observe(&refusal(404, "192.0.2.4", None, "d"), None, t)
                .is_empty()
        );
        let alerts = m.observe(&refusal(429, "192.0.2.4", None, "e"), None, t);
        assert!(alerts.is_empty());
        let alerts = m.observe(&refusal(429, "192.0.2.4", None, "f"), None, t);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].operation, "alert rate_limited");
    }

    #[test]
    fn grpc_codes_count_as_their_http_equivalents() {
        let m = monitor(1);
        let mut call = refusal(16, "192.0.2.5", None, "g");
        call.transport = "grpc".to_owned();
        let alerts = m.observe(&call, None, Instant::now());
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].operation, "alert unauthenticated");
    }

    #[test]
    fn a_zero_threshold_switches_a_kind_off() {
        let m = AnomalyMonitor::new(AlertThresholds {
            unauthenticated: 0,
            ..AlertThresholds::default()
        });
        for _ in 0..100 {
            assert!(
                m.observe(&refusal(401, "192.0.2.6", None, "r"), None, Instant::now())
                    .is_empty()
            );
        }
    }
}
