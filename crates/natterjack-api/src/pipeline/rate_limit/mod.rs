//! Rate limiting: the first control of the pipeline.
//!
//! It runs before anything parses credentials, reads a body, or hashes a password, so a
//! refused request costs one map lookup per policy. Policies (all GCRA, see
//! [`natterjack_core::rate::gcra`]):
//!
//! | policy | key | applies to |
//! | --- | --- | --- |
//! | `per-ip` | client address (IPv6 by /64) | every request |
//! | `credentials` | client address | requests that carry an `Authorization` header |
//! | `registration` | client address | `POST /users` |
//! | `global` | none | every request that passed the keyed policies |
//! | `per-principal` | user | every authenticated request, after authentication |
//! | `failed-logins` | (username, client address) | logins, counted on failure only |
//! | `account-guesses` | username | logins from addresses that have not logged in as that user recently, counted on failure only |
//!
//! The two login policies ([`natterjack_core::auth::LoginBudgets`], counted by
//! authentication in the core) bound guessing against one account: per address,
//! and per account across every address, so spreading guesses over many addresses does not
//! multiply them. Addresses that logged in as the account within `known_address_days` keep
//! a budget of their own, so the owner is not locked out by an attack on their account.

pub mod client_ip;

use ipnet::IpNet;
use natterjack_core::auth::LoginBudgets;
use natterjack_core::clock::SharedClock;
use natterjack_core::domain::UserId;
use natterjack_core::rate::gcra::{Limiter, Quota, Refusal};
use natterjack_core::rate::limit_key;
use natterjack_core::rate::shared::{At, Op, SharedLimits, decide};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The path of self-registration, which has a stricter policy of its own.
pub const REGISTRATION_PATH: &str = "/users";

/// `[rate_limit]` configuration. Overriding a quota takes both of its fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Switches every policy off (for benchmarks of the other controls). Default true.
    pub enabled: bool,
    /// Proxies whose `X-Forwarded-For` is believed, as CIDR blocks. Default none.
    pub trusted_proxies: Vec<IpNet>,
    /// Keys held per policy; when full, new clients are refused until old buckets refill.
    pub max_keys: usize,
    /// Every request, per client address.
    pub per_ip: Quota,
    /// Requests carrying credentials, per client address.
    pub credentials: Quota,
    /// Account creation, per client address.
    pub registration: Quota,
    /// All clients together.
    pub global: Quota,
    /// Every authenticated request, per user.
    pub per_principal: Quota,
    /// Failed logins per (username, client address).
    pub failed_logins: Quota,
    /// Failed logins per username, shared by every address that has not logged in as that
    /// user within `known_address_days`.
    pub account_guesses: Quota,
    /// How long, in days, an address that logged in as a user keeps its own budget of
    /// guesses for that user. Default 30.
    pub known_address_days: u32,
    /// A Redis server holding every budget, so that several nodes behind one load balancer
    /// enforce one quota: `redis://HOST:PORT/DB`, or `rediss://` for TLS, with
    /// `USER:PASSWORD@` for AUTH. Default none: each process keeps its own budgets.
    pub redis_url: Option<SecretString>,
    /// CA certificates (PEM) trusted for `rediss://`, in place of the system's roots.
    pub redis_ca_file: Option<PathBuf>,
    /// What every key this server writes to Redis starts with. Default `natterjack:rl:`.
    pub redis_key_prefix: String,
    /// Longest wait for Redis's answer, in milliseconds, before it counts as down. Default 100.
    pub redis_timeout_ms: u64,
    /// How often Redis is asked whether it answers again while it is down, in
    /// milliseconds. Default 1000.
    pub redis_retry_ms: u64,
    /// The policies (as named in this table) that refuse requests, with 503, while Redis
    /// is down; the others fall back to this process's own budgets. Default
    /// `failed_logins` and `credentials`: a login budget kept per node would multiply the
    /// guesses an attacker gets by the number of nodes. `account_guesses` is always decided
    /// together with `failed_logins`, so a login is refused while either fails closed.
    pub fail_closed: Vec<String>,
}

/// The names `fail_closed` takes, and the policies they stand for.
const POLICY_NAMES: [(&str, &str); 7] = [
    ("per_ip", "per-ip"),
    ("credentials", "credentials"),
    ("registration", "registration"),
    ("global", "global"),
    ("per_principal", "per-principal"),
    ("failed_logins", "failed-logins"),
    ("account_guesses", "account-guesses"),
];

impl RateLimitConfig {
    /// The policies of `fail_closed`, refusing a name that is not a policy.
    pub fn fail_closed_policies(&self) -> Result<Vec<&'static str>, String> {
        self.fail_closed
            .iter()
            .map(|name| {
                POLICY_NAMES
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, policy)| *policy)
                    .ok_or_else(|| {
                        format!(
                            "rate_limit.fail_closed: unknown policy {name:?} (known: {})",
                            POLICY_NAMES.map(|(key, _)| key).join(", ")
                        )
                    })
            })
            .collect()
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            trusted_proxies: Vec::new(),
            max_keys: 100_000,
            per_ip: Quota {
                burst: 100,
                per_second: 50.0,
            },
            credentials: Quota {
                burst: 40,
                per_second: 20.0,
            },
            registration: Quota {
                burst: 5,
                per_second: 0.1,
            },
            global: Quota {
                burst: 2_000,
                per_second: 1_000.0,
            },
            per_principal: Quota {
                burst: 100,
                per_second: 50.0,
            },
            failed_logins: Quota {
                burst: 5,
                per_second: 1.0 / 60.0,
            },
            account_guesses: Quota {
                burst: 20,
                per_second: 20.0 / 3600.0,
            },
            known_address_days: 30,
            redis_url: None,
            redis_ca_file: None,
            redis_key_prefix: "natterjack:rl:".to_owned(),
            redis_timeout_ms: 100,
            redis_retry_ms: 1000,
            fail_closed: ["failed_logins", "credentials"].map(str::to_owned).to_vec(),
        }
    }
}

/// What kind of request arrived, judged before anything is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Anything else.
    Plain,
    /// A request that carries credentials (an `Authorization` header, a client certificate).
    Credentials,
    /// Account creation.
    Registration,
}

/// Every rate-limit policy of one server process.
pub struct RateLimits {
    enabled: bool,
    trusted: Vec<IpNet>,
    per_ip: Limiter<IpAddr>,
    credentials: Limiter<IpAddr>,
    registration: Limiter<IpAddr>,
    global: Limiter<()>,
    per_principal: Limiter<UserId>,
    logins: Arc<LoginBudgets>,
    shared: Option<Arc<SharedLimits>>,
}

impl RateLimits {
    /// Builds the policies on the system clock, refusing quotas that could never admit a
    /// request.
    pub fn new(cfg: &RateLimitConfig) -> Result<Self, String> {
        Self::with_clock(cfg, natterjack_core::clock::system(), None)
    }

    /// Builds the policies reading time from `clock`; with `shared`, every budget is kept
    /// there (on the store's clock), so that every node sharing it enforces one quota.
    pub fn with_clock(
        cfg: &RateLimitConfig,
        clock: SharedClock,
        shared: Option<Arc<SharedLimits>>,
    ) -> Result<Self, String> {
        for (name, quota) in [
            ("per_ip", cfg.per_ip),
            ("credentials", cfg.credentials),
            ("registration", cfg.registration),
            ("global", cfg.global),
            ("per_principal", cfg.per_principal),
            ("failed_logins", cfg.failed_logins),
            ("account_guesses", cfg.account_guesses),
        ] {
            quota.check(name)?;
        }
        cfg.fail_closed_policies()?;
        if cfg.redis_timeout_ms == 0 || cfg.redis_retry_ms == 0 {
            return Err("rate_limit.redis_timeout_ms and redis_retry_ms must be at least 1".into());
        }
        if cfg.max_keys == 0 {
            return Err("rate_limit.max_keys must be at least 1".into());
        }
        let keys = cfg.max_keys;
        Ok(Self {
            enabled: cfg.enabled,
            trusted: cfg.trusted_proxies.clone(),
            per_ip: Limiter::new("per-ip", cfg.per_ip, keys).with_clock(clock.clone()),
            credentials: Limiter::new("credentials", cfg.credentials, keys)
                .with_clock(clock.clone()),
            registration: Limiter::new("registration", cfg.registration, keys)
                .with_clock(clock.clone()),
            global: Limiter::new("global", cfg.global, 1).with_clock(clock.clone()),
            per_principal: Limiter::new("per-principal", cfg.per_principal, keys)
                .with_clock(clock.clone()),
            logins: Arc::new({
                let budgets = LoginBudgets::new(
                    cfg.failed_logins,
                    cfg.account_guesses,
                    Duration::from_secs(u64::from(cfg.known_address_days) * 86_400),
                    keys,
                )
                .with_clock(clock);
                match &shared {
                    Some(shared) => budgets.with_shared(shared.clone()),
                    None => budgets,
                }
            }),
            shared,
        })
    }

    /// Admits a request from `ip` of class `class`: per address, then the class, then the
    /// global budget, so one flooding address cannot spend the global budget. It takes
    /// from all three or from none.
    pub async fn admit(&self, ip: IpAddr, class: Class) -> Result<(), Refusal> {
        if !self.enabled {
            return Ok(());
        }
        let key = limit_key(ip);
        let per_ip = At(&self.per_ip, key);
        let global = At(&self.global, ());
        let shared = self.shared.as_deref();
        match class {
            Class::Plain => decide(shared, Op::Take, &[&per_ip, &global]).await,
            Class::Credentials => {
                let class = At(&self.credentials, key);
                decide(shared, Op::Take, &[&per_ip, &class, &global]).await
            }
            Class::Registration => {
                let class = At(&self.registration, key);
                decide(shared, Op::Take, &[&per_ip, &class, &global]).await
            }
        }
    }

    /// The proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.trusted
    }

    /// The second limit, per authenticated user.
    pub async fn admit_principal(&self, user: UserId) -> Result<(), Refusal> {
        if !self.enabled {
            return Ok(());
        }
        let bucket = At(&self.per_principal, user);
        decide(self.shared.as_deref(), Op::Take, &[&bucket]).await
    }

    /// The login budgets (`failed-logins`, `account-guesses`), which authentication counts
    /// guesses against; `None` when rate limiting is off.
    pub fn login_budgets(&self) -> Option<Arc<LoginBudgets>> {
        self.enabled.then(|| self.logins.clone())
    }

    /// Drops buckets that have refilled, in every policy; decisions do not change.
    pub fn evict_expired(&self) {
        self.per_ip.evict_expired();
        self.credentials.evict_expired();
        self.registration.evict_expired();
        self.per_principal.evict_expired();
        self.logins.evict_expired();
    }

    /// Evicts refilled buckets every `period` for as long as the process runs.
    pub fn spawn_eviction(self: &Arc<Self>, period: Duration) {
        let limits = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                match limits.upgrade() {
                    Some(l) => l.evict_expired(),
                    None => break,
                }
            }
        });
    }
}
