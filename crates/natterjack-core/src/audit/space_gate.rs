//! The disk-space guard: below a configured amount of free space, state changes are
//! refused (503) instead of running the disk full.
//!
//! A full disk fails every write at once, the audit trail's included, and a request whose
//! intent cannot be recorded cannot run: refusing changes a little earlier, while reads,
//! their audit records and the alert itself still fit, keeps the failure orderly and
//! recorded. The gate only holds the last measurement; the binary measures the data
//! directory's file system on a timer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Free space needed above the threshold before changes resume, so that a disk hovering
/// at the threshold does not flip the gate on every measurement.
pub const HYSTERESIS_BYTES: u64 = 64 * 1024 * 1024;

/// The last measurement and whether changes are paused.
#[derive(Debug)]
pub struct SpaceGate {
    threshold: u64,
    free: AtomicU64,
    low: AtomicBool,
}

/// A change of state the caller reports (alert, log, metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flip {
    /// Free space fell below the threshold: changes are now refused.
    Low,
    /// Free space is back above the threshold and its margin: changes resume.
    Recovered,
}

impl SpaceGate {
    /// A gate refusing changes below `threshold` free bytes (0: never).
    pub fn new(threshold: u64) -> Self {
        Self {
            threshold,
            free: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
        }
    }

    /// The threshold in bytes.
    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// The last measured free space in bytes.
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// Whether state changes are refused now.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Records a measurement of `free` bytes; says when the gate flipped.
    pub fn observe(&self, free: u64) -> Option<Flip> {
        self.free.store(free, Ordering::Relaxed);
        if self.threshold == 0 {
            return None;
        }
        let was_low = self.is_low();
        let low = if was_low {
            free < self.threshold.saturating_add(HYSTERESIS_BYTES)
        } else {
            free < self.threshold
        };
        self.low.store(low, Ordering::Relaxed);
        match (was_low, low) {
            (false, true) => Some(Flip::Low),
            (true, false) => Some(Flip::Recovered),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn changes_pause_below_the_threshold_and_resume_only_past_its_margin() {
        let gate = SpaceGate::new(256 * MIB);
        assert_eq!(gate.observe(300 * MIB), None);
        assert!(!gate.is_low());
        assert_eq!(gate.observe(255 * MIB), Some(Flip::Low));
        assert!(gate.is_low());
        assert_eq!(
            gate.observe(257 * MIB),
            None,
            "within the margin: still low"
        );
        assert!(gate.is_low());
        assert_eq!(
            gate.observe(256 * MIB + HYSTERESIS_BYTES),
            Some(Flip::Recovered)
        );
        assert!(!gate.is_low());
        assert_eq!(gate.free(), 256 * MIB + HYSTERESIS_BYTES);
    }

    #[test]
    fn a_zero_threshold_never_pauses_changes() {
        let gate = SpaceGate::new(0);
        assert_eq!(gate.observe(0), None);
        assert!(!gate.is_low());
    }
}
