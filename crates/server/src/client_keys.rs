//! The public keys of `private_key_jwt` clients (RFC 7523 §2.2): registered with the
//! client (`jwks`), or published by the client at its `jwks_uri` (RFC 7591 §2),
//! which the broker fetches and keeps.
//!
//! A `jwks_uri` set is kept for [`FRESH_FOR`] and fetched again sooner when an
//! assertion names a key it does not have (the client rotated its key), but never
//! more often than every [`MIN_REFETCH`] per URL, whatever the assertions name: a
//! stream of made-up `kid`s costs the client's server at most four requests a
//! minute. When the URL is down or answers nonsense, the last good set stays in use.

use crate::store::ClientRecord;
use auth_broker_jwt::assertion::ClientKeys;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a fetched key set is used before it is fetched again, in seconds.
pub const FRESH_FOR: i64 = 300;
/// The least time between two fetches of one URL, in seconds.
pub const MIN_REFETCH: i64 = 15;
/// How long a fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest key set read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

struct Entry {
    /// The last good set, if any fetch succeeded.
    keys: Option<Arc<ClientKeys>>,
    /// Unix seconds of the injected clock, so tests move time instead of sleeping.
    fetched: Option<i64>,
    attempted: i64,
    /// Why the last fetch failed, when it did.
    error: Option<String>,
}

/// Key sets of clients, by URL.
pub(crate) struct ClientKeySource {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Entry>>,
    /// One fetch at a time: requests that find the set stale wait for the one fetch
    /// rather than each making their own.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ClientKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeySource").finish_non_exhaustive()
    }
}

/// The keys of a client could not be had (its `jwks_uri` failed and nothing good was
/// fetched before).
#[derive(Debug, thiserror::Error)]
#[error("the client's keys could not be fetched from its jwks_uri: {0}")]
pub(crate) struct KeysUnavailable(pub String);

impl ClientKeySource {
    /// Fails only when no HTTP client can be made (no TLS backend); never falls
    /// back to one that follows redirects or waits without a limit.
    pub fn new() -> Result<Self, reqwest::Error> {
        // The process's one crypto backend (aws-lc-rs), as everywhere else.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("auth-broker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            cache: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The keys that may have signed an assertion of `client` naming `kid`, at
    /// `now` (Unix seconds).
    pub async fn keys_for(
        &self,
        client: &ClientRecord,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<ClientKeys>, KeysUnavailable> {
        if let Some(text) = &client.jwks {
            return Ok(Arc::new(ClientKeys::from_json(text)));
        }
        match &client.jwks_uri {
            Some(uri) => self.remote(uri, kid, now).await,
            None => Ok(Arc::default()),
        }
    }

    /// The cached set when it will do; `Err` with the cached answer otherwise.
    fn cached(
        &self,
        uri: &str,
        kid: Option<&str>,
        now: i64,
    ) -> Option<Result<Arc<ClientKeys>, KeysUnavailable>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let e = cache.get(uri)?;
        let fresh = e.fetched.is_some_and(|t| now.saturating_sub(t) < FRESH_FOR);
        let has_kid = kid.is_none_or(|k| e.keys.as_ref().is_some_and(|s| s.has_kid(k)));
        if (fresh && has_kid) || now.saturating_sub(e.attempted) < MIN_REFETCH {
            return Some(match &e.keys {
                Some(k) => Ok(k.clone()),
                None => Err(KeysUnavailable(e.error.clone().unwrap_or_default())),
            });
        }
        None
    }

    async fn remote(
        &self,
        uri: &str,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<ClientKeys>, KeysUnavailable> {
        if let Some(answer) = self.cached(uri, kid, now) {
            return answer;
        }
        let _one = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(answer) = self.cached(uri, kid, now) {
            return answer;
        }
        let result = self.fetch(uri).await;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let e = cache.entry(uri.to_owned()).or_insert(Entry {
            keys: None,
            fetched: None,
            attempted: now,
            error: None,
        });
        e.attempted = now;
        match result {
            Ok(keys) => {
                metrics::counter!("auth_broker_client_jwks_fetches_total", "result" => "ok")
                    .increment(1);
                let keys = Arc::new(keys);
                e.keys = Some(keys.clone());
                e.fetched = Some(now);
                e.error = None;
                Ok(keys)
            }
            Err(why) => {
                metrics::counter!("auth_broker_client_jwks_fetches_total", "result" => "failed")
                    .increment(1);
                tracing::warn!(jwks_uri = %auth_broker_proto::escaped(uri), error = %why, kept = e.keys.is_some(), "fetching a client's jwks_uri failed");
                e.error = Some(why.clone());
                e.keys.clone().ok_or(KeysUnavailable(why))
            }
        }
    }

    async fn fetch(&self, uri: &str) -> Result<ClientKeys, String> {
        let mut resp = self
            .http
            .get(uri)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("no answer within {} s", FETCH_TIMEOUT.as_secs())
                } else {
                    std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
                }
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("it answered {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!(
                    "the answer is larger than {} KiB",
                    MAX_JWKS_BYTES / 1024
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let set: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("the answer is not JSON: {e}"))?;
        let keys = ClientKeys::from_jwks(&set);
        if keys.is_empty() {
            return Err(format!(
                "the answer holds no usable key ({})",
                keys.skipped().join("; ")
            ));
        }
        Ok(keys)
    }
}
