//! The per-client cap on successful token requests (`tokens_per_minute`).
//!
//! GCRA (the generic cell rate algorithm, as in `governor`, which the failure limiter
//! uses; written out here because each client has its own rate): a client may take
//! its whole minute's allowance at once and then one more each `60 / n` seconds (`n`
//! a minute sustained, at most `2n − 1` in any 60 s). The state is one instant per
//! limited client, in this replica's memory: with `R` replicas behind a load
//! balancer a client can get up to `R` times that (each replica allows its own), and
//! what one replica allows when its requests stick to one replica. A
//! client that caches its token, as it should, never meets the cap.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One theoretical arrival time per limited client.
#[derive(Debug, Default)]
pub struct Quotas {
    tat: Mutex<HashMap<String, Instant>>,
}

impl Quotas {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one token request of `client_id` from its allowance of `per_minute`;
    /// `Err` with how long to wait when there is none left.
    pub fn take(&self, client_id: &str, per_minute: u32, now: Instant) -> Result<(), Duration> {
        let per_minute = per_minute.max(1);
        let t = Duration::from_secs(60) / per_minute;
        let tau = t * (per_minute - 1);
        let mut map = self
            .tat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tat = map.get(client_id).copied().unwrap_or(now).max(now);
        let wait = tat.saturating_duration_since(now);
        if wait > tau {
            return Err(wait - tau);
        }
        match map.get_mut(client_id) {
            Some(slot) => *slot = tat + t,
            None => {
                map.insert(client_id.to_owned(), tat + t);
            }
        }
        Ok(())
    }

    /// Forgets clients whose allowance is full again; called periodically.
    pub fn prune(&self, now: Instant) {
        self.tat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, tat| *tat > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_n_then_one_every_interval() {
        let q = Quotas::new();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(q.take("c", 3, t0), Ok(()), "request {i}");
        }
        let wait = q.take("c", 3, t0).err();
        assert_eq!(wait, Some(Duration::from_secs(20)));
        // Another client is not affected.
        assert_eq!(q.take("d", 3, t0), Ok(()));
        // 20 s later one more is allowed, then none again.
        let t1 = t0 + Duration::from_secs(20);
        assert_eq!(q.take("c", 3, t1), Ok(()));
        assert!(q.take("c", 3, t1).is_err());
        // After a full minute of quiet the allowance is whole again, and pruned.
        let t2 = t1 + Duration::from_secs(60);
        q.prune(t2);
        for _ in 0..3 {
            assert_eq!(q.take("c", 3, t2), Ok(()));
        }
    }
}
