//! Admission of connections: a global cap, a lower cap per client address, and, at the
//! global cap, eviction of the idlest connection.
//!
//! Without a per-client cap, one address opening idle connections fills the global cap and
//! every later client is turned away. Without eviction, many addresses together do the
//! same. With both, idle connections are what gives way: a client being served keeps its
//! connection, and a new client waits at most [`ADMISSION_WAIT`] for an idle one to close.

use super::TransportLimits;
use super::activity::Activity;
use ipnet::IpNet;
use natterjack_core::clock::{Clock, SystemClock};
use natterjack_core::rate::limit_key;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// How long a connection that arrives at the global cap waits for a slot (an evicted idle
/// connection closing, or any other) before it is closed.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(2);

/// Connections that may wait for a slot at once; beyond, a new one is closed at once, so
/// waiting cannot itself become a way to hold sockets.
const MAX_WAITING: usize = 64;

/// Refused and evicted connections are logged at most once per interval, with counts.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its client address already holds `max_connections_per_client` connections.
    PerClient,
    /// The listener is at `max_connections` and no slot freed in time.
    Full,
    /// The table cannot be read (a poisoned lock): nothing is admitted.
    Closed,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::PerClient => "per_client",
            Refused::Full => "full",
            Refused::Closed => "closed",
        }
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    open: HashMap<u64, Arc<Activity>>,
    per_client: HashMap<IpAddr, usize>,
    closed: bool,
    /// Connections accepted whose admission has not been decided yet (see [`Arrival`]).
    arriving: usize,
}

/// Counts since the last log line: refusals are logged at most once per interval, so a
/// flood of connections cannot flood the log.
#[derive(Default)]
struct RefusalLog {
    per_client: u64,
    full: u64,
    evicted: u64,
    latest: Option<IpAddr>,
    last_logged: Option<Instant>,
}

impl RefusalLog {
    fn pending(&self) -> bool {
        self.per_client + self.full + self.evicted > 0
    }

    /// Logs and resets the counts when the interval since the last line has passed.
    fn maybe_log(&mut self, listener: &'static str, now: Instant) {
        if !self.pending()
            || self
                .last_logged
                .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            listener,
            refused_per_client = self.per_client,
            refused_full = self.full,
            evicted_idle = self.evicted,
            latest_client = %self.latest.map(|ip| ip.to_string()).unwrap_or_default(),
            "connections refused or evicted (logged at most every {} s)",
            REFUSAL_LOG_INTERVAL.as_secs()
        );
        *self = RefusalLog {
            last_logged: Some(now),
            ..RefusalLog::default()
        };
    }
}

/// The open connections of one listener.
pub struct ConnectionTable {
    listener: &'static str,
    max: usize,
    per_client: usize,
    exempt: Vec<IpNet>,
    state: Mutex<State>,
    freed: Notify,
    waiting: Semaphore,
    log: Mutex<RefusalLog>,
}

/// One admitted connection's place in the table, given back when dropped.
pub struct Slot {
    table: Arc<ConnectionTable>,
    id: u64,
    activity: Arc<Activity>,
}

impl Slot {
    /// The connection's shared state.
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.release(self.id, self.activity.client());
    }
}

/// A connection the listener has accepted and whose admission is still to be decided,
/// counted until dropped, so that [`ConnectionTable::drained`] waits for it: at shutdown,
/// a connection accepted just before the listener closed is served, not lost between the
/// accept loop and the table.
pub struct Arrival(Arc<ConnectionTable>);

impl Drop for Arrival {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.arriving = state.arriving.saturating_sub(1);
        }
        self.0.freed.notify_waiters();
    }
}

/// What one attempt at admission found.
enum Attempt {
    Admitted(Slot),
    Refused(Refused),
    Wait,
}

impl ConnectionTable {
    /// The table of the listener `listener` (a metrics label), with the caps of `limits`.
    pub fn new(listener: &'static str, limits: &TransportLimits) -> Arc<Self> {
        Arc::new(Self {
            listener,
            max: limits.max_connections.max(1),
            per_client: limits.max_connections_per_client.max(1),
            exempt: limits.exempt.clone(),
            state: Mutex::new(State::default()),
            freed: Notify::new(),
            waiting: Semaphore::new(MAX_WAITING),
            log: Mutex::new(RefusalLog::default()),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().map_or(0, |s| s.open.len())
    }

    /// Requests in flight on the open connections now (what a deadline would cut).
    pub fn in_flight(&self) -> usize {
        self.state
            .lock()
            .map_or(0, |s| s.open.values().map(|a| a.in_flight()).sum())
    }

    /// Counts a connection just accepted until its admission is decided; call it in the
    /// accept loop, before admission runs on a task of its own.
    pub fn arrival(self: &Arc<Self>) -> Arrival {
        if let Ok(mut state) = self.state.lock() {
            state.arriving += 1;
        }
        Arrival(self.clone())
    }

    /// Admits a connection from `peer`, or says why not. At the global cap it evicts the
    /// idlest connection and waits up to [`ADMISSION_WAIT`] for a slot.
    pub async fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let client = limit_key(peer);
        let exempt = super::exempted(&self.exempt, peer);
        let deadline = tokio::time::Instant::now() + ADMISSION_WAIT;
        let mut waiting = None;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.try_admit(client, exempt) {
                Attempt::Admitted(slot) => return Ok(slot),
                Attempt::Refused(why) => return Err(self.refuse(why, client)),
                Attempt::Wait => {}
            }
            if waiting.is_none() {
                match self.waiting.try_acquire() {
                    Ok(permit) => waiting = Some(permit),
                    Err(_) => return Err(self.refuse(Refused::Full, client)),
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(self.refuse(Refused::Full, client));
            }
        }
    }

    fn try_admit(self: &Arc<Self>, client: IpAddr, exempt: bool) -> Attempt {
        let Ok(mut state) = self.state.lock() else {
            return Attempt::Refused(Refused::Closed);
        };
        let held = state.per_client.get(&client).copied().unwrap_or(0);
        if !exempt && held >= self.per_client {
            return Attempt::Refused(Refused::PerClient);
        }
        if state.open.len() < self.max {
            let id = state.next_id;
            state.next_id += 1;
            let activity = Arc::new(Activity::new(client));
            if state.closed {
                // Accepted before the listener closed: asked to close from the start, which
                // still lets it be served its first request (see `listener::Shared`).
                activity.close();
            }
            state.open.insert(id, activity.clone());
            *state.per_client.entry(client).or_insert(0) += 1;
            crate::metrics::connections_open(self.listener, state.open.len());
            return Attempt::Admitted(Slot {
                table: self.clone(),
                id,
                activity,
            });
        }
        // At the cap: the idlest connection not already on its way out gives way.
        let idlest = state
            .open
            .values()
            .filter(|a| !a.is_closing())
            .filter_map(|a| a.idle_since().map(|since| (since, a)))
            .min_by_key(|(since, _)| *since)
            .map(|(_, a)| a.clone());
        drop(state);
        if let Some(victim) = idlest {
            victim.close();
            crate::metrics::connection_evicted(self.listener);
            if let Ok(mut log) = self.log.lock() {
                log.evicted += 1;
                log.maybe_log(self.listener, SystemClock.now());
            }
        }
        Attempt::Wait
    }

    fn refuse(&self, why: Refused, client: IpAddr) -> Refused {
        crate::metrics::connection_refused(self.listener, why.label());
        if let Ok(mut log) = self.log.lock() {
            match why {
                Refused::PerClient => log.per_client += 1,
                Refused::Full => log.full += 1,
                Refused::Closed => return why,
            }
            log.latest = Some(client);
            log.maybe_log(self.listener, SystemClock.now());
        }
        why
    }

    fn release(&self, id: u64, client: IpAddr) {
        if let Ok(mut state) = self.state.lock() {
            state.open.remove(&id);
            if let Some(n) = state.per_client.get_mut(&client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.per_client.remove(&client);
                }
            }
            crate::metrics::connections_open(self.listener, state.open.len());
        }
        self.freed.notify_waiters();
    }

    /// Asks every open connection to close, and every one admitted from now on (the last
    /// accepted before the listener closed) from the start (at shutdown).
    pub fn close_all(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
            for activity in state.open.values() {
                activity.close();
            }
        }
        self.freed.notify_waiters();
    }

    /// Resolves once no connection is open and none is waiting for admission.
    pub async fn drained(&self) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let left = self.state.lock().map_or(0, |s| s.open.len() + s.arriving);
            if left == 0 {
                return;
            }
            freed.await;
        }
    }

    /// Logs the counts left over once [`REFUSAL_LOG_INTERVAL`] has passed since the last
    /// line (checked every second), for as long as the table exists.
    pub fn spawn_log_flush(self: &Arc<Self>) {
        let table: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(table) = table.upgrade() else { break };
                if let Ok(mut log) = table.log.lock() {
                    log.maybe_log(table.listener, SystemClock.now());
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn table(max: usize, per_client: usize) -> Arc<ConnectionTable> {
        ConnectionTable::new(
            "test",
            &TransportLimits {
                max_connections: max,
                max_connections_per_client: per_client,
                exempt: vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "2001:db8::7/128".parse().unwrap(),
                ],
                ..TransportLimits::default()
            },
        )
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[tokio::test]
    async fn one_address_cannot_hold_more_than_its_share_but_others_still_get_in() {
        let t = table(10, 2);
        let a1 = t.admit(ip(1)).await.unwrap();
        let _a2 = t.admit(ip(1)).await.unwrap();
        assert_eq!(t.admit(ip(1)).await.err(), Some(Refused::PerClient));
        let _b = t.admit(ip(2)).await.unwrap();
        drop(a1);
        assert!(
            t.admit(ip(1)).await.is_ok(),
            "a freed slot is the client's again"
        );
    }

    #[tokio::test]
    async fn ipv6_clients_are_capped_by_their_slash_64() {
        let t = table(10, 1);
        let _a = t.admit("2001:db8::1".parse().unwrap()).await.unwrap();
        assert_eq!(
            t.admit("2001:db8::ffff".parse().unwrap()).await.err(),
            Some(Refused::PerClient)
        );
        assert!(t.admit("2001:db8:0:1::1".parse().unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn trusted_proxies_are_exempt_from_the_per_client_cap() {
        let t = table(10, 1);
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(t.admit("10.1.2.3".parse().unwrap()).await.unwrap());
            held.push(t.admit("2001:db8::7".parse().unwrap()).await.unwrap());
        }
        assert_eq!(t.open(), 10);
        // Another address of the IPv6 proxy's /64 is not the proxy.
        assert!(t.admit("2001:db8::8".parse().unwrap()).await.is_err());
    }

    #[tokio::test]
    async fn at_the_cap_the_idlest_connection_is_evicted_and_a_busy_one_never() {
        let t = table(3, 3);
        let busy_slot = t.admit(ip(1)).await.unwrap();
        let _busy = busy_slot.activity().begin();
        let oldest_idle = t.admit(ip(2)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let newer_idle = t.admit(ip(3)).await.unwrap();
        // The newcomer evicts the idlest; the table admits it once that one is gone.
        let evicted = oldest_idle.activity().clone();
        let newcomer = tokio::spawn({
            let t = t.clone();
            async move { t.admit(ip(4)).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            evicted.is_closing(),
            "the idlest connection was asked to close"
        );
        assert!(!busy_slot.activity().is_closing());
        assert!(!newer_idle.activity().is_closing());
        drop(oldest_idle);
        assert_eq!(newcomer.await.unwrap(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn with_every_connection_busy_a_newcomer_waits_briefly_then_is_refused() {
        let t = table(1, 1);
        let slot = t.admit(ip(1)).await.unwrap();
        let _busy = slot.activity().begin();
        let started = tokio::time::Instant::now();
        assert_eq!(t.admit(ip(2)).await.err(), Some(Refused::Full));
        assert!(started.elapsed() >= ADMISSION_WAIT);
        assert!(!slot.activity().is_closing());
    }

    #[tokio::test]
    async fn after_close_all_late_arrivals_are_asked_to_close_and_drained_waits_for_them() {
        let t = table(4, 4);
        let slot = t.admit(ip(1)).await.unwrap();
        // Accepted before the listener closed, admitted after close_all.
        let arrival = t.arrival();
        t.close_all();
        assert!(slot.activity().is_closing());
        let drained = tokio::spawn({
            let t = t.clone();
            async move { t.drained().await }
        });
        drop(slot);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!drained.is_finished(), "an arrival is still to be admitted");
        let late = t.admit(ip(2)).await.unwrap();
        drop(arrival);
        assert!(late.activity().is_closing());
        assert!(!drained.is_finished(), "the late arrival is open");
        drop(late);
        tokio::time::timeout(Duration::from_secs(1), drained)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn refusals_are_logged_at_most_once_per_interval_with_their_count() {
        let mut log = RefusalLog::default();
        let start = SystemClock.now();
        log.per_client = 1;
        log.maybe_log("test", start);
        assert!(!log.pending(), "the first refusal is logged at once");
        for _ in 0..1000 {
            log.per_client += 1;
            log.maybe_log("test", start + Duration::from_secs(1));
        }
        assert_eq!(
            log.per_client, 1000,
            "counted, not logged, within the interval"
        );
        log.maybe_log("test", start + REFUSAL_LOG_INTERVAL);
        assert!(!log.pending(), "logged once the interval has passed");
    }
}
