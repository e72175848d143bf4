//! Budgets shared by several server processes. Each node behind a load balancer keeping
//! its own buckets would let a client make N times its quota; here the same GCRA decisions
//! are made atomically in one store every node reaches (the server's Redis adapter), on
//! that store's clock, so N nodes enforce one quota.
//!
//! A decision spans several policies at once (per address, then the class, then global):
//! the store answers it in one round trip and takes from every bucket or from none. When
//! the store does not answer, each policy does what it is configured to: fail open to this
//! process's own buckets (what a single node does anyway), or fail closed (refused with
//! [`Cause::StoreDown`], answered 503). The store is then left alone, every decision
//! answered at once without it, until a probe every `retry` finds it back.

use super::gcra::{Cause, Limiter, Refusal};
use async_trait::async_trait;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// What a decision does with the buckets it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Takes one request from every bucket when all of them allow it, from none otherwise.
    Take,
    /// Whether every bucket would allow a request now; takes nothing.
    Peek,
    /// Returns one request to every bucket (a guess that turned out not to count).
    GiveBack,
}

/// One bucket of a shared decision: its key in the store (`policy:key`) and its policy's
/// GCRA constants, which the store applies with its own clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCheck {
    /// `policy:key`, e.g. `per-ip:192.0.2.1`; the adapter adds its own prefix.
    pub key: String,
    /// The emission interval `T`, in nanoseconds.
    pub interval_nanos: u64,
    /// The tolerance `τ`, in nanoseconds.
    pub tolerance_nanos: u64,
}

/// The store's answer to a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Every bucket allowed it (and, for [`Op::Take`], each gave one request).
    Allowed,
    /// The bucket at `index` (the first that refused) refused; nothing was taken.
    Refused {
        /// Its position in the decision's checks.
        index: usize,
        /// When it would allow a request.
        retry_after: Duration,
    },
}

/// The port a shared store implements: one atomic decision per call.
#[async_trait]
pub trait SharedBuckets: Send + Sync + 'static {
    /// Makes the decision `op` over `checks` atomically, on the store's clock.
    async fn decide(&self, op: Op, checks: &[SharedCheck]) -> Result<Answer, String>;
    /// Whether the store answers at all (the probe that ends an outage).
    async fn ping(&self) -> Result<(), String>;
}

/// How a limiter's key is spelled in the store: the same on every node.
pub trait SharedKey {
    /// The key's text after the policy name.
    fn shared_key(&self) -> String;
}

impl SharedKey for IpAddr {
    fn shared_key(&self) -> String {
        self.to_string()
    }
}

impl SharedKey for () {
    fn shared_key(&self) -> String {
        "*".to_owned()
    }
}

impl SharedKey for String {
    fn shared_key(&self) -> String {
        self.clone()
    }
}

impl SharedKey for crate::domain::UserId {
    fn shared_key(&self) -> String {
        self.to_string()
    }
}

impl SharedKey for (String, IpAddr) {
    fn shared_key(&self) -> String {
        format!("{}@{}", self.0, self.1)
    }
}

/// One policy's bucket for one key, with the key type erased, so that one decision can
/// span policies keyed by address, by user and by nothing.
pub trait Bucket: Send + Sync {
    /// The policy's name.
    fn policy(&self) -> &'static str;
    /// The bucket as the shared store knows it.
    fn shared(&self) -> SharedCheck;
    /// A refusal by this policy after `retry_after`, for `cause`.
    fn refusal(&self, retry_after: Duration, cause: Cause) -> Refusal;
    /// [`Op::Take`] on this process's own bucket.
    fn take_local(&self) -> Result<(), Refusal>;
    /// [`Op::Peek`] on this process's own bucket.
    fn peek_local(&self) -> Result<(), Refusal>;
    /// [`Op::GiveBack`] on this process's own bucket.
    fn give_back_local(&self);
}

/// `limiter`'s bucket for `key`.
pub struct At<'a, K>(pub &'a Limiter<K>, pub K);

impl<K> Bucket for At<'_, K>
where
    K: Hash + Eq + Clone + SharedKey + Send + Sync,
{
    fn policy(&self) -> &'static str {
        self.0.name()
    }

    fn shared(&self) -> SharedCheck {
        SharedCheck {
            key: format!("{}:{}", self.0.name(), self.1.shared_key()),
            interval_nanos: self.0.interval_nanos(),
            tolerance_nanos: self.0.tolerance_nanos(),
        }
    }

    fn refusal(&self, retry_after: Duration, cause: Cause) -> Refusal {
        Refusal {
            policy: self.0.name(),
            quota: self.0.quota(),
            retry_after,
            cause,
        }
    }

    fn take_local(&self) -> Result<(), Refusal> {
        self.0.check(&self.1).map(drop)
    }

    fn peek_local(&self) -> Result<(), Refusal> {
        self.0.peek(&self.1).map(drop)
    }

    fn give_back_local(&self) {
        self.0.give_back(&self.1);
    }
}

/// Makes `op` over `buckets` in `shared` when there is a shared store, else in this
/// process's own buckets. Either way a [`Op::Take`] takes from every bucket or from none,
/// and a refusal names the first policy, in order, that refused.
pub async fn decide(
    shared: Option<&SharedLimits>,
    op: Op,
    buckets: &[&dyn Bucket],
) -> Result<(), Refusal> {
    match shared {
        Some(shared) => shared.decide(op, buckets).await,
        None => local(op, buckets),
    }
}

/// [`decide`] on this process's own buckets.
fn local(op: Op, buckets: &[&dyn Bucket]) -> Result<(), Refusal> {
    match op {
        Op::Take => {
            for (i, bucket) in buckets.iter().enumerate() {
                if let Err(refusal) = bucket.take_local() {
                    for taken in &buckets[..i] {
                        taken.give_back_local();
                    }
                    return Err(refusal);
                }
            }
        }
        Op::Peek => {
            for bucket in buckets {
                bucket.peek_local()?;
            }
        }
        Op::GiveBack => {
            for bucket in buckets {
                bucket.give_back_local();
            }
        }
    }
    Ok(())
}

/// The shared store as the policies use it: each decision in one call, a bound on how long
/// it may take, the policies that fail closed, and the outage state, which moves to "down"
/// on the first failed call and back to "up" once a probe succeeds.
pub struct SharedLimits {
    store: Arc<dyn SharedBuckets>,
    timeout: Duration,
    retry: Duration,
    fail_closed: Vec<&'static str>,
    up: AtomicBool,
    state: watch::Sender<bool>,
}

impl SharedLimits {
    /// Shares the budgets through `store`. A call that takes longer than `timeout` counts
    /// as a failure; while the store is down a probe runs every `retry`; the policies named
    /// in `fail_closed` refuse while it is down, the others fall back to this process's own
    /// buckets. Starts the probe task, which ends when the returned value is dropped.
    pub fn start(
        store: Arc<dyn SharedBuckets>,
        timeout: Duration,
        retry: Duration,
        fail_closed: Vec<&'static str>,
    ) -> Arc<Self> {
        let (state, _) = watch::channel(true);
        let limits = Arc::new(Self {
            store,
            timeout,
            retry,
            fail_closed,
            up: AtomicBool::new(true),
            state,
        });
        metrics::gauge!("natterjack_rate_limit_store_up").set(1.0);
        tokio::spawn(probe(Arc::downgrade(&limits), limits.state.subscribe()));
        limits
    }

    /// Whether the store answered the last call or probe.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Sees every change of [`SharedLimits::is_up`] (the server records each in the audit
    /// trail).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.state.subscribe()
    }

    /// Whether `policy` refuses while the store is down.
    pub fn fails_closed(&self, policy: &str) -> bool {
        self.fail_closed.contains(&policy)
    }

    fn flip(&self, up: bool, why: &str) {
        if self.up.swap(up, Ordering::Relaxed) == up {
            return;
        }
        metrics::gauge!("natterjack_rate_limit_store_up").set(if up { 1.0 } else { 0.0 });
        metrics::counter!(
            "natterjack_rate_limit_store_changes_total",
            "to" => if up { "up" } else { "down" }
        )
        .increment(1);
        if up {
            tracing::warn!("rate-limit store answers again: budgets are shared again");
        } else {
            tracing::error!(
                error = why,
                "rate-limit store does not answer: policies fail open to this node's own budgets or closed"
            );
        }
        self.state.send_replace(up);
    }

    async fn decide(&self, op: Op, buckets: &[&dyn Bucket]) -> Result<(), Refusal> {
        if self.is_up() {
            let checks: Vec<SharedCheck> = buckets.iter().map(|b| b.shared()).collect();
            let answer = tokio::time::timeout(self.timeout, self.store.decide(op, &checks)).await;
            match answer {
                Ok(Ok(Answer::Allowed)) => return Ok(()),
                Ok(Ok(Answer::Refused { index, retry_after })) => {
                    return match buckets.get(index) {
                        Some(bucket) => Err(bucket.refusal(retry_after, Cause::Spent)),
                        None => {
                            self.flip(false, "the store named a bucket the decision does not have");
                            self.when_down(op, buckets)
                        }
                    };
                }
                Ok(Err(e)) => self.flip(false, &e),
                Err(_) => self.flip(false, "no answer within the timeout"),
            }
        }
        self.when_down(op, buckets)
    }

    /// A decision while the store is down: refused by the first policy that fails closed,
    /// else made in this process's own buckets. A give-back is made locally only.
    fn when_down(&self, op: Op, buckets: &[&dyn Bucket]) -> Result<(), Refusal> {
        if op != Op::GiveBack
            && let Some(closed) = buckets.iter().find(|b| self.fails_closed(b.policy()))
        {
            return Err(closed.refusal(self.retry, Cause::StoreDown));
        }
        local(op, buckets)
    }
}

/// While the store is down, asks it every `retry` whether it answers again; between
/// outages it waits for the next one. Ends when the limits are dropped.
async fn probe(limits: Weak<SharedLimits>, mut state: watch::Receiver<bool>) {
    loop {
        if state.wait_for(|up| !*up).await.is_err() {
            return;
        }
        loop {
            let Some(strong) = limits.upgrade() else {
                return;
            };
            if strong.is_up() {
                break;
            }
            let (store, timeout, retry) = (strong.store.clone(), strong.timeout, strong.retry);
            drop(strong);
            let answered = matches!(
                tokio::time::timeout(timeout, store.ping()).await,
                Ok(Ok(()))
            );
            if answered {
                if let Some(strong) = limits.upgrade() {
                    strong.flip(true, "");
                }
                break;
            }
            tokio::time::sleep(retry).await;
        }
    }
}
