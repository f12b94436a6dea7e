//! The keys a running broker signs and verifies with.
//!
//! The active signing key is held parsed in memory; a background task polls the
//! store (a one-row query every couple of seconds) and swaps in a new key when
//! another process has rotated, so every replica follows a rotation within seconds
//! and no request pays for the check.

use crate::clock::Clock;
use crate::keys::{SigningAlg, SigningKey, VerifyingKey};
use crate::store::{Store, StoreError};
use auth_broker_proto::Jwk;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct KeyRing {
    alg: SigningAlg,
    /// The longest lifetime of the tokens this broker signs; recorded on every key
    /// before it signs with it ([`Store::cover_key_ttl`]), so that whichever replica
    /// prunes keeps the key until this broker's last token from it has expired.
    token_ttl: i64,
    active: RwLock<Arc<SigningKey>>,
    verifiers: RwLock<Verifiers>,
    /// Lifetimes longer than `token_ttl` (per-client settings) recorded on keys so far.
    covered: std::sync::Mutex<HashMap<String, i64>>,
}

#[derive(Debug, Default)]
struct Verifiers {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    loaded_at: Option<Instant>,
}

/// An unknown `kid` reloads the verifiers from the store at most this often, so a
/// flood of forged kids cannot turn into a flood of store queries.
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(1);

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KeyRing {
    /// Loads the active key for `alg`, creating it on first start, and records that
    /// it will sign tokens living up to `token_ttl` seconds.
    pub async fn load(
        store: &Store,
        alg: SigningAlg,
        token_ttl: i64,
        clock: &dyn Clock,
    ) -> Result<Self, StoreError> {
        let now = clock.now_secs();
        let rec = store
            .ensure_active_key(alg.as_str(), move || SigningKey::generate(alg, now))
            .await?;
        store.cover_key_ttl(&rec.kid, token_ttl).await?;
        let key = SigningKey::from_record(&rec)?;
        tracing::info!(kid = key.kid(), alg = %alg, "signing key loaded");
        let ring = Self {
            alg,
            token_ttl,
            active: RwLock::new(Arc::new(key)),
            verifiers: RwLock::new(Verifiers::default()),
            covered: std::sync::Mutex::default(),
        };
        ring.reload_verifiers(store).await?;
        Ok(ring)
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> Arc<SigningKey> {
        read(&self.active).clone()
    }

    /// The key to sign a token living `ttl` seconds with: the active one, with `ttl`
    /// recorded on it first when it is longer than what the key is known to cover
    /// (a client's own `access_token_ttl`), so no replica prunes the key before the
    /// token expires. The key is returned rather than looked up again, so a rotation
    /// in between cannot hand the token to a key that does not cover it.
    pub async fn covering(&self, store: &Store, ttl: i64) -> Result<Arc<SigningKey>, StoreError> {
        let key = self.active();
        if ttl <= self.token_ttl {
            return Ok(key);
        }
        let known = self
            .covered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key.kid())
            .copied();
        if known.is_none_or(|c| c < ttl) {
            // Boxed: a rare path, kept out of every token request's future.
            Box::pin(store.cover_key_ttl(key.kid(), ttl)).await?;
            let mut covered = self
                .covered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Only keys still published can matter; a rotation every few days keeps
            // this map at a handful of entries.
            covered.retain(|kid, _| read(&self.verifiers).by_kid.contains_key(kid));
            let entry = covered.entry(key.kid().to_owned()).or_insert(ttl);
            *entry = (*entry).max(ttl);
        }
        Ok(key)
    }

    /// Picks up a rotation made elsewhere. Cheap when nothing changed.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let Some(kid) = store.active_kid(self.alg.as_str()).await? else {
            return Ok(());
        };
        if kid == self.active().kid() {
            return Ok(());
        }
        let keys = store.list_keys().await?;
        if let Some(rec) = keys.iter().find(|k| k.kid == kid) {
            let key = SigningKey::from_record(rec)?;
            // Before the first signature: a failure keeps the old key signing (it is
            // still published) and the next poll tries again.
            store.cover_key_ttl(&kid, self.token_ttl).await?;
            tracing::info!(kid = key.kid(), "switched to the newly rotated signing key");
            *write(&self.active) = Arc::new(key);
        }
        self.set_verifiers(&keys);
        Ok(())
    }

    async fn reload_verifiers(&self, store: &Store) -> Result<(), StoreError> {
        let keys = store.list_keys().await?;
        self.set_verifiers(&keys);
        Ok(())
    }

    fn set_verifiers(&self, keys: &[crate::store::KeyRecord]) {
        let by_kid = keys
            .iter()
            .filter_map(|k| serde_json::from_str::<Jwk>(&k.public_jwk).ok())
            .filter_map(|jwk| VerifyingKey::from_jwk(&jwk))
            .map(|v| (v.kid.clone(), Arc::new(v)))
            .collect();
        *write(&self.verifiers) = Verifiers {
            by_kid,
            loaded_at: Some(Instant::now()),
        };
    }

    /// The public key with this `kid`, reloading from the store (rate limited) when
    /// it is not known yet.
    pub async fn verifier(
        &self,
        store: &Store,
        kid: &str,
    ) -> Result<Option<Arc<VerifyingKey>>, StoreError> {
        let stale = {
            let v = read(&self.verifiers);
            if let Some(k) = v.by_kid.get(kid) {
                return Ok(Some(k.clone()));
            }
            v.loaded_at
                .is_none_or(|t| t.elapsed() >= RELOAD_AT_MOST_EVERY)
        };
        if stale {
            self.reload_verifiers(store).await?;
        }
        Ok(read(&self.verifiers).by_kid.get(kid).cloned())
    }
}
