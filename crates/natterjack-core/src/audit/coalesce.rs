//! Rate-limit refusals, coalesced: the first few refusals of one key by one policy in a
//! window are recorded one by one, the rest of the window is counted into one `summary`
//! record.
//!
//! Every refusal deserves a trace, but a flood from one address is thousands of identical
//! rows a second (one client made 2–3 MB/s of them), which fills the disk faster than any
//! investigator reads. With coalescing the trail keeps the start of every attack in full
//! (`individually` records per key and window) and an exact count of the rest (first and
//! last time, count, policy, key). The bound: refusals of one key by one policy over `d`
//! seconds add at most `(individually + 1) × ceil(d / window)` rows, so a flood of
//! 1,000,000 refused requests from one address within one minute adds at most 6 rows with
//! the defaults. The anomaly monitor still sees every refusal: it runs before this.

use super::record::{AuditRecord, Phase, clean};
use super::vocabulary::{AuthMethod, Decision, Status, Transport};
use crate::clock::SharedClock;
use crate::domain::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How refusals are coalesced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalescePolicy {
    /// The window, counted from the first refusal of a key.
    pub window: Duration,
    /// Refusals recorded one by one at the start of each window.
    pub individually: u32,
}

impl Default for CoalescePolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            individually: 5,
        }
    }
}

/// Which stream of refusals a refused request belongs to: the policy that refused it and
/// that policy's key (an address, an account, `*` for the global budget).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimitedBy {
    /// The policy's name, as in the `RateLimit-Policy` header.
    pub policy: &'static str,
    /// The key the policy counted the request under.
    pub key: String,
}

/// Whether a refusal's own record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Among the first of its window: record it.
    Record,
    /// Counted into the window's summary instead.
    Counted,
}

/// Keys tracked at once; beyond, every open window is summarised early, so memory stays
/// bounded and no count is lost.
const MAX_KEYS: usize = 100_000;

/// One key's current window.
#[derive(Debug)]
struct Window {
    opened: Instant,
    recorded: u32,
    counted: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    last_request: String,
    status: Option<Status>,
    /// The client address and principal of the counted refusals, while they all share one
    /// (an address key does; the global budget's does not).
    client_ip: Option<String>,
    principal: Option<Option<String>>,
    mixed_ips: bool,
    mixed_principals: bool,
}

impl Window {
    fn new(opened: Instant) -> Self {
        Self {
            opened,
            recorded: 0,
            counted: 0,
            first: None,
            last: None,
            last_request: String::new(),
            status: None,
            client_ip: None,
            principal: None,
            mixed_ips: false,
            mixed_principals: false,
        }
    }

    fn count(&mut self, record: &AuditRecord) {
        self.counted += 1;
        self.first.get_or_insert(record.time);
        self.last = Some(record.time);
        self.last_request.clone_from(&record.request_id);
        self.status = record.status;
        match &self.client_ip {
            None => self.client_ip = Some(record.client_ip.clone()),
            Some(ip) if *ip != record.client_ip => self.mixed_ips = true,
            Some(_) => {}
        }
        match &self.principal {
            None => self.principal = Some(record.principal.clone()),
            Some(p) if *p != record.principal => self.mixed_principals = true,
            Some(_) => {}
        }
    }

    /// The summary of what was counted, if anything was.
    fn summary(
        &self,
        by: &LimitedBy,
        transport: Transport,
        individually: u32,
        now: Timestamp,
    ) -> Option<AuditRecord> {
        let (first, last) = (self.first?, self.last?);
        let reason = format!(
            "{count} refusals by rate limit {policy} from {first} to {last}, after the first {individually} of the window were recorded one by one",
            count = self.counted,
            policy = by.policy,
            first = first.to_rfc3339(),
            last = last.to_rfc3339(),
        );
        Some(AuditRecord {
            time: now,
            request_id: self.last_request.clone(),
            phase: Phase::Summary,
            transport,
            client_ip: if self.mixed_ips {
                String::new()
            } else {
                self.client_ip.clone().unwrap_or_default()
            },
            principal: if self.mixed_principals {
                None
            } else {
                self.principal.clone().flatten()
            },
            auth_method: AuthMethod::None,
            operation: format!("rate limit {}", by.policy),
            target: clean(&format!("policy={} key={}", by.policy, by.key), 200),
            status: self.status,
            decision: Decision::Deny,
            reason: Some(clean(&reason, 400)),
            duration_us: last.micros().saturating_sub(first.micros()),
            count: Some(self.counted),
        })
    }
}

/// The open windows of one process: thread-safe, one map lookup per refusal.
pub struct Coalescer {
    policy: CoalescePolicy,
    windows: Mutex<HashMap<(LimitedBy, Transport), Window>>,
    clock: SharedClock,
}

impl Coalescer {
    /// A coalescer with this policy.
    pub fn new(policy: CoalescePolicy) -> Self {
        Self {
            policy,
            windows: Mutex::new(HashMap::new()),
            clock: crate::clock::system(),
        }
    }

    /// The same coalescer, dating its summaries by `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Decides whether `record`, a refusal by `by`, is recorded or counted; returns, too,
    /// the summaries of windows that had to be closed first (this key's ended window, or
    /// every window when the table is full).
    pub fn admit(
        &self,
        record: &AuditRecord,
        by: &LimitedBy,
        now: Instant,
    ) -> (Verdict, Vec<AuditRecord>) {
        let Ok(mut windows) = self.windows.lock() else {
            return (Verdict::Record, Vec::new());
        };
        let mut summaries = Vec::new();
        let key = (by.clone(), record.transport);
        if let Some(window) = windows.get(&key)
            && now.duration_since(window.opened) >= self.policy.window
        {
            summaries.extend(window.summary(
                by,
                key.1,
                self.policy.individually,
                self.clock.wall(),
            ));
            windows.remove(&key);
        }
        if !windows.contains_key(&key) && windows.len() >= MAX_KEYS {
            summaries.extend(self.summaries(windows.drain()));
        }
        let window = windows.entry(key).or_insert_with(|| Window::new(now));
        if window.recorded < self.policy.individually {
            window.recorded += 1;
            return (Verdict::Record, summaries);
        }
        window.count(record);
        (Verdict::Counted, summaries)
    }

    fn summaries(
        &self,
        windows: impl Iterator<Item = ((LimitedBy, Transport), Window)>,
    ) -> Vec<AuditRecord> {
        windows
            .filter_map(|((by, transport), w)| {
                w.summary(&by, transport, self.policy.individually, self.clock.wall())
            })
            .collect()
    }

    /// Closes the windows that have ended by `now` and returns their summaries.
    pub fn due(&self, now: Instant) -> Vec<AuditRecord> {
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        let window = self.policy.window;
        let ended: Vec<_> = windows
            .iter()
            .filter(|(_, w)| now.duration_since(w.opened) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        let closed = ended
            .into_iter()
            .filter_map(|k| windows.remove_entry(&k))
            .collect::<Vec<_>>();
        self.summaries(closed.into_iter())
    }

    /// Closes every window and returns the summaries (at shutdown, so no count is lost).
    pub fn drain(&self) -> Vec<AuditRecord> {
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        self.summaries(windows.drain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    fn refusal(n: u64, ip: &str) -> AuditRecord {
        AuditRecord {
            time: Timestamp::from_micros(1_700_000_000_000_000 + i64::try_from(n).unwrap()),
            request_id: format!("r{n}"),
            phase: Phase::Complete,
            transport: Transport::Rest,
            client_ip: ip.to_owned(),
            principal: None,
            auth_method: AuthMethod::None,
            operation: "GET /health".to_owned(),
            target: String::new(),
            status: Some(Status::Http(429)),
            decision: Decision::Deny,
            reason: Some("rate limit per-ip exceeded".to_owned()),
            duration_us: 3,
            count: None,
        }
    }

    fn per_ip(ip: &str) -> LimitedBy {
        LimitedBy {
            policy: "per-ip",
            key: ip.to_owned(),
        }
    }

    #[test]
    fn a_million_refusals_from_one_address_in_100_seconds_add_twelve_rows_that_count_them_all() {
        let c = Coalescer::new(CoalescePolicy::default());
        let start = SystemClock.now();
        let by = per_ip("192.0.2.1");
        let mut rows = Vec::new();
        let total: u64 = 1_000_000;
        for n in 0..total {
            let now = start + Duration::from_micros(n * 100);
            let record = refusal(n, "192.0.2.1");
            let (verdict, summaries) = c.admit(&record, &by, now);
            rows.extend(summaries);
            if verdict == Verdict::Record {
                rows.push(record);
            }
        }
        rows.extend(c.drain());
        assert_eq!(rows.len(), 12, "two windows of 5 records and a summary");
        let counted: u64 = rows.iter().map(|r| r.count.unwrap_or(1)).sum();
        assert_eq!(counted, total, "the rows account for every refusal");
        let summaries: Vec<_> = rows.iter().filter(|r| r.phase == Phase::Summary).collect();
        assert_eq!(summaries.len(), 2);
        let first = summaries[0];
        assert_eq!(first.target, "policy=per-ip key=192.0.2.1");
        assert_eq!(first.operation, "rate limit per-ip");
        assert_eq!(first.client_ip, "192.0.2.1");
        assert_eq!(first.status, Some(Status::Http(429)));
        assert_eq!(first.count, Some(600_000 - 5));
        assert_eq!(first.request_id, "r599999");
        assert_eq!(first.duration_us, 600_000 - 1 - 5);
        assert!(
            first
                .reason
                .as_deref()
                .unwrap()
                .starts_with("599995 refusals by rate limit per-ip from "),
            "{first:?}"
        );
    }

    #[test]
    fn each_key_and_transport_has_its_own_window_and_ended_windows_are_summarised_when_due() {
        let c = Coalescer::new(CoalescePolicy {
            window: Duration::from_secs(10),
            individually: 2,
        });
        let t = SystemClock.now();
        let mut recorded = 0;
        for ip in ["192.0.2.1", "192.0.2.2"] {
            for n in 0..5 {
                if c.admit(&refusal(n, ip), &per_ip(ip), t).0 == Verdict::Record {
                    recorded += 1;
                }
            }
        }
        let mut grpc = refusal(9, "192.0.2.1");
        grpc.transport = Transport::Grpc;
        grpc.status = Some(Status::Grpc(8));
        assert_eq!(c.admit(&grpc, &per_ip("192.0.2.1"), t).0, Verdict::Record);
        assert_eq!(recorded, 4);
        assert!(c.due(t + Duration::from_secs(9)).is_empty());
        let due = c.due(t + Duration::from_secs(10));
        assert_eq!(due.len(), 2, "one summary per key with counted refusals");
        assert!(due.iter().all(|s| s.count == Some(3)));
        assert!(c.drain().is_empty(), "the gRPC window counted nothing");
    }

    #[test]
    fn a_summary_of_refusals_from_many_addresses_names_none_of_them() {
        let c = Coalescer::new(CoalescePolicy {
            window: Duration::from_secs(10),
            individually: 0,
        });
        let t = SystemClock.now();
        let global = LimitedBy {
            policy: "global",
            key: "*".to_owned(),
        };
        for (n, ip) in ["192.0.2.1", "192.0.2.2"].into_iter().enumerate() {
            assert_eq!(
                c.admit(&refusal(n as u64, ip), &global, t).0,
                Verdict::Counted
            );
        }
        let summary = c.drain().pop().unwrap();
        assert_eq!(summary.client_ip, "");
        assert_eq!(summary.count, Some(2));
        assert_eq!(summary.target, "policy=global key=*");
    }
}
