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
    /// Failures are recorded one at a time: two concurrent ones could otherwise each
    /// take the last cell of one key and be refused by the other, and both be
    /// refused although the allowance had room for one. Only failures pass here.
    one_at_a_time: std::sync::Mutex<()>,
}

impl FailureLimiter {
    /// Allows `per_minute` failures per key in a burst.
    pub fn new(per_minute: NonZeroU32) -> Self {
        let quota = Quota::per_minute(per_minute);
        Self {
            by_client: RateLimiter::keyed(quota),
            by_peer: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            one_at_a_time: std::sync::Mutex::new(()),
        }
    }

    /// Records one failure; returns how long to wait when either key is over its limit.
    pub fn record_failure(&self, client_id: &str, peer: IpAddr) -> Option<Duration> {
        let _one = self
            .one_at_a_time
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
            .check_key(&peer_key(peer))
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

/// The address a failure is counted against. An IPv6 host usually holds a whole /64
/// (SLAAC, privacy addresses, a /64 per customer), so counting per address would
/// give one attacker 2^64 allowances: IPv6 peers are keyed by their /64 prefix.
/// An IPv4-mapped IPv6 address (a dual-stack socket) is the IPv4 address it maps.
fn peer_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !((1u128 << 64) - 1),
            )),
        },
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

    #[test]
    fn ipv6_peers_share_the_limit_of_their_64() {
        let l = FailureLimiter::new(NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN));
        let addr = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::V4([0; 4].into()));
        // Three failures from three addresses of one /64, each under another id...
        for (i, a) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"]
            .into_iter()
            .enumerate()
        {
            assert!(l.record_failure(&format!("id{i}"), addr(a)).is_none());
        }
        // ...and the /64 is spent, whatever the interface id.
        assert!(
            l.record_failure("id9", addr("2001:db8:1:2:abcd::1"))
                .is_some()
        );
        // The next /64 is not.
        assert!(l.record_failure("id10", addr("2001:db8:1:3::1")).is_none());
        // An IPv4-mapped address counts as its IPv4 address.
        for i in 0..3 {
            assert!(
                l.record_failure(&format!("v4-{i}"), addr("192.0.2.7"))
                    .is_none()
            );
        }
        assert!(l.record_failure("v4-x", addr("::ffff:192.0.2.7")).is_some());
    }
}
