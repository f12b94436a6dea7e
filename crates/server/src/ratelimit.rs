//! Rate limiting of failed client authentication.
//!
//! Only failures are counted, keyed by the claimed client id and by the peer
//! address (GCRA from `governor`: a burst of `per_minute` failures, then one more each
//! `60 / per_minute` seconds). A request is checked here only after its credentials
//! have failed, so a client with the right secret is never refused or slowed,
//! whatever an attacker does with its id.

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

type Keyed<K> = RateLimiter<K, governor::state::keyed::DefaultKeyedStateStore<K>, DefaultClock>;

#[derive(Debug)]
pub struct FailureLimiter {
    by_client: Keyed<String>,
    by_peer: Keyed<IpAddr>,
    clock: DefaultClock,
}

impl FailureLimiter {
    /// Allows `per_minute` failures per key in a burst.
    pub fn new(per_minute: NonZeroU32) -> Self {
        let quota = Quota::per_minute(per_minute);
        Self {
            by_client: RateLimiter::keyed(quota),
            by_peer: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Records one failure; returns how long to wait when either key is over its limit.
    pub fn record_failure(&self, client_id: &str, peer: IpAddr) -> Option<Duration> {
        let now = self.clock.now();
        // Bound the key so a client id of 60 KiB cannot bloat the table.
        let id: String = client_id.chars().take(128).collect();
        let a = self
            .by_client
            .check_key(&id)
            .err()
            .map(|n| n.wait_time_from(now));
        let b = self
            .by_peer
            .check_key(&peer)
            .err()
            .map(|n| n.wait_time_from(now));
        a.max(b)
    }

    /// Forgets keys that are back to a full allowance; called periodically.
    pub fn prune(&self) {
        self.by_client.retain_recent();
        self.by_client.shrink_to_fit();
        self.by_peer.retain_recent();
        self.by_peer.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_after_the_burst() {
        let l = FailureLimiter::new(NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN));
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(l.record_failure("a", ip).is_none());
        }
        let wait = l.record_failure("a", ip);
        assert!(wait.is_some_and(|w| w > Duration::ZERO && w <= Duration::from_secs(20)));
        // Another address with the same id is limited by the id.
        assert!(l.record_failure("a", [10, 0, 0, 1].into()).is_some());
    }
}
