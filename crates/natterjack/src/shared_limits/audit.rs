//! The audit trail's record of every change of the shared budgets' state: while Redis is
//! down each node decides alone (or refuses, for the policies that fail closed), which
//! changes what the configured quotas mean, so each change is evidence a SIEM should see.

use natterjack_core::audit::AuditLog;
use natterjack_core::audit::record::Alert;
use natterjack_core::clock::SharedClock;
use natterjack_core::rate::shared::SharedLimits;
use std::sync::Arc;

/// Appends an `alert` record (kind `rate_limit_store_down` or `rate_limit_store_up`) each
/// time `limits` finds its store down or back, for as long as both live.
pub fn record_changes(limits: &SharedLimits, audit: Arc<AuditLog>, clock: SharedClock) {
    let mut changes = limits.subscribe();
    changes.mark_unchanged();
    tokio::spawn(async move {
        let mut since = clock.wall();
        while changes.changed().await.is_ok() {
            let up = *changes.borrow_and_update();
            let now = clock.wall();
            let (kind, evidence) = if up {
                (
                    "rate_limit_store_up",
                    "the rate-limit store answers again: budgets are shared by every node again",
                )
            } else {
                (
                    "rate_limit_store_down",
                    "the rate-limit store does not answer: policies in rate_limit.fail_closed \
                     refuse requests, the others use this node's own budgets",
                )
            };
            let record = Alert {
                kind,
                target: "rate_limit.redis_url",
                evidence,
                time: now,
                request_id: String::new(),
                client_ip: String::new(),
                principal: None,
                duration_us: now.micros().saturating_sub(since.micros()),
            };
            since = now;
            if audit.submit(record.into()).await.is_err() {
                tracing::error!(alert = kind, "could not queue the audit record");
            }
        }
    });
}
