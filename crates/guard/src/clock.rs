//! Injected time, so `exp`/`nbf` and cache expiry are tested without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in whole seconds since the Unix epoch, the unit of
/// JWT `exp`, `nbf` and `iat` (RFC 7519 §2 NumericDate).
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now_secs(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
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
        Self(Arc::new(AtomicI64::new(secs)))
    }

    /// A clock at the current system time, from which a test moves on.
    pub fn now() -> Self {
        Self::at(SystemClock.now_secs())
    }

    /// Moves the clock forward (or back, with a negative value).
    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn set(&self, secs: i64) {
        self.0.store(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_secs(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
