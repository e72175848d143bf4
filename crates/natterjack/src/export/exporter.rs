//! The loop of one sink: wait for the sink's lease, then read the records after its cursor,
//! send them, confirm them, and move the cursor. After any failure everything unconfirmed is
//! sent again from the cursor, so a record may arrive twice (with the same id) but never goes
//! missing.
//!
//! Only the process holding the sink's lease sends (one per deployment), and it confirms the
//! lease before every step: the moment it cannot, it stops sending and waits like the others.
//! A process that waits follows the shared cursor instead, so that its backlog, and with it
//! `audit.fail_closed`, measures what the deployment has delivered.

use super::format::{SyslogHeader, ecs_line, octet_counted, syslog_message};
use super::sink::Sink;
use natterjack_core::audit::{AuditStore, ExportGate, ExportLease, StoredAuditRecord};
use natterjack_core::clock::{Clock, SystemClock};
use natterjack_core::domain::Timestamp;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// Records read and sent at once.
const BATCH: u32 = 256;

/// Longest pause between attempts while a collector is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often an idle exporter looks for records (other nodes' records raise no local
/// commit notification) and checks its connection.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// How a sink's records are written.
pub(crate) enum Encoder {
    /// RFC 5424, octet-counted.
    Syslog(SyslogHeader),
    /// ECS JSON lines.
    Ecs,
}

impl Encoder {
    fn encode(&self, batch: &[StoredAuditRecord]) -> Vec<u8> {
        let mut out = Vec::with_capacity(batch.len() * 512);
        for stored in batch {
            match self {
                Encoder::Syslog(header) => {
                    out.extend_from_slice(&octet_counted(&syslog_message(header, stored)));
                }
                Encoder::Ecs => out.extend_from_slice(&ecs_line(stored)),
            }
        }
        out
    }
}

/// Everything one sink's task owns.
pub(crate) struct SinkTask {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) sink: Sink,
    pub(crate) encoder: Encoder,
    pub(crate) confirm_after: Duration,
    pub(crate) store: Arc<dyn AuditStore>,
    pub(crate) commits: Arc<Notify>,
    pub(crate) gate: Arc<ExportGate>,
    pub(crate) lease: Box<dyn ExportLease>,
    /// How often a process without the lease tries to take it.
    pub(crate) lease_retry: Duration,
}

/// Batches written but not yet confirmed: when they were written, the newest id in each,
/// and the time of the oldest record in each (for the lag).
struct InFlight(VecDeque<(Instant, i64, Timestamp)>);

impl SinkTask {
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        self.leader(false);
        while !*shutdown.borrow() {
            if !self.wait_for_lease(&mut shutdown).await {
                break;
            }
            self.leader(true);
            tracing::info!(sink = %self.name, "audit export lease taken: this server exports the sink");
            let lost = self.export(&mut shutdown).await;
            self.sink.close();
            self.leader(false);
            match lost {
                Some(why) => {
                    tracing::warn!(sink = %self.name, reason = %why, "audit export lease lost: stopped exporting; waiting to take it again");
                }
                None => break,
            }
        }
        self.lease.release().await;
        self.leader(false);
    }

    /// Publishes whether this process exports the sink.
    fn leader(&self, holds: bool) {
        metrics::gauge!("natterjack_audit_export_leader", "sink" => self.name.clone())
            .set(if holds { 1.0 } else { 0.0 });
    }

    /// Tries the lease every `lease_retry` until it is taken (true) or shutdown (false).
    /// Meanwhile follows the shared cursor, so that the gate and the backlog gauge show what
    /// the holder has delivered rather than this idle exporter's nothing.
    async fn wait_for_lease(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut said = false;
        loop {
            match self.lease.hold().await {
                Ok(true) => return true,
                Ok(false) if !said => {
                    said = true;
                    tracing::info!(sink = %self.name, "audit export lease held by another server: waiting to take over");
                }
                Ok(false) => {}
                Err(e) if !said => {
                    said = true;
                    tracing::warn!(sink = %self.name, error = %e, "cannot reach the audit export lease; retrying");
                }
                Err(_) => {}
            }
            if let Ok(cursor) = self.store.export_cursor(&self.name).await {
                self.gate.set_confirmed(self.index, cursor);
                self.measure(cursor, &InFlight(VecDeque::new())).await;
            }
            if wait(shutdown, self.lease_retry).await {
                return false;
            }
        }
    }

    /// Exports while the lease is held: `None` at shutdown, or why the lease was lost.
    async fn export(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<String> {
        // Read after taking the lease: the previous holder's confirmations are in it.
        let mut confirmed = loop {
            match self.store.export_cursor(&self.name).await {
                Ok(cursor) => break cursor,
                Err(e) => {
                    tracing::warn!(sink = %self.name, error = %e, "cannot read the export cursor; retrying");
                    if wait(shutdown, MAX_BACKOFF).await {
                        return None;
                    }
                }
            }
        };
        tracing::info!(sink = %self.name, resumes_after = confirmed, "audit export resumes from the shared cursor");
        self.gate.set_confirmed(self.index, confirmed);
        let mut persisted = confirmed;
        let mut sent = confirmed;
        let mut in_flight = InFlight(VecDeque::new());
        let mut backoff = Duration::from_millis(100);
        let mut down_since: Option<Instant> = None;
        let confirm_after = if self.sink.durable_on_write() {
            Duration::ZERO
        } else {
            self.confirm_after
        };
        while !*shutdown.borrow() {
            // Before anything is sent or confirmed: a lease that cannot be confirmed may be
            // another server's already.
            match self.lease.hold().await {
                Ok(true) => {}
                Ok(false) => return Some("another server holds it".to_owned()),
                Err(e) => return Some(e.to_string()),
            }
            let failure = match self.sink.open().await {
                Err(e) => Some(e.to_string()),
                Ok(()) if !self.sink.alive().await => {
                    Some("the collector closed the connection".into())
                }
                Ok(()) => None,
            };
            if let Some(why) = failure {
                self.failed(&why, &mut down_since);
                sent = confirmed;
                in_flight.0.clear();
                self.measure(confirmed, &in_flight).await;
                if wait(shutdown, backoff).await {
                    return None;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            // Whatever has stayed on a healthy connection long enough counts as delivered.
            let now = SystemClock.now();
            while let Some(&(at, id, _)) = in_flight.0.front() {
                if now.duration_since(at) < confirm_after {
                    break;
                }
                confirmed = id;
                in_flight.0.pop_front();
            }
            self.gate.set_confirmed(self.index, confirmed);
            if confirmed > persisted {
                match self
                    .store
                    .advance_export_cursor(&self.name, confirmed)
                    .await
                {
                    Ok(()) => persisted = confirmed,
                    Err(e) => {
                        tracing::warn!(sink = %self.name, error = %e, "cannot save the export cursor")
                    }
                }
            }
            self.measure(confirmed, &in_flight).await;
            let commits = self.commits.clone();
            let notified = commits.notified();
            let batch = match self.store.audit_in_order(sent, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(sink = %self.name, error = %e, "cannot read the audit log for export");
                    if wait(shutdown, MAX_BACKOFF).await {
                        return None;
                    }
                    continue;
                }
            };
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                let pause = in_flight
                    .0
                    .front()
                    .map_or(IDLE_POLL, |(at, _, _)| {
                        confirm_after.saturating_sub(at.elapsed()).min(IDLE_POLL)
                    })
                    .max(Duration::from_millis(10));
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            let (first_time, last_id) = (first.record.time, last.id);
            match self.sink.write(&self.encoder.encode(&batch)).await {
                Ok(()) => {
                    metrics::counter!("natterjack_audit_export_delivered_total", "sink" => self.name.clone())
                        .increment(batch.len() as u64);
                    sent = last_id;
                    in_flight
                        .0
                        .push_back((SystemClock.now(), last_id, first_time));
                    backoff = Duration::from_millis(100);
                    if let Some(since) = down_since.take() {
                        tracing::info!(sink = %self.name, down_secs = since.elapsed().as_secs(), resumed_after = confirmed, "audit export resumed");
                    }
                }
                Err(e) => {
                    self.sink.close();
                    self.failed(&e.to_string(), &mut down_since);
                    sent = confirmed;
                    in_flight.0.clear();
                }
            }
        }
        None
    }

    /// Counts a failure; says so in the log once per outage, not once per retry.
    fn failed(&mut self, why: &str, down_since: &mut Option<Instant>) {
        self.sink.close();
        metrics::counter!("natterjack_audit_export_failures_total", "sink" => self.name.clone())
            .increment(1);
        if down_since.is_none() {
            *down_since = Some(SystemClock.now());
            tracing::warn!(sink = %self.name, error = %why, "audit export failed; records wait in the audit log and will be re-sent");
        }
    }

    /// Publishes the backlog and the lag (the age of the oldest record the sink has not
    /// confirmed) as gauges.
    async fn measure(&self, confirmed: i64, in_flight: &InFlight) {
        let Ok(head) = self.store.audit_head().await else {
            return;
        };
        let backlog = head.map_or(0, |h| h.id).saturating_sub(confirmed).max(0);
        let backlog = u64::try_from(backlog).unwrap_or(0);
        metrics::gauge!("natterjack_audit_export_backlog", "sink" => self.name.clone())
            .set(backlog as f64);
        let oldest = match in_flight.0.front() {
            Some(&(_, _, time)) => Some(time),
            None if backlog > 0 => self
                .store
                .audit_in_order(confirmed, 1)
                .await
                .ok()
                .and_then(|r| r.first().map(|s| s.record.time)),
            None => None,
        };
        let lag = oldest.map_or(0.0, |t| {
            (SystemClock.wall().micros().saturating_sub(t.micros())).max(0) as f64 / 1e6
        });
        metrics::gauge!("natterjack_audit_export_lag_seconds", "sink" => self.name.clone())
            .set(lag);
    }
}

/// Sleeps, or returns true at once when shutdown is signalled.
async fn wait(shutdown: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
