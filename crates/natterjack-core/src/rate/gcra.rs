//! The generic cell rate algorithm (GCRA): a token bucket expressed as one timestamp per key.
//!
//! A quota of `burst` requests refilling at `per_second` becomes an emission interval
//! `T = 1/per_second` and a tolerance `τ = T·(burst−1)`. Each key stores its theoretical
//! arrival time (TAT). A request at `now` is allowed when `max(TAT, now) − now ≤ τ`, and then
//! moves TAT forward by `T`. A key whose TAT lies in the past is indistinguishable from a key
//! never seen, so expired keys can be dropped at any time without changing any decision: that
//! is what keeps the key table bounded.

use crate::clock::{Clock, SharedClock, SystemClock};
use serde::Deserialize;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A quota: `burst` requests at once, refilling at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests allowed back to back.
    pub burst: u32,
    /// Sustained requests per second (may be fractional: 0.1 is one every ten seconds).
    pub per_second: f64,
}

impl Quota {
    /// Refuses quotas that would block everything or never refill.
    pub fn check(&self, name: &str) -> Result<(), String> {
        if self.burst == 0 || !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(format!(
                "rate_limit.{name}: burst must be at least 1 and per_second above 0"
            ));
        }
        Ok(())
    }

    fn interval_nanos(&self) -> u64 {
        // At least one nanosecond, at most about 584 years: any sane quota fits.
        (1e9 / self.per_second).clamp(1.0, u64::MAX as f64 / 4.0) as u64
    }

    /// Seconds to refill the whole burst: the window `w` of the `RateLimit-Policy` header.
    pub fn window_secs(&self) -> u64 {
        ((f64::from(self.burst) / self.per_second).ceil() as u64).max(1)
    }
}

/// The outcome of one decision, with what the `RateLimit` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; `remaining` more requests would be allowed right now.
    Allowed {
        /// Requests left in the burst.
        remaining: u32,
    },
    /// Refused; the earliest time another request would be allowed.
    Refused {
        /// Wait this long before retrying.
        retry_after: Duration,
    },
}

/// What a refused request reports: which policy, its quota, when to retry, and whether
/// the budget was spent or could not be read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusal {
    /// The policy's name, as in the `RateLimit-Policy` header.
    pub policy: &'static str,
    /// Its quota.
    pub quota: Quota,
    /// When a retry may succeed.
    pub retry_after: Duration,
    /// Why: the client spent the budget (429), or the budget lives in a shared store that
    /// does not answer and the policy fails closed (503: the client did nothing wrong).
    pub cause: Cause,
}

/// Why a [`Refusal`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The budget is spent.
    Spent,
    /// The shared store holding the budget does not answer, and the policy fails closed.
    StoreDown,
}

impl Refusal {
    /// `Retry-After` in whole seconds, rounded up so that waiting it is always enough.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// A keyed GCRA limiter with a bounded key table.
pub struct Limiter<K> {
    name: &'static str,
    quota: Quota,
    interval: u64,
    tolerance: u64,
    max_keys: usize,
    clock: SharedClock,
    epoch: Instant,
    state: Mutex<HashMap<K, u64>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter named `name` (shown to clients in `RateLimit-Policy`) holding at most
    /// `max_keys` keys.
    pub fn new(name: &'static str, quota: Quota, max_keys: usize) -> Self {
        let interval = quota.interval_nanos();
        Self {
            name,
            quota,
            interval,
            tolerance: interval.saturating_mul(u64::from(quota.burst.saturating_sub(1))),
            max_keys: max_keys.max(1),
            clock: crate::clock::system(),
            epoch: SystemClock.now(),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// The same limiter, reading time from `clock` (a test clock moves refills along).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.epoch = clock.now();
        self.clock = clock;
        self
    }

    fn now(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The policy name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The emission interval `T` in nanoseconds: what a shared store needs, besides the
    /// tolerance, to make this limiter's decisions for several processes.
    pub fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// The tolerance `τ` in nanoseconds.
    pub fn tolerance_nanos(&self) -> u64 {
        self.tolerance
    }

    fn decide(&self, tat: Option<u64>, now: u64) -> (Decision, u64) {
        let tat = tat.unwrap_or(now).max(now);
        if tat - now > self.tolerance {
            let wait = tat - now - self.tolerance;
            return (
                Decision::Refused {
                    retry_after: Duration::from_nanos(wait),
                },
                tat,
            );
        }
        let new_tat = tat + self.interval;
        let used = new_tat - now;
        let free = (self.tolerance + self.interval).saturating_sub(used);
        let remaining = u32::try_from(free / self.interval).unwrap_or(u32::MAX);
        (Decision::Allowed { remaining }, new_tat)
    }

    /// Decides for `key` at time `now` (nanoseconds since the limiter's epoch) and, when
    /// allowed and `consume` is set, records the request.
    pub fn check_at(&self, key: &K, now: u64, consume: bool) -> Decision {
        let Ok(mut state) = self.state.lock() else {
            // A poisoned lock means a panic while holding it; fail closed.
            return Decision::Refused {
                retry_after: Duration::from_secs(1),
            };
        };
        let (decision, new_tat) = self.decide(state.get(key).copied(), now);
        if consume && matches!(decision, Decision::Allowed { .. }) {
            if !state.contains_key(key) && state.len() >= self.max_keys {
                state.retain(|_, tat| *tat > now);
                if state.len() >= self.max_keys {
                    tracing::warn!(
                        policy = self.name,
                        "rate-limit key table full; refusing new clients"
                    );
                    return Decision::Refused {
                        retry_after: Duration::from_secs(1),
                    };
                }
            }
            state.insert(key.clone(), new_tat);
        }
        decision
    }

    /// Decides and records one request for `key` now.
    pub fn check(&self, key: &K) -> Result<u32, Refusal> {
        self.outcome(self.check_at(key, self.now(), true))
    }

    /// Whether a request for `key` would be allowed now, without recording one.
    pub fn peek(&self, key: &K) -> Result<u32, Refusal> {
        self.outcome(self.check_at(key, self.now(), false))
    }

    fn outcome(&self, decision: Decision) -> Result<u32, Refusal> {
        match decision {
            Decision::Allowed { remaining } => Ok(remaining),
            Decision::Refused { retry_after } => Err(Refusal {
                policy: self.name,
                quota: self.quota,
                retry_after,
                cause: Cause::Spent,
            }),
        }
    }

    /// Undoes one request recorded for `key` (a token taken before the outcome was known,
    /// which turned out not to count).
    pub fn give_back(&self, key: &K) {
        if let Ok(mut state) = self.state.lock()
            && let Some(tat) = state.get_mut(key)
        {
            *tat = tat.saturating_sub(self.interval);
        }
    }

    /// Drops keys whose buckets are full again; decisions are unchanged by it.
    pub fn evict_expired(&self) {
        let now = self.now();
        if let Ok(mut state) = self.state.lock() {
            state.retain(|_, tat| *tat > now);
        }
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn limiter(burst: u32, per_second: f64, max_keys: usize) -> Limiter<u8> {
        Limiter::new("test", Quota { burst, per_second }, max_keys)
    }

    #[test]
    fn a_spent_bucket_refills_as_the_limiters_clock_moves_without_anyone_sleeping() {
        let clock = crate::clock::ManualClock::new();
        let l = limiter(2, 1.0, 10).with_clock(clock.clone());
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_err());
        clock.advance(Duration::from_millis(999));
        assert!(l.check(&1).is_err());
        clock.advance(Duration::from_millis(1));
        assert!(l.check(&1).is_ok());
    }

    #[test]
    fn a_burst_is_allowed_then_requests_are_refused_until_the_bucket_refills() {
        let l = limiter(3, 1.0, 10);
        let remaining: Vec<Decision> = (0..4).map(|_| l.check_at(&1, 0, true)).collect();
        assert_eq!(
            remaining,
            vec![
                Decision::Allowed { remaining: 2 },
                Decision::Allowed { remaining: 1 },
                Decision::Allowed { remaining: 0 },
                Decision::Refused {
                    retry_after: Duration::from_secs(1)
                },
            ]
        );
        // Half a second later it is still refused, with half a second to wait.
        assert_eq!(
            l.check_at(&1, SECOND / 2, true),
            Decision::Refused {
                retry_after: Duration::from_millis(500)
            }
        );
        // After the advertised wait, one request goes through.
        assert_eq!(
            l.check_at(&1, SECOND, true),
            Decision::Allowed { remaining: 0 }
        );
        // Three seconds of silence refill the whole burst.
        assert_eq!(
            l.check_at(&1, 4 * SECOND, true),
            Decision::Allowed { remaining: 2 }
        );
    }

    #[test]
    fn keys_are_limited_independently() {
        let l = limiter(1, 1.0, 10);
        assert!(matches!(l.check_at(&1, 0, true), Decision::Allowed { .. }));
        assert!(matches!(l.check_at(&1, 0, true), Decision::Refused { .. }));
        assert!(matches!(l.check_at(&2, 0, true), Decision::Allowed { .. }));
    }

    #[test]
    fn a_token_given_back_can_be_taken_again_and_only_once() {
        let l = limiter(2, 1.0 / 60.0, 10);
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_err(), "the burst of two is spent");
        l.give_back(&1);
        assert!(l.check(&1).is_ok(), "the returned token is there again");
        assert!(l.check(&1).is_err(), "and it was only one");
        // Giving back what was never taken changes nothing for other keys.
        l.give_back(&2);
        assert!(l.check(&2).is_ok());
        assert!(l.check(&2).is_ok());
        assert!(l.check(&2).is_err());
    }

    #[test]
    fn peeking_never_consumes() {
        let l = limiter(1, 1.0, 10);
        for _ in 0..5 {
            assert!(matches!(l.check_at(&1, 0, false), Decision::Allowed { .. }));
        }
        assert!(matches!(l.check_at(&1, 0, true), Decision::Allowed { .. }));
        assert!(matches!(l.check_at(&1, 0, false), Decision::Refused { .. }));
    }

    #[test]
    fn the_key_table_is_bounded_and_full_tables_refuse_new_keys_until_old_ones_expire() {
        let l = limiter(1, 1.0, 2);
        assert!(matches!(l.check_at(&1, 0, true), Decision::Allowed { .. }));
        assert!(matches!(l.check_at(&2, 0, true), Decision::Allowed { .. }));
        assert!(matches!(l.check_at(&3, 0, true), Decision::Refused { .. }));
        assert_eq!(l.len(), 2);
        // Once the first keys' buckets are full again they are dropped to make room.
        assert!(matches!(
            l.check_at(&3, 2 * SECOND, true),
            Decision::Allowed { .. }
        ));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let r = Refusal {
            policy: "p",
            quota: Quota {
                burst: 1,
                per_second: 1.0,
            },
            retry_after: Duration::from_millis(1001),
            cause: Cause::Spent,
        };
        assert_eq!(r.retry_after_secs(), 2);
        let r = Refusal {
            retry_after: Duration::from_millis(1),
            ..r
        };
        assert_eq!(r.retry_after_secs(), 1);
    }

    #[test]
    fn quotas_that_block_everything_are_refused() {
        assert!(
            Quota {
                burst: 0,
                per_second: 1.0
            }
            .check("x")
            .is_err()
        );
        assert!(
            Quota {
                burst: 1,
                per_second: 0.0
            }
            .check("x")
            .is_err()
        );
        assert!(
            Quota {
                burst: 1,
                per_second: f64::NAN
            }
            .check("x")
            .is_err()
        );
        assert_eq!(
            Quota {
                burst: 10,
                per_second: 0.5
            }
            .window_secs(),
            20
        );
    }
}
