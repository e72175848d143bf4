//! Anomaly flags: sliding-window counters of refusals per principal and per client address.
//!
//! One refused request is routine; twenty in a minute from one address is a password spray,
//! and twenty against one account from many addresses is a targeted attack. The monitor sees
//! every `complete` record (it sits in the audit writer, so every transport is covered) and,
//! when a subject crosses a configured threshold, yields an `alert` record with the evidence.
//! It alerts at most once per window per subject, so an ongoing attack is reported once a
//! window instead of once a request.
//!
//! Failed logins against one account are also counted by the addresses they come from: a
//! guessing attack spread over many addresses stays under every per-address threshold, so
//! it raises a `distributed_guessing` alert of its own when failures for one account come
//! from enough distinct addresses within the window.

use super::record::{Alert, AuditRecord, Phase};
use super::vocabulary::Status;
#[cfg(test)]
use super::vocabulary::{AuthMethod, Decision, Transport};
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
    /// The refusal a completed request's record shows, if any, from its HTTP status or gRPC
    /// code.
    pub fn of(record: &AuditRecord) -> Option<Self> {
        if record.phase != Phase::Complete {
            return None;
        }
        match record.status? {
            Status::Grpc(16) | Status::Http(401) => Some(Refusal::Unauthenticated),
            Status::Grpc(7) | Status::Http(403) => Some(Refusal::Forbidden),
            Status::Grpc(8) | Status::Http(429) => Some(Refusal::RateLimited),
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
    /// Distinct client addresses whose logins as one account failed (401, or 429 from a
    /// login budget) within the window.
    pub distributed_addresses: u32,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            unauthenticated: 20,
            forbidden: 20,
            rate_limited: 100,
            distributed_addresses: 10,
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

/// Failed logins kept per account for the distributed-guessing count; older ones are
/// dropped first, which bounds the memory per account.
const MAX_GUESSES_KEPT: usize = 256;

/// One account's recent failed logins, and how many of them each address made.
#[derive(Debug, Default)]
struct Guesses {
    events: VecDeque<(Instant, Timestamp, String)>,
    per_address: HashMap<String, usize>,
    quiet_until: Option<Instant>,
}

impl Guesses {
    fn push(&mut self, now: Instant, time: Timestamp, address: &str) {
        self.events.push_back((now, time, address.to_owned()));
        *self.per_address.entry(address.to_owned()).or_insert(0) += 1;
    }

    /// Drops events older than `window`, or beyond [`MAX_GUESSES_KEPT`].
    fn prune(&mut self, now: Instant, window: Duration) {
        while self.events.len() > MAX_GUESSES_KEPT
            || self
                .events
                .front()
                .is_some_and(|(t, _, _)| now.duration_since(*t) >= window)
        {
            let Some((_, _, address)) = self.events.pop_front() else {
                break;
            };
            if let Some(n) = self.per_address.get_mut(&address) {
                *n -= 1;
                if *n == 0 {
                    self.per_address.remove(&address);
                }
            }
        }
    }
}

/// One window a refusal counts in when the windows are shared by several nodes
/// ([`super::shared_windows`]): which alert it feeds, the window's key, what it counts (the
/// request id; for distributed guessing the client address, so that the window counts
/// distinct addresses) and the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The alert kind, e.g. `unauthenticated` or `distributed_guessing`.
    pub kind: &'static str,
    /// What the alert concerns, e.g. `principal=alice`.
    pub target: String,
    /// The counted item.
    pub member: String,
    /// Members within the window that raise the alert.
    pub threshold: u32,
    /// The account the alert names, if any.
    pub principal: Option<String>,
}

/// The monitor: thread-safe, cheap per record (one map lookup per subject).
pub struct AnomalyMonitor {
    thresholds: AlertThresholds,
    windows: Mutex<HashMap<(Refusal, Subject), Window>>,
    guesses: Mutex<HashMap<String, Guesses>>,
}

impl AnomalyMonitor {
    /// A monitor with these thresholds.
    pub fn new(thresholds: AlertThresholds) -> Self {
        Self {
            thresholds,
            windows: Mutex::new(HashMap::new()),
            guesses: Mutex::new(HashMap::new()),
        }
    }

    /// The thresholds, with the window.
    pub fn thresholds(&self) -> AlertThresholds {
        self.thresholds
    }

    /// The windows `record` counts in, as [`AnomalyMonitor::observe`] would count it: per
    /// subject (principal or claimed account, and client address) for its kind of refusal,
    /// and for a failed login by the addresses guessing at the account.
    pub fn sightings(&self, record: &AuditRecord, claimed: Option<&str>) -> Vec<Sighting> {
        let Some(kind) = Refusal::of(record) else {
            return Vec::new();
        };
        let mut sightings = Vec::with_capacity(3);
        let threshold = self.thresholds.for_kind(kind);
        if threshold > 0 {
            let mut subjects = Vec::with_capacity(2);
            if let Some(name) = record.principal.as_deref().or(claimed) {
                subjects.push(Subject::Principal(name.to_owned()));
            }
            if !record.client_ip.is_empty() {
                subjects.push(Subject::ClientIp(record.client_ip.clone()));
            }
            for subject in subjects {
                sightings.push(Sighting {
                    kind: kind.as_str(),
                    target: subject.target(),
                    member: record.request_id.clone(),
                    threshold,
                    principal: match &subject {
                        Subject::Principal(name) => Some(name.clone()),
                        Subject::ClientIp(_) => record.principal.clone(),
                    },
                });
            }
        }
        let distributed = self.thresholds.distributed_addresses;
        if let Some(account) = claimed.filter(|_| {
            distributed > 0
                && !record.client_ip.is_empty()
                && record.principal.is_none()
                && matches!(kind, Refusal::Unauthenticated | Refusal::RateLimited)
        }) {
            sightings.push(Sighting {
                kind: "distributed_guessing",
                target: Subject::Principal(account.to_owned()).target(),
                member: record.client_ip.clone(),
                threshold: distributed,
                principal: Some(account.to_owned()),
            });
        }
        sightings
    }

    /// Counts `record` if it is a refusal, under its principal (or, for a failed login, the
    /// user name the client claimed: the account under attack) and its client address;
    /// returns the alerts this record triggers.
    pub fn observe(
        &self,
        record: &AuditRecord,
        claimed: Option<&str>,
        now: Instant,
    ) -> Vec<AuditRecord> {
        let Some(kind) = Refusal::of(record) else {
            return Vec::new();
        };
        let mut alerts = self.per_subject(kind, record, claimed, now);
        if let Some(account) = claimed.filter(|_| {
            record.principal.is_none()
                && matches!(kind, Refusal::Unauthenticated | Refusal::RateLimited)
        }) {
            alerts.extend(self.distributed(account, record, now));
        }
        alerts
    }

    /// The alert a failed login for `account` triggers when the failures for it within the
    /// window come from `distributed_addresses` distinct addresses or more.
    fn distributed(
        &self,
        account: &str,
        record: &AuditRecord,
        now: Instant,
    ) -> Option<AuditRecord> {
        let threshold = self.thresholds.distributed_addresses as usize;
        if threshold == 0 || record.client_ip.is_empty() {
            return None;
        }
        let window = self.thresholds.window;
        let mut accounts = self.guesses.lock().ok()?;
        if accounts.len() >= MAX_SUBJECTS && !accounts.contains_key(account) {
            accounts.retain(|_, g| {
                g.events
                    .back()
                    .is_some_and(|(t, _, _)| now.duration_since(*t) < window)
            });
            if accounts.len() >= MAX_SUBJECTS {
                accounts.clear();
            }
        }
        let guesses = accounts.entry(account.to_owned()).or_default();
        guesses.push(now, record.time, &record.client_ip);
        guesses.prune(now, window);
        let addresses = guesses.per_address.len();
        let quiet = guesses.quiet_until.is_some_and(|until| now < until);
        if addresses < threshold || quiet {
            return None;
        }
        guesses.quiet_until = Some(now + window);
        let first = guesses.events.front().map_or(record.time, |(_, t, _)| *t);
        let mut latest: Vec<&str> = Vec::new();
        for (_, _, address) in guesses.events.iter().rev() {
            if latest.len() == SAMPLE_IDS {
                break;
            }
            if !latest.contains(&address.as_str()) {
                latest.push(address);
            }
        }
        let evidence = format!(
            "{count} failed logins from {addresses} addresses within {window} s (threshold {threshold} addresses) from {first} to {last}; latest addresses: {latest}; latest request: {id}",
            count = guesses.events.len(),
            window = window.as_secs(),
            first = first.to_rfc3339(),
            last = record.time.to_rfc3339(),
            latest = latest.join(", "),
            id = record.request_id,
        );
        Some(
            Alert {
                time: record.time,
                kind: "distributed_guessing",
                target: &Subject::Principal(account.to_owned()).target(),
                evidence: &evidence,
                request_id: record.request_id.clone(),
                client_ip: record.client_ip.clone(),
                principal: Some(account.to_owned()),
                duration_us: record.time.micros().saturating_sub(first.micros()),
            }
            .into(),
        )
    }

    /// The per-principal and per-address alerts of one refusal.
    fn per_subject(
        &self,
        kind: Refusal,
        record: &AuditRecord,
        claimed: Option<&str>,
        now: Instant,
    ) -> Vec<AuditRecord> {
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
        Alert {
            time: trigger.time,
            kind: kind.as_str(),
            target: &subject.target(),
            evidence: &evidence,
            request_id: trigger.request_id.clone(),
            client_ip: trigger.client_ip.clone(),
            principal: match subject {
                Subject::Principal(name) => Some(name.clone()),
                Subject::ClientIp(_) => trigger.principal.clone(),
            },
            duration_us: trigger.time.micros().saturating_sub(first.micros()),
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    fn refusal(status: u16, ip: &str, principal: Option<&str>, id: &str) -> AuditRecord {
        AuditRecord {
            time: SystemClock.wall(),
            request_id: id.to_owned(),
            phase: Phase::Complete,
            transport: Transport::Rest,
            client_ip: ip.to_owned(),
            principal: principal.map(str::to_owned),
            auth_method: AuthMethod::Basic,
            operation: "GET /spaces".to_owned(),
            target: String::new(),
            status: Some(Status::Http(status)),
            decision: Decision::Deny,
            reason: None,
            duration_us: 5,
            count: None,
        }
    }

    fn monitor(threshold: u32) -> AnomalyMonitor {
        AnomalyMonitor::new(AlertThresholds {
            window: Duration::from_secs(60),
            unauthenticated: threshold,
            forbidden: threshold,
            rate_limited: threshold,
            distributed_addresses: 0,
        })
    }

    #[test]
    fn the_threshold_crossing_refusal_yields_one_alert_per_subject_with_evidence() {
        let m = monitor(3);
        let t = SystemClock.now();
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
        assert_eq!(alert.decision, Decision::Alert);
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
        let t = SystemClock.now();
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
        let start = SystemClock.now();
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
        let t = SystemClock.now();
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
        call.transport = Transport::Grpc;
        call.status = Some(Status::Grpc(16));
        let alerts = m.observe(&call, None, SystemClock.now());
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
                m.observe(
                    &refusal(401, "192.0.2.6", None, "r"),
                    None,
                    SystemClock.now()
                )
                .is_empty()
            );
        }
    }

    #[test]
    fn failed_logins_for_one_account_from_many_addresses_raise_one_distributed_alert() {
        let m = AnomalyMonitor::new(AlertThresholds {
            unauthenticated: 0,
            rate_limited: 0,
            distributed_addresses: 10,
            ..AlertThresholds::default()
        });
        let t = SystemClock.now();
        let mut alerts = Vec::new();
        for n in 1..=200 {
            let ip = format!("198.51.100.{n}");
            for (i, status) in [401, 401, 429, 429, 429].into_iter().enumerate() {
                let r = refusal(status, &ip, None, &format!("r{n}-{i}"));
                alerts.extend(m.observe(&r, Some("victim"), t));
            }
        }
        assert_eq!(alerts.len(), 1, "one alert per account and window");
        let alert = &alerts[0];
        assert_eq!(alert.operation, "alert distributed_guessing");
        assert_eq!(alert.target, "principal=victim");
        let evidence = alert.reason.as_deref().unwrap();
        assert!(evidence.contains("from 10 addresses"), "{evidence}");
        assert!(
            evidence.contains("198.51.100.10, 198.51.100.9, 198.51.100.8"),
            "{evidence}"
        );
        // Failures of an authenticated principal, or without a claimed account, do not count.
        let m = AnomalyMonitor::new(AlertThresholds {
            distributed_addresses: 2,
            ..AlertThresholds::default()
        });
        for n in 1..=5 {
            let r = refusal(429, &format!("198.51.100.{n}"), Some("bob"), "x");
            assert!(
                m.observe(&r, Some("bob"), t)
                    .iter()
                    .all(|a| a.operation != "alert distributed_guessing")
            );
            let r = refusal(401, &format!("198.51.100.{n}"), None, "y");
            assert!(m.observe(&r, None, t).is_empty());
        }
    }

    #[test]
    fn one_address_guessing_hard_is_not_a_distributed_attack() {
        let m = AnomalyMonitor::new(AlertThresholds {
            unauthenticated: 0,
            rate_limited: 0,
            distributed_addresses: 3,
            ..AlertThresholds::default()
        });
        let t = SystemClock.now();
        for i in 0..1000 {
            let r = refusal(401, "198.51.100.1", None, &format!("r{i}"));
            assert!(m.observe(&r, Some("victim"), t).is_empty());
        }
    }
}
