//! The issuer's JWKS, cached, refetched on an unknown `kid` at most once per
//! interval, and kept while the issuer is unreachable.
//!
//! A request with an unknown `kid` waits for a fetch that starts after it arrived
//! (one fetch serves every request waiting at that moment), so a token signed by a
//! just-rotated key passes as soon as the issuer publishes the key, while a flood of
//! forged `kid`s costs the issuer at most one fetch per interval.

use auth_broker_jwt::VerifyingKey;
use auth_broker_proto::Jwks;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
    fetched: Instant,
}

#[derive(Debug, Default)]
struct FetchState {
    /// When the last fetch started, successful or not.
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
}

/// The answer to "which key is `kid`?".
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(Arc<VerifyingKey>),
    /// The JWKS, freshly fetched, does not have it.
    Unknown,
    /// Not in the last good JWKS, and fetching a newer one failed.
    Unreachable(String),
}

#[derive(Debug)]
pub(crate) struct KeyCache {
    http: reqwest::Client,
    pub(crate) uri: String,
    current: RwLock<Arc<KeySet>>,
    fetch: tokio::sync::Mutex<FetchState>,
    min_interval: Duration,
    max_age: Duration,
    refreshing: AtomicBool,
    pub(crate) fetches: AtomicU64,
}

impl KeyCache {
    /// Fetches the JWKS once; fails if it cannot.
    pub(crate) async fn new(
        http: reqwest::Client,
        uri: String,
        min_interval: Duration,
        max_age: Duration,
    ) -> Result<Self, String> {
        let fetches = AtomicU64::new(1);
        let started = Instant::now();
        let keys = fetch(&http, &uri).await?;
        Ok(Self {
            http,
            uri,
            current: RwLock::new(Arc::new(KeySet {
                keys,
                fetched: started,
            })),
            fetch: tokio::sync::Mutex::new(FetchState {
                last_attempt: Some(started),
                last_error: None,
            }),
            min_interval,
            max_age,
            refreshing: AtomicBool::new(false),
            fetches,
        })
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) async fn get(self: &Arc<Self>, kid: &str) -> Lookup {
        let arrived = Instant::now();
        let set = self.snapshot();
        if let Some(k) = set.keys.get(kid) {
            if set.fetched.elapsed() > self.max_age && !self.refreshing.swap(true, Ordering::AcqRel)
            {
                // Old enough to look again (a key may have been withdrawn); off the
                // request's path.
                let me = self.clone();
                tokio::spawn(async move {
                    let mut st = me.fetch.lock().await;
                    me.refresh(&mut st).await;
                    me.refreshing.store(false, Ordering::Release);
                });
            }
            return Lookup::Found(k.clone());
        }
        let mut st = self.fetch.lock().await;
        if st.last_attempt.is_none_or(|t| t < arrived) {
            // No fetch has started since this request arrived: wait out the
            // interval since the last one, then fetch.
            if let Some(last) = st.last_attempt {
                let next = last + self.min_interval;
                if next > Instant::now() {
                    tokio::time::sleep_until(next.into()).await;
                }
            }
            self.refresh(&mut st).await;
        }
        match self.snapshot().keys.get(kid) {
            Some(k) => Lookup::Found(k.clone()),
            None => match &st.last_error {
                Some(e) => Lookup::Unreachable(e.clone()),
                None => Lookup::Unknown,
            },
        }
    }

    async fn refresh(&self, st: &mut FetchState) {
        let started = Instant::now();
        st.last_attempt = Some(started);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match fetch(&self.http, &self.uri).await {
            Ok(keys) => {
                st.last_error = None;
                let set = Arc::new(KeySet {
                    keys,
                    fetched: started,
                });
                match self.current.write() {
                    Ok(mut g) => *g = set,
                    Err(p) => *p.into_inner() = set,
                }
            }
            Err(e) => {
                tracing::warn!(uri = %self.uri, error = %e, "JWKS fetch failed; keeping the last good key set");
                st.last_error = Some(e);
            }
        }
    }
}

async fn fetch(
    http: &reqwest::Client,
    uri: &str,
) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    let resp = http.get(uri).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let jwks: Jwks = resp.json().await.map_err(|e| format!("not a JWKS: {e}"))?;
    let keys: HashMap<_, _> = jwks
        .keys
        .iter()
        .filter_map(VerifyingKey::from_jwk)
        .map(|k| (k.kid.clone(), Arc::new(k)))
        .collect();
    if keys.is_empty() {
        return Err("the JWKS has no usable key (ES256, EdDSA or RS256 with its alg)".into());
    }
    Ok(keys)
}
