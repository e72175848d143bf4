//! The fail-closed switch of audit export: how far the slowest SIEM sink lags behind the
//! log, and whether state changes must wait for it.
//!
//! By default a SIEM outage never blocks a request: the records wait in the durable audit
//! table and are delivered when the collector is back. Deployments that must not change
//! anything the SIEM has not seen set `audit.fail_closed`; then state-changing requests are
//! refused while the backlog exceeds `audit.max_backlog`, and admitted again as it drains.

use std::sync::atomic::{AtomicI64, Ordering};

/// What each sink has confirmed, and the bound (if failing closed).
#[derive(Debug)]
pub struct ExportGate {
    confirmed: Vec<AtomicI64>,
    bound: Option<u64>,
}

impl ExportGate {
    /// A gate over `sinks` sinks; with `fail_closed_above`, changes are refused while any
    /// sink is more than that many records behind the log.
    pub fn new(sinks: usize, fail_closed_above: Option<u64>) -> Self {
        Self {
            confirmed: (0..sinks).map(|_| AtomicI64::new(0)).collect(),
            bound: fail_closed_above,
        }
    }

    /// Records the id of the newest record sink `index` has confirmed.
    pub fn set_confirmed(&self, index: usize, id: i64) {
        if let Some(confirmed) = self.confirmed.get(index) {
            confirmed.store(id, Ordering::Relaxed);
        }
    }

    /// How many records the slowest sink is behind a log whose newest id is `head`.
    pub fn backlog(&self, head: i64) -> u64 {
        let slowest = self
            .confirmed
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(head);
        u64::try_from(head.saturating_sub(slowest)).unwrap_or(0)
    }

    /// Whether state-changing requests must be refused now, the log's newest id being `head`.
    pub fn refuses_changes(&self, head: i64) -> bool {
        self.bound.is_some_and(|bound| self.backlog(head) > bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fail_open_gate_never_refuses_whatever_the_backlog() {
        let gate = ExportGate::new(1, None);
        assert!(!gate.refuses_changes(i64::MAX));
    }

    #[test]
    fn a_fail_closed_gate_refuses_while_the_slowest_sink_is_over_the_bound() {
        let gate = ExportGate::new(2, Some(10));
        gate.set_confirmed(0, 97);
        gate.set_confirmed(1, 90);
        assert!(!gate.refuses_changes(100));
        assert!(gate.refuses_changes(101));
        assert_eq!(gate.backlog(101), 11);
        gate.set_confirmed(1, 101);
        assert!(!gate.refuses_changes(101));
    }

    #[test]
    fn without_sinks_there_is_no_backlog() {
        let gate = ExportGate::new(0, Some(0));
        assert!(!gate.refuses_changes(1000));
    }
}
