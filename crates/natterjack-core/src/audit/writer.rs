//! The audit log every transport records through: a single writer task that batches
//! records into one transaction (group commit), extends the chain, and anchors its head.
//! The handle also feeds the anomaly monitor and the coalescing of refusals, and answers
//! whether the export and disk-space gates let state changes through, because every
//! completed request passes here. How a batch's ids and MACs are computed is in
//! the `linking` module beside this one.

use super::alerts::AnomalyMonitor;
use super::chain::{AuditKey, ChainHead};
use super::coalesce::{CoalescePolicy, Coalescer, LimitedBy, Verdict};
use super::export_gate::ExportGate;
use super::linking::{check_key, link, verified_head};
use super::space_gate::SpaceGate;
use super::{AuditRecord, AuditStore, Decision, HeadAnchor, StoredAuditRecord};
use crate::ServiceError;
use crate::clock::SharedClock;
use crate::domain::{Limit, Timestamp, Username};
use crate::ports::StoreError;
use crate::principal::AdminAccess;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// Filters of `GET /audit`, newest first.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// Records made at or after this time.
    pub since: Option<Timestamp>,
    /// Records made before this time.
    pub until: Option<Timestamp>,
    /// Records of this user only.
    pub principal: Option<Username>,
    /// Records with this decision only (the console's outcome filter).
    pub decision: Option<Decision>,
    /// Cursor: records with a smaller id.
    pub after: Option<i64>,
    /// Page size.
    pub limit: Limit,
}

/// What the pipeline knows about a completed request beyond its record, for the anomaly
/// monitor and the coalescing of refusals. None of it is stored as such.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// The user a client failed to authenticate as: not a principal, so never recorded in
    /// the record itself, but the account under attack for the monitor.
    pub claimed: Option<&'a str>,
    /// The rate-limit policy and key that refused the request, if one did.
    pub limited_by: Option<LimitedBy>,
}

/// Why state changes are refused for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangesPaused {
    /// `audit.fail_closed`: the SIEM export backlog is over its bound.
    ExportBacklog,
    /// The data directory's disk is below `audit.min_free_mb`.
    LowDisk,
}

/// A record to append (acknowledged with its id once committed), or, with `None`, a flush
/// marker acknowledged once everything queued before it is committed.
type Job = (Option<AuditRecord>, oneshot::Sender<Result<i64, ()>>);

/// Most records committed in one transaction.
const MAX_BATCH: usize = 512;

/// Longest a batch of records nobody waits for (completions, summaries, alerts) waits for
/// more before it is committed. Each commit writes the pages the batch touched to the WAL,
/// and under load those commits, a few records each, took about a tenth of the server's CPU
/// in a profile of an authenticated read (bench/load); waiting a little lets one commit
/// carry many more records. A record someone waits for (an intent before a change, a
/// flush) is never kept waiting: it ends the wait at once. The price is that a crash can
/// lose up to this much more of the queued records, which a crash could lose anyway.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Least time between two rewrites of the head anchor. Under load, batches commit every
/// few hundred microseconds; rewriting the file (a temporary file and a rename) after each
/// took about 6% of the server's CPU in a profile of an authenticated read (bench/load).
/// The anchor may lag the database anyway (verification accepts records that chain on from
/// it), and this bounds that lag to one interval plus a file write while the log is busy.
const ANCHOR_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// Appends of one batch before giving up when other processes keep taking its ids.
const MAX_ATTEMPTS: u32 = 32;

/// The handle to the audit writer.
pub struct AuditLog {
    /// `None` only in the benchmarks' unaudited baseline.
    sender: Option<mpsc::Sender<Job>>,
    store: Arc<dyn AuditStore>,
    committed: Arc<AtomicU64>,
    head: Arc<AtomicI64>,
    commits: Arc<Notify>,
    monitor: Option<Arc<AnomalyMonitor>>,
    gate: Option<Arc<ExportGate>>,
    space: Option<Arc<SpaceGate>>,
    coalescer: Option<Arc<Coalescer>>,
    /// Where refusals go to be counted in windows shared by several nodes, when they are.
    shared_windows: Option<mpsc::Sender<super::shared_windows::Observed>>,
    clock: SharedClock,
}

impl AuditLog {
    /// Starts the writer. Refuses to start when the anchored head is beyond the database's
    /// newest record: the tail was removed, and continuing would overwrite the evidence.
    pub async fn start(
        store: Arc<dyn AuditStore>,
        key: AuditKey,
        anchor: Option<Arc<dyn HeadAnchor>>,
    ) -> Result<Self, String> {
        Self::start_with_max_batch(store, key, anchor, MAX_BATCH).await
    }

    /// [`AuditLog::start`] with another bound on records per transaction; `1` switches group
    /// commit off (the benchmark's comparison case).
    pub async fn start_with_max_batch(
        store: Arc<dyn AuditStore>,
        key: AuditKey,
        anchor: Option<Arc<dyn HeadAnchor>>,
        max_batch: usize,
    ) -> Result<Self, String> {
        let head = store
            .audit_head()
            .await
            .map_err(|e| format!("cannot read the audit log: {e}"))?;
        if let Some(anchor) = &anchor {
            let anchored = anchor
                .load()
                .map_err(|e| format!("cannot read the audit chain anchor: {e}"))?;
            if anchored.is_none() && head.is_some() {
                return Err("the audit chain anchor is missing while the log has records: a removed tail \
                            could no longer be detected; restore the anchor file and run `natterjack audit verify`"
                    .to_owned());
            }
            if anchored.is_none() {
                // A new log: anchor the empty chain, so the anchor exists from the first record on.
                anchor
                    .store(&ChainHead {
                        id: 0,
                        mac: key.genesis(),
                    })
                    .map_err(|e| format!("cannot write the audit chain anchor: {e}"))?;
            }
            if let Some(anchored) = anchored.filter(|a| a.id > head.map_or(0, |h| h.id)) {
                return Err(format!(
                    "the audit log ends before its anchored head (record {}): records were removed; \
                     run `natterjack audit verify` and investigate before starting",
                    anchored.id
                ));
            }
        }
        if let Some(head) = head {
            check_key(store.as_ref(), &key, head).await?;
        }
        let head = head.unwrap_or(ChainHead {
            id: 0,
            mac: key.genesis(),
        });
        let (sender, receiver) = mpsc::channel(4096);
        let committed = Arc::new(AtomicU64::new(0));
        let newest = Arc::new(AtomicI64::new(head.id));
        let commits = Arc::new(Notify::new());
        tokio::spawn(write_loop(
            receiver,
            store.clone(),
            key,
            anchor,
            head,
            (committed.clone(), newest.clone(), commits.clone()),
            max_batch.max(1),
        ));
        Ok(Self {
            sender: Some(sender),
            store,
            committed,
            head: newest,
            commits,
            monitor: None,
            gate: None,
            space: None,
            coalescer: None,
            shared_windows: None,
            clock: crate::clock::system(),
        })
    }

    /// Reads time from `clock` for the windows of coalescing and of the anomaly monitor (set
    /// it before [`AuditLog::with_coalescing`]).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Watches every completed request for bursts of refusals and appends an `alert` record
    /// when one crosses its threshold.
    pub fn with_monitor(mut self, monitor: Arc<AnomalyMonitor>) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Counts refusals in `windows`, shared by every node, instead of this process's own
    /// (see [`super::shared_windows`]); a call that takes longer than `timeout` falls back to
    /// this process's windows for its batch. Needs [`AuditLog::with_monitor`] first.
    #[must_use]
    pub fn with_shared_windows(
        mut self,
        windows: Arc<dyn super::shared_windows::SharedWindows>,
        timeout: std::time::Duration,
    ) -> Self {
        if let (Some(monitor), Some(sender)) = (&self.monitor, &self.sender) {
            let sender = sender.clone();
            let raise = move |alert: AuditRecord| {
                announce(&alert);
                let sender = sender.clone();
                tokio::spawn(async move {
                    let (ack, _) = oneshot::channel();
                    let _ = sender.send((Some(alert), ack)).await;
                });
            };
            self.shared_windows = Some(super::shared_windows::start(
                windows,
                monitor.clone(),
                (timeout, self.clock.clone()),
                raise,
            ));
        }
        self
    }

    /// Coalesces rate-limit refusals: the first `policy.individually` of each key and
    /// window are recorded, the rest counted into one `summary` record, written when the
    /// window ends (checked every second) or at [`AuditLog::flush`].
    pub fn with_coalescing(mut self, policy: CoalescePolicy) -> Self {
        let coalescer = Arc::new(Coalescer::new(policy).with_clock(self.clock.clone()));
        if let Some(sender) = &self.sender {
            let (sender, due) = (sender.clone(), Arc::downgrade(&coalescer));
            let clock = self.clock.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let Some(coalescer) = due.upgrade() else {
                        break;
                    };
                    for summary in coalescer.due(clock.now()) {
                        let (ack, _) = oneshot::channel();
                        if sender.send((Some(summary), ack)).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
        self.coalescer = Some(coalescer);
        self
    }

    /// Lets the SIEM exporter's backlog pause state changes (`audit.fail_closed`).
    pub fn with_export_gate(mut self, gate: Arc<ExportGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Lets the disk-space guard pause state changes.
    pub fn with_space_gate(mut self, gate: Arc<SpaceGate>) -> Self {
        self.space = Some(gate);
        self
    }

    /// Whether a state-changing request may go ahead: refused while the disk is nearly
    /// full, and while failing closed on an export backlog over its bound.
    pub fn accepts_changes(&self) -> Result<(), ChangesPaused> {
        if self.space.as_ref().is_some_and(|space| space.is_low()) {
            return Err(ChangesPaused::LowDisk);
        }
        if self
            .gate
            .as_ref()
            .is_some_and(|gate| gate.refuses_changes(self.head.load(Ordering::Relaxed)))
        {
            return Err(ChangesPaused::ExportBacklog);
        }
        Ok(())
    }

    /// Woken after every commit, so the exporter ships new records without polling hard.
    pub fn commits(&self) -> Arc<Notify> {
        self.commits.clone()
    }

    /// The store the log is written to (the exporter reads it as its outbox).
    pub fn store(&self) -> Arc<dyn AuditStore> {
        self.store.clone()
    }

    /// A log that drops every record at once, without a writer (reading still goes to the
    /// `real` log's store): the unaudited baseline the benchmarks compare the real log against. Behind a feature that only the benchmarks
    /// enable, so no server build can be assembled without its audit trail.
    #[cfg(feature = "unaudited-baseline")]
    pub fn unaudited_baseline(real: &AuditLog) -> Self {
        Self {
            sender: None,
            store: real.store.clone(),
            committed: Arc::new(AtomicU64::new(0)),
            head: Arc::new(AtomicI64::new(0)),
            commits: Arc::new(Notify::new()),
            monitor: None,
            gate: None,
            space: None,
            coalescer: None,
            shared_windows: None,
            clock: crate::clock::system(),
        }
    }

    async fn send(&self, job: Job) -> Result<(), ServiceError> {
        match &self.sender {
            Some(sender) => sender
                .send(job)
                .await
                .map_err(|_| ServiceError::Unavailable),
            None => {
                let _ = job.1.send(Ok(0));
                Ok(())
            }
        }
    }

    /// Appends a record and waits until it is durably committed. Returns its id.
    pub async fn record(&self, record: AuditRecord) -> Result<i64, ServiceError> {
        let (ack, done) = oneshot::channel();
        self.send((Some(record), ack)).await?;
        match done.await {
            Ok(Ok(id)) => Ok(id),
            _ => Err(ServiceError::Unavailable),
        }
    }

    /// Queues a record without waiting for its commit; waits only while the queue is full.
    /// For completion records: a state change's intent was already committed before it
    /// ran, so the response need not wait for the outcome to reach the disk as well.
    pub async fn submit(&self, record: AuditRecord) -> Result<(), ServiceError> {
        self.submit_observed(record, Observed::default()).await
    }

    async fn queue(&self, record: AuditRecord) -> Result<(), ServiceError> {
        let (ack, _) = oneshot::channel();
        self.send((Some(record), ack)).await
    }

    /// [`AuditLog::submit`] for a completion, with what else the pipeline observed: the
    /// anomaly monitor sees every completion (and the account a refused client claimed),
    /// then a rate-limit refusal beyond the first few of its window is counted into a
    /// summary instead of being written on its own.
    pub async fn submit_observed(
        &self,
        record: AuditRecord,
        observed: Observed<'_>,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let alerts = match (&self.monitor, &self.shared_windows) {
            (Some(monitor), Some(shared)) => {
                let queued = super::alerts::Refusal::of(&record).is_none()
                    || shared
                        .try_send((record.clone(), observed.claimed.map(str::to_owned)))
                        .is_ok();
                if queued {
                    Vec::new()
                } else {
                    monitor.observe(&record, observed.claimed, now)
                }
            }
            (Some(monitor), None) => monitor.observe(&record, observed.claimed, now),
            (None, _) => Vec::new(),
        };
        let (verdict, summaries) = match (&self.coalescer, &observed.limited_by) {
            (Some(coalescer), Some(by)) => coalescer.admit(&record, by, now),
            _ => (Verdict::Record, Vec::new()),
        };
        for summary in summaries {
            self.queue(summary).await?;
        }
        match verdict {
            Verdict::Record => self.queue(record).await?,
            Verdict::Counted => {
                metrics::counter!("natterjack_audit_refusals_coalesced_total").increment(1);
            }
        }
        for alert in alerts {
            announce(&alert);
            self.queue(alert).await?;
        }
        Ok(())
    }

    /// Closes every coalescing window (its summary is queued) and waits until every record
    /// queued so far is committed (at shutdown).
    pub async fn flush(&self) -> Result<(), ServiceError> {
        if let Some(coalescer) = &self.coalescer {
            for summary in coalescer.drain() {
                self.queue(summary).await?;
            }
        }
        let (ack, done) = oneshot::channel();
        self.send((None, ack)).await?;
        match done.await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ServiceError::Unavailable),
        }
    }

    /// Records committed since start-up (tests and metrics).
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// A page of the log, newest first; admins only.
    pub async fn page(
        &self,
        _admin: AdminAccess,
        query: &AuditQuery,
    ) -> Result<Vec<StoredAuditRecord>, ServiceError> {
        Ok(self.store.audit_page(query).await?)
    }
}

/// Counts and logs an alert the moment it is raised.
fn announce(alert: &AuditRecord) {
    metrics::counter!(
        "natterjack_alerts_total",
        "kind" => alert.operation.trim_start_matches("alert ").to_owned()
    )
    .increment(1);
    tracing::warn!(
        alert = %alert.operation,
        target = %alert.target,
        "anomaly: {}",
        alert.reason.as_deref().unwrap_or_default()
    );
}

async fn write_loop(
    mut receiver: mpsc::Receiver<Job>,
    store: Arc<dyn AuditStore>,
    key: AuditKey,
    anchor: Option<Arc<dyn HeadAnchor>>,
    mut head: ChainHead,
    (committed, newest, commits): (Arc<AtomicU64>, Arc<AtomicI64>, Arc<Notify>),
    max_batch: usize,
) {
    let (anchored, to_anchor) = watch::channel(None);
    if let Some(anchor) = anchor {
        tokio::spawn(anchor_loop(to_anchor, anchor));
    }
    let mut shared = false;
    while let Some(first) = receiver.recv().await {
        let mut jobs = vec![first];
        // One pass of the scheduler first: requests woken in the same tick as the first
        // one queue their records too, so a batch under load holds several times more
        // records and each commit is shared by more requests (bench/load).
        tokio::task::yield_now().await;
        while jobs.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        linger(&mut receiver, &mut jobs, max_batch).await;
        let mut outcome = if shared {
            append_exclusive(store.as_ref(), &key, &mut head, &jobs).await
        } else {
            append(store.as_ref(), &key, &mut head, &jobs).await
        };
        // Another server process sharing the database appended first (its records took the
        // ids this batch was linked for). From now on this writer continues the chain from
        // the database's head under the log's write lock: retrying optimistically would keep
        // losing to a writer that needs no read before its next append.
        let mut attempts = 1;
        while matches!(outcome, Err(StoreError::Conflict)) && attempts < MAX_ATTEMPTS {
            attempts += 1;
            shared = true;
            outcome = append_exclusive(store.as_ref(), &key, &mut head, &jobs).await;
        }
        match outcome {
            Ok((ids, appended)) => {
                if appended > 0 {
                    // The anchor follows on its own task, so file I/O never delays a commit.
                    let _ = anchored.send(Some(head));
                }
                committed.fetch_add(appended, Ordering::Relaxed);
                if appended > 0 {
                    newest.store(head.id, Ordering::Relaxed);
                    commits.notify_waiters();
                }
                for ((_, ack), id) in jobs.into_iter().zip(ids) {
                    let _ = ack.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = jobs.len(), "audit write failed");
                for (_, ack) in jobs {
                    let _ = ack.send(Err(()));
                }
            }
        }
    }
}

/// Links the batch's records after `head`, appends them in one transaction, and moves `head`
/// once they are committed. Returns each job's id (its record's, or for a flush marker the
/// newest before it) and how many records were appended.
/// Whether anyone waits for the job's acknowledgement: `record` and `flush` do, queued
/// records do not (their receiver is gone).
fn awaited(job: &Job) -> bool {
    !job.1.is_closed()
}

/// Adds to a batch nobody waits for whatever arrives within [`LINGER`], until the batch is
/// full or a job that someone waits for arrives.
async fn linger(receiver: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, max_batch: usize) {
    if jobs.iter().any(awaited) {
        return;
    }
    let until = tokio::time::Instant::now() + LINGER;
    while jobs.len() < max_batch {
        match tokio::time::timeout_at(until, receiver.recv()).await {
            Ok(Some(job)) => {
                let stop = awaited(&job);
                jobs.push(job);
                if stop {
                    return;
                }
            }
            // The time is up, or every sender is gone (the process is stopping).
            Ok(None) | Err(_) => return,
        }
    }
}

async fn append(
    store: &dyn AuditStore,
    key: &AuditKey,
    head: &mut ChainHead,
    jobs: &[Job],
) -> Result<(Vec<i64>, u64), StoreError> {
    let linked = link(key, *head, jobs.iter().map(|(record, _)| record.as_ref()));
    if !linked.batch.is_empty() {
        store.append_audit(&linked.batch).await?;
    }
    *head = linked.head;
    Ok((linked.ids, linked.batch.len() as u64))
}

/// [`append`] after the database's own head, read under the log's write lock (and checked to
/// be linked with this writer's key): for a writer that shares the database.
async fn append_exclusive(
    store: &dyn AuditStore,
    key: &AuditKey,
    head: &mut ChainHead,
    jobs: &[Job],
) -> Result<(Vec<i64>, u64), StoreError> {
    if jobs.iter().all(|(record, _)| record.is_none()) {
        return append(store, key, head, jobs).await;
    }
    // What the caller needs of the batch handed to the store: its ids, count and new head.
    let mut outcome = None;
    store
        .append_audit_exclusive(&mut |newest| {
            let linked = link(
                key,
                verified_head(key, newest)?,
                jobs.iter().map(|(record, _)| record.as_ref()),
            );
            outcome = Some((linked.ids, linked.batch.len() as u64, linked.head));
            Ok(linked.batch)
        })
        .await?;
    let (ids, appended, new_head) =
        outcome.ok_or_else(|| StoreError::Internal("nothing was linked".into()))?;
    *head = new_head;
    Ok((ids, appended))
}

/// Writes the newest committed head to the anchor whenever it moves. The anchor lags the
/// database by at most the batches committed while a write was in progress, and is never
/// ahead of it, which is what verification expects.
async fn anchor_loop(mut heads: watch::Receiver<Option<ChainHead>>, anchor: Arc<dyn HeadAnchor>) {
    while heads.changed().await.is_ok() {
        let Some(head) = *heads.borrow_and_update() else {
            continue;
        };
        let anchor = anchor.clone();
        let stored = tokio::task::spawn_blocking(move || anchor.store(&head)).await;
        if !matches!(stored, Ok(Ok(()))) {
            tracing::error!("could not anchor the audit chain head");
        }
        tokio::time::sleep(ANCHOR_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuthMethod, Decision, Phase, Status, Transport};
    use crate::clock::{Clock, SystemClock};
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::time::Duration;

    /// An audit store in memory that remembers which records each append carried.
    #[derive(Default)]
    struct Appends(Mutex<Vec<Vec<String>>>);

    impl Appends {
        fn batches(&self) -> Vec<Vec<String>> {
            self.0.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl AuditStore for Appends {
        async fn audit_head(&self) -> Result<Option<ChainHead>, StoreError> {
            Ok(None)
        }
        async fn append_audit(&self, records: &[StoredAuditRecord]) -> Result<(), StoreError> {
            let ids = records.iter().map(|r| r.record.request_id.clone());
            self.0.lock().unwrap().push(ids.collect());
            Ok(())
        }
        async fn append_audit_exclusive(
            &self,
            _: &mut crate::audit::Linker<'_>,
        ) -> Result<(), StoreError> {
            Err(StoreError::Internal("not used here".into()))
        }
        async fn audit_in_order(
            &self,
            _: i64,
            _: u32,
        ) -> Result<Vec<StoredAuditRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn audit_page(&self, _: &AuditQuery) -> Result<Vec<StoredAuditRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn export_cursor(&self, _: &str) -> Result<i64, StoreError> {
            Ok(0)
        }
        async fn advance_export_cursor(&self, _: &str, _: i64) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn completion(id: &str) -> AuditRecord {
        AuditRecord {
            time: SystemClock.wall(),
            request_id: id.to_owned(),
            phase: Phase::Complete,
            transport: Transport::Rest,
            client_ip: "192.0.2.1".to_owned(),
            principal: None,
            auth_method: AuthMethod::None,
            operation: "GET /health".to_owned(),
            target: String::new(),
            status: Some(Status::Http(200)),
            decision: Decision::Allow,
            reason: None,
            duration_us: 5,
            count: None,
        }
    }

    async fn log() -> (Arc<Appends>, AuditLog) {
        let store = Arc::new(Appends::default());
        let log = AuditLog::start(store.clone(), AuditKey::new([7; 32]), None)
            .await
            .unwrap();
        (store, log)
    }

    #[tokio::test(start_paused = true)]
    async fn queued_records_arriving_within_the_linger_share_one_commit() {
        let (store, log) = log().await;
        log.submit(completion("a")).await.unwrap();
        tokio::time::sleep(LINGER / 2).await;
        log.submit(completion("b")).await.unwrap();
        tokio::time::sleep(LINGER * 4).await;
        // Past the linger, a record starts a batch of its own.
        log.submit(completion("c")).await.unwrap();
        tokio::time::sleep(LINGER * 4).await;
        assert_eq!(store.batches(), vec![vec!["a", "b"], vec!["c"]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_someone_waits_for_ends_the_linger_and_commits_at_once() {
        let (store, log) = log().await;
        log.submit(completion("queued")).await.unwrap();
        let started = tokio::time::Instant::now();
        let id = log.record(completion("intent")).await.unwrap();
        // The paused clock moves only when every task waits on a timer: the intent was
        // committed without the batch waiting out its linger.
        assert!(started.elapsed() < LINGER, "{:?}", started.elapsed());
        assert_eq!(id, 2);
        assert_eq!(store.batches(), vec![vec!["queued", "intent"]]);
        tokio::time::sleep(Duration::from_millis(1)).await;
        log.flush().await.unwrap();
        assert_eq!(
            store.batches().len(),
            1,
            "a flush with nothing queued appends nothing"
        );
    }
}
