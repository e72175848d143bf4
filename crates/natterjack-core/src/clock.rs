//! Time as a parameter: the one port through which the rate limiters, the verification
//! cache, the audit writer, its coalescing and the anomaly monitor read the clock.
//!
//! `clippy.toml` forbids reading the system clock anywhere else (`Instant::now`,
//! `SystemTime::now`, `OffsetDateTime::now_utc`, `Timestamp::now`), so a window, a refill or
//! an expiry can be tested by moving a [`ManualClock`] instead of sleeping, and every reading
//! of the system clock leads back here.

use crate::domain::Timestamp;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// Monotonic time, for durations, windows and expiries.
    fn now(&self) -> Instant;
    /// Wall-clock time, for what records show.
    fn wall(&self) -> Timestamp;
}

/// A clock shared by the components of one process.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one reading of the monotonic clock
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[allow(clippy::disallowed_methods)] // the one reading of the wall clock
    fn wall(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: for tests of windows, refills and expiries.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_wall: Timestamp,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at the system's current time.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: SystemClock.now(),
            start_wall: SystemClock.wall(),
            elapsed: Mutex::new(Duration::ZERO),
        })
    }

    /// A clock whose wall time stands `by` behind the system's: a node that lags, for
    /// tests of what is not valid yet.
    pub fn behind(by: Duration) -> Arc<Self> {
        let lag = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        Arc::new(Self {
            start: SystemClock.now(),
            start_wall: Timestamp::from_micros(SystemClock.wall().micros().saturating_sub(lag)),
            elapsed: Mutex::new(Duration::ZERO),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut elapsed) = self.elapsed.lock() {
            *elapsed += by;
        }
    }

    fn elapsed(&self) -> Duration {
        self.elapsed.lock().map_or(Duration::ZERO, |e| *e)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn wall(&self) -> Timestamp {
        let micros = i64::try_from(self.elapsed().as_micros()).unwrap_or(i64::MAX);
        Timestamp::from_micros(self.start_wall.micros().saturating_add(micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_both_its_clocks_only_when_told() {
        let clock = ManualClock::new();
        let (t0, w0) = (clock.now(), clock.wall());
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - t0, Duration::from_secs(90));
        assert_eq!(clock.wall().micros() - w0.micros(), 90_000_000);
    }
}
