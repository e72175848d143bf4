//! The rate-limit budgets in Redis (`[rate_limit] redis_url`), so that several nodes
//! behind one load balancer enforce one quota.
//!
//! Each decision is one `EVALSHA` of `gcra.lua`, which reads the server's `TIME`, checks
//! every bucket of the decision and takes from all of them or none: the same GCRA as the
//! in-memory limiter ([`natterjack_core::rate::gcra`]), atomic because Redis runs a script
//! alone, and on one clock whichever node asks. Keys expire when their bucket is full
//! again, so Redis holds only the clients seen within their policies' windows. What
//! happens when Redis does not answer is [`natterjack_core::rate::shared::SharedLimits`]'s
//! business (fail open or closed per policy, a probe, recovery by itself).
//!
//! One Redis server (or a primary with replicas), not a cluster: a decision's keys span
//! policies, which a cluster would spread over slots.

mod audit;
mod windows;

pub use audit::record_changes;
pub use windows::RedisWindows;

use async_trait::async_trait;
use natterjack_api::pipeline::rate_limit::RateLimitConfig;
use natterjack_core::rate::shared::{Answer, Op, SharedBuckets, SharedCheck, SharedLimits};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

/// The decision script; see the comment at its top.
const SCRIPT: &str = include_str!("gcra.lua");

/// The budgets of every node, in one Redis.
pub struct RedisBuckets {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl RedisBuckets {
    /// Connects lazily to `url` (`redis://` or `rediss://`; TLS trusts only the PEM
    /// certificates of `ca_file` when one is given): a node starts while Redis is down,
    /// and its first decision finds that out. Keys start with `prefix`.
    pub fn connect(
        url: &str,
        ca_file: Option<&std::path::Path>,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = match ca_file {
            Some(path) => {
                let root_cert = std::fs::read(path)
                    .map_err(|e| format!("rate_limit.redis_ca_file {}: {e}", path.display()))?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )
            }
            None => redis::Client::open(url),
        }
        // The URL may carry a password: its error names the problem, never the URL.
        .map_err(|e| format!("rate_limit.redis_url: {}", e.category()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = client
            .get_connection_manager_lazy(config)
            .map_err(|e| format!("rate_limit.redis_url: {}", e.category()))?;
        Ok(Self {
            connection,
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_owned(),
        })
    }
}

impl RedisBuckets {
    /// The anomaly monitor's windows in the same Redis, over the same connection.
    pub fn windows(&self) -> RedisWindows {
        RedisWindows::new(self.connection.clone(), &self.prefix)
    }
}

/// Microseconds, as the script reads them (decimals kept: a quota of a million per second
/// has an interval of one microsecond).
fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1000.0
}

#[async_trait]
impl SharedBuckets for RedisBuckets {
    async fn decide(&self, op: Op, checks: &[SharedCheck]) -> Result<Answer, String> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(match op {
            Op::Take => "take",
            Op::Peek => "peek",
            Op::GiveBack => "give",
        });
        for check in checks {
            invocation
                .key(format!("{}{}", self.prefix, check.key))
                .arg(micros(check.interval_nanos))
                .arg(micros(check.tolerance_nanos));
        }
        let mut connection = self.connection.clone();
        let (index, wait): (i64, i64) = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        if index == 0 {
            return Ok(Answer::Allowed);
        }
        Ok(Answer::Refused {
            index: usize::try_from(index - 1).map_err(|_| "a bucket index below 1".to_owned())?,
            retry_after: Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
        })
    }

    async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// What several nodes share through Redis: the budgets, and the anomaly monitor's windows.
pub struct Shared {
    /// The budgets, with their fail modes.
    pub limits: Arc<SharedLimits>,
    /// The anomaly monitor's windows.
    pub windows: Arc<RedisWindows>,
    /// The longest wait for Redis's answer.
    pub timeout: Duration,
}

/// What `cfg` asks to share: `None` without `redis_url` (each process keeps its own, as a
/// single node should). `cfg` is checked already (`Config::validate`, through
/// `RateLimits::new`).
pub fn from_config(cfg: &RateLimitConfig) -> Result<Option<Shared>, String> {
    let Some(url) = &cfg.redis_url else {
        return Ok(None);
    };
    let timeout = Duration::from_millis(cfg.redis_timeout_ms);
    let store = RedisBuckets::connect(
        url.expose_secret(),
        cfg.redis_ca_file.as_deref(),
        &cfg.redis_key_prefix,
        timeout,
    )?;
    let windows = Arc::new(store.windows());
    let limits = SharedLimits::start(
        Arc::new(store),
        timeout,
        Duration::from_millis(cfg.redis_retry_ms),
        cfg.fail_closed_policies()?,
    );
    Ok(Some(Shared {
        limits,
        windows,
        timeout,
    }))
}
