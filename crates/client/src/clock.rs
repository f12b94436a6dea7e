//! Injectable time: a monotonic `now`, a `sleep`, and the wall clock.
//!
//! The token manager never reads the wall clock for expiry: it is computed from
//! `expires_in` against [`Clock::now`] at receipt, so clock skew between this host and
//! the token endpoint cannot make a token look valid or expired. Only what must carry
//! calendar time does ([`Clock::wall`]): the `iat` and `exp` of client assertions (RFC
//! 7523 §3) and the `iat` of DPoP proofs (RFC 9449 §4.2). Tests use [`ManualClock`] and
//! move time forward by hand instead of sleeping.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, oneshot};

/// A boxed `Send` future, as [`Clock::sleep`] returns.
pub type BoxSleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A monotonic clock and a way to wait on it.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant (monotonic; never goes backwards).
    fn now(&self) -> Instant;
    /// Completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> BoxSleep;
    /// The calendar time, for claims a server compares with its own clock.
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The real clock: [`Instant::now`] and [`tokio::time::sleep`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, duration: Duration) -> BoxSleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when told to, for tests. Its wall clock starts at the real
/// time it was made and moves with it.
///
/// `sleep` registers a sleeper that [`ManualClock::advance`] wakes once its deadline
/// has passed; every requested sleep is recorded so a test can check backoff and
/// `Retry-After` handling.
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    start: Instant,
    wall_start: SystemTime,
    state: Mutex<ManualState>,
    slept: Notify,
}

#[derive(Debug, Default)]
struct ManualState {
    offset: Duration,
    sleepers: Vec<(Duration, oneshot::Sender<()>)>,
    requested: Vec<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at an arbitrary instant.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(ManualInner {
                start: Instant::now(),
                wall_start: SystemTime::now(),
                state: Mutex::new(ManualState::default()),
                slept: Notify::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves time forward and wakes every sleeper whose deadline has passed.
    pub fn advance(&self, by: Duration) {
        let mut st = self.state();
        st.offset += by;
        let now = st.offset;
        let (due, pending): (Vec<_>, Vec<_>) = st
            .sleepers
            .drain(..)
            .partition(|(deadline, _)| *deadline <= now);
        st.sleepers = pending;
        drop(st);
        for (_, tx) in due {
            let _ = tx.send(());
        }
    }

    /// Time elapsed on this clock since it was created.
    pub fn elapsed(&self) -> Duration {
        self.state().offset
    }

    /// Every duration passed to `sleep` so far, in order.
    pub fn requested_sleeps(&self) -> Vec<Duration> {
        self.state().requested.clone()
    }

    /// How many sleepers are waiting.
    pub fn sleepers(&self) -> usize {
        self.state().sleepers.len()
    }

    /// Waits (for real, without moving this clock) until at least `n` sleeps have been
    /// requested in total.
    pub async fn wait_for_sleeps(&self, n: usize) {
        loop {
            let notified = self.inner.slept.notified();
            if self.state().requested.len() >= n {
                return;
            }
            notified.await;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.start + self.state().offset
    }

    fn wall(&self) -> SystemTime {
        let offset = self.state().offset;
        self.inner
            .wall_start
            .checked_add(offset)
            .unwrap_or(self.inner.wall_start)
    }

    fn sleep(&self, duration: Duration) -> BoxSleep {
        let mut st = self.state();
        st.requested.push(duration);
        let deadline = st.offset + duration;
        let rx = if duration.is_zero() {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            st.sleepers.push((deadline, tx));
            Some(rx)
        };
        drop(st);
        self.inner.slept.notify_waiters();
        Box::pin(async move {
            if let Some(rx) = rx {
                let _ = rx.await;
            }
        })
    }
}
