//! The anomaly monitor's windows shared by several nodes. Each node counting only the
//! refusals it answered lets an attack spread over N nodes stay under every threshold; here
//! every refusal is counted in one store every node reaches (the server's Redis adapter),
//! and of the nodes that see a window cross its threshold exactly one raises the alert,
//! once per window, as one node does alone.
//!
//! Counting happens off the request's path: the audit log queues each refusal for a task
//! that sends them to the store in batches and queues the alerts that come back. When the
//! store does not answer, the batch is counted in this node's own windows instead
//! ([`AnomalyMonitor::observe`]), so alerts keep coming, per node.

use super::alerts::{AnomalyMonitor, Sighting};
use super::record::{Alert, AuditRecord};
use crate::clock::SharedClock;
use crate::domain::Timestamp;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the store answers for a sighting that crossed its threshold first in its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    /// Members in the window now.
    pub count: u64,
    /// When the window's oldest member was counted.
    pub first: Timestamp,
    /// The newest members, newest first (at most three).
    pub latest: Vec<String>,
}

/// The port a shared store implements.
#[async_trait]
pub trait SharedWindows: Send + Sync + 'static {
    /// Counts each sighting in its window of `window`, on the store's clock, and answers for
    /// each whether it made its window reach its threshold while no alert was raised for it
    /// within the last `window`: `Some` for exactly one sighting, on one node, per window.
    async fn count(
        &self,
        sightings: &[Sighting],
        window: Duration,
    ) -> Result<Vec<Option<Crossing>>, String>;
}

/// Refusals waiting to be counted; beyond this a refusal is counted in this node's own
/// windows instead.
const QUEUE: usize = 4096;

/// Refusals sent to the store in one call at most.
const BATCH: usize = 256;

/// A refusal to count: its record and the account it claimed.
pub(super) type Observed = (AuditRecord, Option<String>);

/// Starts the task that counts refusals in `windows` and hands each alert to `raise`; the
/// returned sender is where the audit log queues refusals. The task ends when every sender
/// is dropped.
pub(super) fn start(
    windows: Arc<dyn SharedWindows>,
    monitor: Arc<AnomalyMonitor>,
    (timeout, clock): (Duration, SharedClock),
    raise: impl Fn(AuditRecord) + Send + 'static,
) -> mpsc::Sender<Observed> {
    let (sender, mut queue) = mpsc::channel::<Observed>(QUEUE);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while queue.recv_many(&mut batch, BATCH).await > 0 {
            let local = || clock.now();
            for alert in count(windows.as_ref(), &monitor, (timeout, &local), &batch).await {
                raise(alert);
            }
            batch.clear();
        }
    });
    sender
}

/// The alerts of one batch: from the store, or from this node's own windows when it does
/// not answer.
async fn count(
    windows: &dyn SharedWindows,
    monitor: &AnomalyMonitor,
    (timeout, now): (Duration, &(dyn Fn() -> std::time::Instant + Sync)),
    batch: &[Observed],
) -> Vec<AuditRecord> {
    let mut sightings = Vec::new();
    let mut triggers = Vec::new();
    for (record, claimed) in batch {
        for sighting in monitor.sightings(record, claimed.as_deref()) {
            sightings.push(sighting);
            triggers.push(record);
        }
    }
    if sightings.is_empty() {
        return Vec::new();
    }
    let window = monitor.thresholds().window;
    match tokio::time::timeout(timeout, windows.count(&sightings, window)).await {
        Ok(Ok(crossings)) if crossings.len() == sightings.len() => sightings
            .iter()
            .zip(triggers)
            .zip(crossings)
            .filter_map(|((sighting, trigger), crossing)| {
                crossing.map(|c| alert(sighting, trigger, &c, window))
            })
            .collect(),
        answer => {
            let why = match answer {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => "the store answered another number of sightings".to_owned(),
                Err(_) => "no answer within the timeout".to_owned(),
            };
            tracing::warn!(error = %why, "shared anomaly windows unavailable: counting this node's refusals alone");
            metrics::counter!("natterjack_alert_windows_local_total").increment(batch.len() as u64);
            let now = now();
            batch
                .iter()
                .flat_map(|(record, claimed)| monitor.observe(record, claimed.as_deref(), now))
                .collect()
        }
    }
}

/// The alert record of a crossing, with its evidence.
fn alert(
    sighting: &Sighting,
    trigger: &AuditRecord,
    crossing: &Crossing,
    window: Duration,
) -> AuditRecord {
    let evidence = if sighting.kind == "distributed_guessing" {
        format!(
            "failed logins from {count} addresses within {window} s on every node (threshold {threshold} addresses) from {first} to {last}; latest addresses: {latest}; latest request: {id}",
            count = crossing.count,
            window = window.as_secs(),
            threshold = sighting.threshold,
            first = crossing.first.to_rfc3339(),
            last = trigger.time.to_rfc3339(),
            latest = crossing.latest.join(", "),
            id = trigger.request_id,
        )
    } else {
        format!(
            "{count} {kind} refusals within {window} s on every node (threshold {threshold}) from {first} to {last}; latest requests: {latest}",
            count = crossing.count,
            kind = sighting.kind,
            window = window.as_secs(),
            threshold = sighting.threshold,
            first = crossing.first.to_rfc3339(),
            last = trigger.time.to_rfc3339(),
            latest = crossing.latest.join(", "),
        )
    };
    Alert {
        time: trigger.time,
        kind: sighting.kind,
        target: &sighting.target,
        evidence: &evidence,
        request_id: trigger.request_id.clone(),
        client_ip: trigger.client_ip.clone(),
        principal: sighting.principal.clone(),
        duration_us: trigger
            .time
            .micros()
            .saturating_sub(crossing.first.micros()),
    }
    .into()
}
