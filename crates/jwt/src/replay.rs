//! The `jti`s of DPoP proofs seen recently (RFC 9449 §11.1), so that each proof is
//! used once. Kept in memory, per process (a broker replica, or an API behind the
//! guard): a proof is only good for [`DEFAULT_MAX_AGE_SECS`](crate::dpop::DEFAULT_MAX_AGE_SECS)
//! (plus the clock skew allowance), so an entry lives at most that long, and the set
//! is bounded. A process that restarts forgets them, and a proof replayed to another
//! replica within its window is not caught there: the window is what bounds that, as
//! the RFC says (§11.1).

use crate::dpop::{Proof, ProofPolicy};
use std::collections::HashMap;
use std::sync::Mutex;

/// The most proofs remembered at once (about 100 bytes each).
pub const MAX_PROOFS: usize = 200_000;

/// Proofs seen, by key thumbprint and `jti`, with when each may be forgotten.
#[derive(Debug, Default)]
pub struct ProofReplay {
    seen: Mutex<HashMap<String, i64>>,
}

/// The set is full of proofs still in their window: refuse rather than forget one.
#[derive(Debug)]
pub struct Full;

/// Why an accepted proof may not be used.
#[derive(Debug)]
pub enum NotUsable {
    /// Its `jti` was used before (`invalid_dpop_proof`).
    Replayed,
    /// The set is full ([`Full`]): `503`, retry.
    Full,
}

impl ProofReplay {
    /// Uses an accepted proof once: remembered for as long as `policy` would accept
    /// it.
    pub fn use_once(&self, proof: &Proof, policy: &ProofPolicy, now: i64) -> Result<(), NotUsable> {
        let until = proof
            .iat
            .saturating_add(policy.max_age.saturating_add(policy.leeway));
        match self.first_use(&proof.jkt, &proof.jti, until, now) {
            Ok(true) => Ok(()),
            Ok(false) => Err(NotUsable::Replayed),
            Err(Full) => Err(NotUsable::Full),
        }
    }

    /// Records the proof `jti` of key `jkt`, remembered until `until`; `Ok(false)`
    /// when it was seen before (a replay).
    pub fn first_use(&self, jkt: &str, jti: &str, until: i64, now: i64) -> Result<bool, Full> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = format!("{jkt}.{jti}");
        if let Some(t) = seen.get(&key)
            && *t > now
        {
            return Ok(false);
        }
        if seen.len() >= MAX_PROOFS {
            seen.retain(|_, t| *t > now);
            if seen.len() >= MAX_PROOFS {
                return Err(Full);
            }
        }
        seen.insert(key, until);
        Ok(true)
    }

    /// Forgets the proofs whose window has passed.
    pub fn prune(&self, now: i64) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, t| *t > now);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_used_once_within_its_window() {
        let r = ProofReplay::default();
        assert!(matches!(r.first_use("k", "j", 100, 0), Ok(true)));
        assert!(matches!(r.first_use("k", "j", 100, 50), Ok(false)));
        assert!(matches!(r.first_use("other", "j", 100, 50), Ok(true)));
        // Past its window it could not be accepted anyway; the entry is reused.
        assert!(matches!(r.first_use("k", "j", 300, 100), Ok(true)));
        r.prune(1_000);
        assert!(r.seen.lock().unwrap().is_empty());
    }
}
