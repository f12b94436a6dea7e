//! Test support (the `testing` feature): what tests, benchmarks, examples and fuzz
//! targets need below the public API. Not a stable interface, and not in the
//! `auth-broker` binary, which changes state only through [`crate::admin::Admin`].

pub use crate::inspect::{Active, OPAQUE_PREFIX};
pub use crate::keys::SigningKey;
pub use crate::secret::{
    DUMMY_HASH, generate_client_id, generate_secret, hash_secret, token_hash, verify_dummy,
    verify_secret,
};
pub use crate::store::{CacheStats, ClientRecord, KeyRecord, OpaqueRecord, Pruned, Timestamp};
pub use crate::{AppState, Issued};

use crate::store::{Store, StoreError};
use auth_broker_proto::ClientSecret;

/// The store's own operations, for tests of the store itself and for setting up
/// states the service never makes (a chosen id and secret, a key from the past).
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub &'a Store);

/// A store with its schema at `version` (an older release's), for tests of upgrades.
pub async fn open_at_version(url: &str, version: i64) -> Result<Store, StoreError> {
    let store = Store::open_unmigrated(url).await?;
    store.migrate_to(version).await?;
    Ok(store)
}

impl Raw<'_> {
    /// Runs SQL as it is.
    pub async fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        self.0.execute_batch(sql).await
    }

    pub async fn get_client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.0.get_client(id).await
    }

    pub async fn get_client_for_auth(
        &self,
        id: &str,
    ) -> Result<Option<std::sync::Arc<ClientRecord>>, StoreError> {
        self.0.get_client_for_auth(id, DUMMY_HASH).await
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.0.list_clients().await
    }

    pub async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        self.0.insert_client(c, None).await
    }

    /// Changes a stored client in place (read, `f`, write if unchanged; no audit
    /// event); `false` when there is no such client.
    pub async fn change_client(
        &self,
        id: &str,
        f: impl Fn(&mut ClientRecord),
    ) -> Result<bool, StoreError> {
        loop {
            let Some(mut c) = self.0.get_client(id).await? else {
                return Ok(false);
            };
            f(&mut c);
            match self.0.update_client(&c, None).await? {
                crate::store::Written::Done => return Ok(true),
                crate::store::Written::Missing => return Ok(false),
                crate::store::Written::Stale => continue,
            }
        }
    }

    pub async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.0.delete_client(id, None, None).await? == crate::store::Written::Done)
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.0.list_keys().await
    }

    pub async fn rotate_key(&self, new: &KeyRecord, now: Timestamp) -> Result<(), StoreError> {
        self.0.rotate_key(new, now, None).await
    }

    pub async fn cover_key_ttl(&self, kid: &str, ttl: i64) -> Result<bool, StoreError> {
        self.0.cover_key_ttl(kid, ttl).await
    }

    pub async fn ensure_active_key(
        &self,
        alg: crate::SigningAlg,
        now: Timestamp,
    ) -> Result<KeyRecord, StoreError> {
        self.0
            .ensure_active_key(alg.as_str(), move || SigningKey::generate(alg, now))
            .await
    }

    pub async fn prune(&self, now: Timestamp, leeway: i64) -> Result<Pruned, StoreError> {
        self.0.prune(now, leeway).await
    }

    pub async fn get_opaque(&self, token_hash: &str) -> Result<Option<OpaqueRecord>, StoreError> {
        self.0.get_opaque(token_hash).await
    }

    pub async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.0.is_revoked(jti).await
    }

    /// What the client cache did, and whether it is on now.
    pub fn client_cache_stats(&self) -> Option<crate::store::CacheStats> {
        self.0.client_cache_stats()
    }

    /// A client with a chosen id and secret (for encoding edge cases such as
    /// `svc/1` and `p@ss:w/rd`), stored as the service would store it.
    pub async fn insert_client_with_secret(
        &self,
        id: &str,
        secret: &str,
        scopes: &str,
    ) -> Result<(), StoreError> {
        let mut c = ClientRecord::new(
            id.into(),
            format!("client {id}"),
            hash_secret(&ClientSecret::new(secret)),
            0,
        );
        c.scopes = crate::store::split_scopes(scopes);
        self.0.insert_client(&c, None).await
    }
}

impl AppState {
    /// The store handle the broker itself reads through (shares its client cache).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Signs a JWT for a client, as the token endpoint does after authentication.
    /// Counts, flushes: writes the usage counted so far to the store now.
    pub async fn flush_usage_now(&self) {
        self.flush_usage().await;
    }

    pub fn sign_token(
        &self,
        client_id: &str,
        audience: &str,
        scopes: &[String],
    ) -> Result<Issued, crate::IssueError> {
        self.issue_token(client_id, audience, scopes)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}
