//! The budgets of password guesses: one per (account, address), one per account shared by
//! every address that has not logged in as that account recently, and the memory of which
//! addresses have.
//!
//! A budget per (account, address) alone lets an attacker with many addresses guess
//! without bound: 200 addresses times 5 guesses found a password at guess 991. A budget
//! per account alone lets anyone lock the owner out by spending it. Both together, with an
//! exemption for addresses the owner has used, bound the guesses against an account per
//! hour whatever the number of addresses, while the owner, from an address that logged in
//! as them within `known_address_days`, keeps a budget of their own. The owner on a new
//! address during an attack waits for the shared budget to refill: that is the trade-off
//! (the OWASP account-lockout versus denial-of-service problem), stated in the
//! configuration reference.

use crate::clock::SharedClock;
use crate::rate::gcra::{Limiter, Quota, Refusal};
use crate::rate::shared::{At, Bucket, Op, SharedLimits, decide};
use crate::rate::{account_key as account, limit_key};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which budgets a guess taken by [`LoginBudgets::take`] drew from, so that giving it back
/// returns exactly those tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a taken guess is given back unless the password was wrong"]
pub struct Guess {
    from_account: bool,
}

/// The budget name refused bearer tokens count under: not a valid username.
const BEARER: &str = "@bearer-token";

/// The guess budgets of one process.
pub struct LoginBudgets {
    per_address: Limiter<(String, IpAddr)>,
    per_account: Limiter<String>,
    known: Mutex<HashMap<(String, IpAddr), Instant>>,
    known_for: Duration,
    max_keys: usize,
    clock: SharedClock,
    shared: Option<Arc<SharedLimits>>,
}

impl LoginBudgets {
    /// Budgets with these quotas; an address stays known for an account `known_for` after
    /// its last successful login; at most `max_keys` keys per table.
    pub fn new(
        per_address: Quota,
        per_account: Quota,
        known_for: Duration,
        max_keys: usize,
    ) -> Self {
        Self {
            per_address: Limiter::new("failed-logins", per_address, max_keys),
            per_account: Limiter::new("account-guesses", per_account, max_keys),
            known: Mutex::new(HashMap::new()),
            known_for,
            max_keys: max_keys.max(1),
            clock: crate::clock::system(),
            shared: None,
        }
    }

    /// The same budgets, kept in `shared` so that every node sharing it counts the same
    /// guesses (the memory of known addresses stays with each node).
    #[must_use]
    pub fn with_shared(mut self, shared: Arc<SharedLimits>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The same budgets, reading time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.per_address = self.per_address.with_clock(clock.clone());
        self.per_account = self.per_account.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    fn age(&self, at: Instant) -> Duration {
        self.clock.now().saturating_duration_since(at)
    }

    /// Whether `ip` logged in as `username` within `known_for`.
    pub fn is_known(&self, username: &str, ip: IpAddr) -> bool {
        let key = (account(username), limit_key(ip));
        self.known.lock().is_ok_and(|known| {
            known
                .get(&key)
                .is_some_and(|at| self.age(*at) < self.known_for)
        })
    }

    /// Whether another bearer token may be tried from `ip` now (counts nothing). Refused
    /// tokens are counted per address under a name no account can have, so they share no
    /// budget with any password account, and a flood of bad tokens from elsewhere does not
    /// lock anyone out.
    pub async fn token_allowed(&self, ip: IpAddr) -> Result<(), Refusal> {
        let bucket = At(&self.per_address, (BEARER.to_owned(), limit_key(ip)));
        decide(self.shared.as_deref(), Op::Peek, &[&bucket]).await
    }

    /// Counts a refused bearer token from `ip`. Checking a token is cheap, so a guess is
    /// counted after the check, not before it.
    pub async fn token_refused(&self, ip: IpAddr) {
        let bucket = At(&self.per_address, (BEARER.to_owned(), limit_key(ip)));
        let _ = decide(self.shared.as_deref(), Op::Take, &[&bucket]).await;
    }

    /// Whether `username` may be tried from `ip` now (counts nothing).
    pub async fn allowed(&self, username: &str, ip: IpAddr) -> Result<(), Refusal> {
        self.guess(Op::Peek, username, ip).await.map(drop)
    }

    /// Takes one guess before the password is hashed: from the (account, address) budget,
    /// and, for an address the account has not logged in from, from the account's shared
    /// budget too. Refused when either is spent; nothing is taken then.
    pub async fn take(&self, username: &str, ip: IpAddr) -> Result<Guess, Refusal> {
        self.guess(Op::Take, username, ip).await
    }

    /// Returns a guess that was not wrong: the password was right, or it was never checked.
    pub async fn give_back(&self, username: &str, ip: IpAddr, guess: Guess) {
        let name = account(username);
        let pair = At(&self.per_address, (name.clone(), limit_key(ip)));
        let whole = At(&self.per_account, name);
        let buckets: &[&dyn Bucket] = if guess.from_account {
            &[&pair, &whole]
        } else {
            &[&pair]
        };
        let _ = decide(self.shared.as_deref(), Op::GiveBack, buckets).await;
    }

    /// `op` on the budgets a guess at `username` from `ip` draws from: the pair's, and the
    /// account's unless the address is known to it.
    async fn guess(&self, op: Op, username: &str, ip: IpAddr) -> Result<Guess, Refusal> {
        let name = account(username);
        let from_account = !self.is_known(username, ip);
        let pair = At(&self.per_address, (name.clone(), limit_key(ip)));
        let whole = At(&self.per_account, name);
        let buckets: &[&dyn Bucket] = if from_account {
            &[&pair, &whole]
        } else {
            &[&pair]
        };
        decide(self.shared.as_deref(), op, buckets).await?;
        Ok(Guess { from_account })
    }

    /// Remembers that `ip` logged in as `username`: from now on it keeps a budget of its
    /// own when the account's shared budget is spent. An entry refreshed within the last
    /// minute is left as it is, so a busy client's every request does not rewrite it.
    pub fn succeeded(&self, username: &str, ip: IpAddr) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let key = (account(username), limit_key(ip));
        if let Some(at) = known.get_mut(&key) {
            if self.age(*at) >= Duration::from_secs(60) {
                *at = self.clock.now();
            }
            return;
        }
        if known.len() >= self.max_keys {
            let known_for = self.known_for;
            known.retain(|_, at| self.age(*at) < known_for);
            if known.len() >= self.max_keys {
                // Full of recent logins: this one is not remembered, which only means it
                // shares the account's budget next time, as before its first login.
                return;
            }
        }
        known.insert(key, self.clock.now());
    }

    /// Drops refilled buckets and forgotten addresses; decisions do not change.
    pub fn evict_expired(&self) {
        self.per_address.evict_expired();
        self.per_account.evict_expired();
        if let Ok(mut known) = self.known.lock() {
            let known_for = self.known_for;
            known.retain(|_, at| self.age(*at) < known_for);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn budgets(per_account: u32) -> LoginBudgets {
        LoginBudgets::new(
            Quota {
                burst: 5,
                per_second: 1.0 / 60.0,
            },
            Quota {
                burst: per_account,
                per_second: 1.0 / 3600.0,
            },
            Duration::from_secs(3600),
            1000,
        )
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
    }

    #[tokio::test]
    async fn guesses_from_many_addresses_share_one_budget_per_account() {
        let b = budgets(20);
        let mut taken = 0;
        for n in 1..=200u8 {
            for _ in 0..5 {
                if b.take("victim", ip(n)).await.is_ok() {
                    taken += 1;
                }
            }
        }
        assert_eq!(taken, 20, "200 addresses × 5 guesses got through");
        let refusal = b.allowed("VICTIM", ip(201)).await.unwrap_err();
        assert_eq!(refusal.policy, "account-guesses");
        assert!(b.allowed("someone-else", ip(201)).await.is_ok());
    }

    #[tokio::test]
    async fn an_address_that_logged_in_keeps_its_own_budget_while_the_account_budget_is_spent() {
        let b = budgets(3);
        b.succeeded("victim", ip(9));
        for n in 1..=10u8 {
            let _ = b.take("victim", ip(n)).await;
        }
        assert!(
            b.allowed("victim", ip(11)).await.is_err(),
            "a new address waits"
        );
        assert!(
            b.allowed("Victim", ip(9)).await.is_ok(),
            "the owner's address does not"
        );
        let guess = b.take("victim", ip(9)).await.unwrap();
        b.give_back("victim", ip(9), guess).await;
        // Its own budget still counts its own wrong guesses.
        for _ in 0..5 {
            let _ = b.take("victim", ip(9)).await;
        }
        assert_eq!(
            b.allowed("victim", ip(9)).await.unwrap_err().policy,
            "failed-logins"
        );
    }

    #[tokio::test]
    async fn a_refused_account_guess_takes_nothing_from_the_address_budget() {
        let b = budgets(1);
        let _ = b.take("victim", ip(1)).await;
        for _ in 0..10 {
            assert!(b.take("victim", ip(2)).await.is_err());
        }
        b.succeeded("victim", ip(2));
        for _ in 0..5 {
            assert!(
                b.take("victim", ip(2)).await.is_ok(),
                "the address budget is untouched"
            );
        }
    }

    #[tokio::test]
    async fn a_guess_given_back_returns_the_tokens_it_took() {
        let b = budgets(1);
        let guess = b.take("victim", ip(1)).await.unwrap();
        assert!(b.allowed("victim", ip(2)).await.is_err());
        b.give_back("victim", ip(1), guess).await;
        assert!(b.allowed("victim", ip(2)).await.is_ok());
    }

    #[tokio::test]
    async fn ipv6_addresses_are_known_by_their_slash_64() {
        let b = budgets(1);
        b.succeeded("victim", "2001:db8::1".parse().unwrap());
        assert!(b.is_known("victim", "2001:db8::2".parse().unwrap()));
        assert!(!b.is_known("victim", "2001:db8:0:1::1".parse().unwrap()));
    }
}
