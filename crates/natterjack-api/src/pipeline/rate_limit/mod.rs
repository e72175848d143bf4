//! Rate limiting: the first control of the pipeline.
//!
//! It runs before anything parses credentials, reads a body, or hashes a password, so a
//! refused request costs one map lookup per policy. Policies (all GCRA, see [`gcra`]):
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
//! The two login policies ([`logins`]) bound guessing against one account: per address,
//! and per account across every address, so spreading guesses over many addresses does not
//! multiply them. Addresses that logged in as the account within `known_address_days` keep
//! a budget of their own, so the owner is not locked out by an attack on their account.

pub mod client_ip;
pub mod gcra;
pub mod logins;

use crate::AppState;
use crate::rest::error::ApiError;
use crate::transport::PeerAddr;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use client_ip::{ClientIp, client_ip, limit_key};
use gcra::{Limiter, Quota, Refusal};
use http::{Method, header};
use ipnet::IpNet;
use logins::{Guess, LoginBudgets};
use natterjack_core::audit::LimitedBy;
use natterjack_core::domain::UserId;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
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
        }
    }
}

/// What kind of request arrived, judged before anything is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Plain,
    Credentials,
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
    logins: LoginBudgets,
}

impl RateLimits {
    /// Builds the policies, refusing quotas that could never admit a request.
    pub fn new(cfg: &RateLimitConfig) -> Result<Self, String> {
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
        if cfg.max_keys == 0 {
            return Err("rate_limit.max_keys must be at least 1".into());
        }
        let keys = cfg.max_keys;
        Ok(Self {
            enabled: cfg.enabled,
            trusted: cfg.trusted_proxies.clone(),
            per_ip: Limiter::new("per-ip", cfg.per_ip, keys),
            credentials: Limiter::new("credentials", cfg.credentials, keys),
            registration: Limiter::new("registration", cfg.registration, keys),
            global: Limiter::new("global", cfg.global, 1),
            per_principal: Limiter::new("per-principal", cfg.per_principal, keys),
            logins: LoginBudgets::new(
                cfg.failed_logins,
                cfg.account_guesses,
                Duration::from_secs(u64::from(cfg.known_address_days) * 86_400),
                keys,
            ),
        })
    }

    /// Admits a request from `ip` of class `class`: per address, then the class, then the
    /// global budget, so one flooding address cannot spend the global budget.
    fn admit(&self, ip: IpAddr, class: Class) -> Result<(), Refusal> {
        if !self.enabled {
            return Ok(());
        }
        let key = limit_key(ip);
        self.per_ip.check(&key)?;
        match class {
            Class::Plain => {}
            Class::Credentials => {
                self.credentials.check(&key)?;
            }
            Class::Registration => {
                self.registration.check(&key)?;
            }
        }
        self.global.check(&()).map(drop)
    }

    /// The first limit for a gRPC call from `peer`: every call carries credentials (its
    /// client certificate), so the stricter credentials class applies, then the global budget.
    pub fn admit_grpc_peer(&self, peer: IpAddr) -> Result<(), Refusal> {
        self.admit(peer, Class::Credentials)
    }

    /// The second limit, per authenticated user.
    pub fn admit_principal(&self, user: UserId) -> Result<(), Refusal> {
        if !self.enabled {
            return Ok(());
        }
        self.per_principal.check(&user).map(drop)
    }

    /// Whether `username` may try a password from `ip` now (does not count as a try): its
    /// budget at this address, and, unless this address logged in as it recently, the
    /// account's shared budget.
    pub fn login_allowed(&self, username: &str, ip: IpAddr) -> Result<(), Refusal> {
        if !self.enabled {
            return Ok(());
        }
        self.logins.allowed(username, ip)
    }

    /// Takes one guess from `username`'s wrong-password budgets at `ip`, before its
    /// password is hashed: every concurrent guess then needs a token of its own, where a
    /// check made before and a failure counted after the verification let all of them
    /// through. `None` when rate limiting is off.
    pub fn take_guess(&self, username: &str, ip: IpAddr) -> Result<Option<Guess>, Refusal> {
        if !self.enabled {
            return Ok(None);
        }
        self.logins.take(username, ip).map(Some)
    }

    /// Returns a guess taken by [`RateLimits::take_guess`] that was not wrong: the password
    /// was right, or the verification never ran (503).
    pub fn give_back_guess(&self, username: &str, ip: IpAddr, guess: Option<Guess>) {
        if let Some(guess) = guess {
            self.logins.give_back(username, ip, guess);
        }
    }

    /// Remembers a successful login of `username` from `ip`, which gives that address a
    /// budget of its own against guessing spread over other addresses.
    pub fn login_succeeded(&self, username: &str, ip: IpAddr) {
        if self.enabled {
            self.logins.succeeded(username, ip);
        }
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

/// The policy that refused a request and the key it counted the request under, as the
/// audit trail names them when it coalesces refusals: the client address (IPv6 by /64) for
/// the per-address policies, the account for `per-principal` and `account-guesses`, the
/// account at the address for `failed-logins`, `*` for `global`.
pub fn limited_by(refusal: &Refusal, ip: IpAddr, account: Option<&str>) -> LimitedBy {
    let account = account.map(logins::account).unwrap_or_default();
    let key = match refusal.policy {
        "global" => "*".to_owned(),
        "per-principal" | "account-guesses" => account,
        "failed-logins" => format!("{account}@{}", limit_key(ip)),
        _ => limit_key(ip).to_string(),
    };
    LimitedBy {
        policy: refusal.policy,
        key,
    }
}

/// The first control: attributes the request to a client address and applies the keyed
/// and global policies. Only the peer address, the forwarded header (from trusted proxies),
/// the method, the path and the *presence* of an `Authorization` header are looked at.
pub async fn limit_clients(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
    let ip = client_ip(peer, req.headers(), &state.limits.trusted);
    req.extensions_mut().insert(ClientIp(ip));
    if let Some(draft) = req.extensions().get::<super::audit::AuditDraft>() {
        draft.client_ip(ip);
    }
    let class = if req.method() == Method::POST && req.uri().path() == REGISTRATION_PATH {
        Class::Registration
    } else if req.headers().contains_key(header::AUTHORIZATION) {
        Class::Credentials
    } else {
        Class::Plain
    };
    if let Err(refusal) = state.limits.admit(ip, class) {
        if let Some(draft) = req.extensions().get::<super::audit::AuditDraft>() {
            draft.limited_by(limited_by(&refusal, ip, None));
        }
        return ApiError::RateLimited(refusal).into_response();
    }
    next.run(req).await
}
