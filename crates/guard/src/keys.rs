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

/// The keys of a JWKS document (RFC 7517 §5) that a guard can verify with, by `kid`.
///
/// Only ES256, EdDSA and RS256 keys that name their `alg` are kept; RFC 7517 §5 asks
/// an implementation to ignore keys it does not understand rather than refuse the
/// whole set, so one exotic key cannot lock every token out.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
}

impl KeySet {
    /// Reads a JWKS document as served at the issuer's `jwks_uri`. Fails when it is
    /// not a JWKS, or when not one of its keys is usable (a guard with no key could
    /// only refuse every token, which is better said at start).
    pub fn from_json(document: &[u8]) -> Result<Self, String> {
        let jwks: Jwks =
            serde_json::from_slice(document).map_err(|e| format!("not a JWKS: {e}"))?;
        let keys: HashMap<_, _> = jwks
            .keys
            .iter()
            .filter_map(VerifyingKey::from_jwk)
            .map(|k| (k.kid.clone(), Arc::new(k)))
            .collect();
        if keys.is_empty() {
            return Err("the JWKS has no usable key (ES256, EdDSA or RS256 with its alg)".into());
        }
        Ok(Self { keys })
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.keys.get(kid)
    }

    /// The `kid`s of the usable keys.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A key set and when its fetch started.
#[derive(Debug)]
struct Fetched {
    keys: KeySet,
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
    current: RwLock<Arc<Fetched>>,
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
            current: RwLock::new(Arc::new(Fetched {
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

    fn snapshot(&self) -> Arc<Fetched> {
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
                let set = Arc::new(Fetched {
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

async fn fetch(http: &reqwest::Client, uri: &str) -> Result<KeySet, String> {
    let resp = http.get(uri).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    KeySet::from_json(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EC_JWK: &str = r#"{"kty":"EC","kid":"ec","use":"sig","alg":"ES256","crv":"P-256","x":"tNb9q0oe1EQzqj-s7CDfkJ880F6zBP3_jIud5Cu5M6U","y":"x-hNSOuRgM7Sh0Yf5YQI2RTWB--k_JTzvuaRSlq8Q2Q"}"#;

    #[test]
    fn unusable_keys_are_skipped_and_an_empty_set_refused() {
        let doc = format!(
            r#"{{"keys":[{{"kty":"oct","kid":"h","alg":"HS256","k":"c2VjcmV0"}},{EC_JWK}]}}"#
        );
        let keys = KeySet::from_json(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.kids().collect::<Vec<_>>(), ["ec"]);
        assert!(keys.get("h").is_none());
        let e = KeySet::from_json(br#"{"keys":[]}"#).err();
        assert!(e.is_some_and(|e| e.contains("no usable key")));
        let e = KeySet::from_json(b"<html>").err();
        assert!(e.is_some_and(|e| e.starts_with("not a JWKS")));
    }

    fn jwk() -> impl Strategy<Value = serde_json::Value> {
        let text = prop_oneof![
            Just("ES256".to_owned()),
            Just("EdDSA".to_owned()),
            Just("RS256".to_owned()),
            "[A-Za-z0-9_-]{0,90}",
        ];
        (
            prop_oneof![Just("EC"), Just("OKP"), Just("RSA"), Just("oct")],
            "[a-z0-9]{0,8}",
            proptest::option::of(text.clone()),
            proptest::option::of(text.clone()),
            proptest::option::of(text.clone()),
            proptest::option::of(text),
        )
            .prop_map(|(kty, kid, alg, x, y, n)| {
                serde_json::json!({"kty": kty, "kid": kid, "alg": alg, "x": x, "y": y, "n": n, "e": "AQAB"})
            })
    }

    proptest! {
        /// Whatever keys a document holds, loading it never panics, and every key
        /// loaded is a JWK of the document with its kid and a supported alg.
        #[test]
        fn loading_keeps_only_listed_supported_keys(keys in proptest::collection::vec(jwk(), 0..5), real in any::<bool>()) {
            let mut keys = keys;
            if real {
                keys.push(serde_json::from_str(EC_JWK).map_err(|e| TestCaseError::fail(e.to_string()))?);
            }
            let doc = serde_json::json!({ "keys": keys }).to_string();
            match KeySet::from_json(doc.as_bytes()) {
                Ok(set) => {
                    prop_assert!(!set.is_empty());
                    for kid in set.kids() {
                        prop_assert!(keys.iter().any(|k| k["kid"] == kid));
                    }
                }
                Err(e) => prop_assert!(!real, "the real key was refused: {e}"),
            }
        }

        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = KeySet::from_json(&bytes);
        }
    }
}
