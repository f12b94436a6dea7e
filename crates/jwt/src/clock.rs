//! Injected wall-clock time, one trait for the broker and the guard, so expiry,
//! rotation and caches are tested without sleeping, and the two sides of a test can
//! share one clock. (The client crate keeps its own monotonic clock: a token
//! manager counts durations, not wall-clock seconds.)

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const NANOS: i64 = 1_000_000_000;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> i64;

    /// Whole seconds since the Unix epoch (rounded down), the unit of JWT `exp`,
    /// `nbf` and `iat` (RFC 7519 §2 NumericDate).
    fn now_secs(&self) -> i64 {
        self.now_nanos().div_euclid(NANOS)
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_nanos(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    /// Directly in seconds: the guard asks on every request, cache hits included,
    /// and whole seconds need no 128-bit product or division.
    fn now_secs(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to. Clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock at `secs` since the Unix epoch.
    pub fn at(secs: i64) -> Self {
        Self::at_nanos(secs.saturating_mul(NANOS))
    }

    /// A clock at the given Unix time in nanoseconds.
    pub fn at_nanos(nanos: i64) -> Self {
        Self(Arc::new(AtomicI64::new(nanos)))
    }

    /// A clock at the current system time, from which a test moves on.
    pub fn now() -> Self {
        Self::at_nanos(SystemClock.now_nanos())
    }

    /// Moves the clock forward (or back, with a negative value).
    pub fn advance_secs(&self, secs: i64) {
        self.0
            .fetch_add(secs.saturating_mul(NANOS), Ordering::SeqCst);
    }

    /// Sets the clock to `secs` since the Unix epoch.
    pub fn set(&self, secs: i64) {
        self.0.store(secs.saturating_mul(NANOS), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_down_and_clones_share_the_time() {
        let c = ManualClock::at_nanos(10 * NANOS + NANOS / 2);
        assert_eq!(c.now_secs(), 10);
        let shared = c.clone();
        shared.advance_secs(5);
        assert_eq!(c.now_secs(), 15);
        c.set(-1);
        assert_eq!(shared.now_secs(), -1);
        assert_eq!(ManualClock::at_nanos(-1).now_secs(), -1);
        assert!(SystemClock.now_secs() > 1_700_000_000);
    }
}
