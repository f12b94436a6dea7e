//! The token manager: one cached token, refreshed ahead of expiry, one refresh at a time.

use crate::clock::{Clock, SystemClock};
use crate::config::{CacheKey, TokenConfig};
use crate::error::TokenError;
use crate::fetch::{self, TokenScheme};
use auth_broker_proto::{AccessToken, TokenResponse};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// A token handed out by a [`TokenManager`]. Cheap to clone (one reference count).
#[derive(Clone)]
pub struct Token(Arc<Cached>);

struct Cached {
    response: TokenResponse,
    /// Every member of the response, as sent.
    members: serde_json::Map<String, serde_json::Value>,
    scheme: TokenScheme,
    authorization: http::HeaderValue,
    received: Instant,
    refresh_at: Instant,
    usable_until: Instant,
    expires_at: Instant,
    /// The background refresh met a permanent error for this token: do not start
    /// another one; callers get this token until it is no longer usable, then the
    /// error.
    background_gave_up: AtomicBool,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &self.0.response.access_token)
            .field("scheme", &self.0.scheme)
            .field("scope", &self.0.response.scope)
            .field("expires_in", &self.0.response.expires_in)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.0.response.access_token
    }

    /// `Bearer <token>`, or `DPoP <token>` for a DPoP-bound token, ready for the
    /// `Authorization` header (marked sensitive, so `http`'s `Debug` does not print it).
    /// A DPoP-bound token also needs a proof with every request: the middleware and the
    /// layer add it; elsewhere see [`crate::DpopKey::proof`].
    pub fn authorization(&self) -> &http::HeaderValue {
        &self.0.authorization
    }

    /// Bearer, or DPoP when the token endpoint bound the token to the DPoP key.
    pub fn scheme(&self) -> TokenScheme {
        self.0.scheme
    }

    /// The RFC 6749 §5.1 members of the token response.
    pub fn response(&self) -> &TokenResponse {
        &self.0.response
    }

    /// Every member of the token response as sent (`refresh_token`, `id_token` and
    /// extensions too). Holds the access token: do not log it.
    pub fn members(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0.members
    }

    /// When the token request was sent (the start of the token's life, on the local
    /// monotonic clock).
    pub fn received(&self) -> Instant {
        self.0.received
    }

    /// When the background refresh starts.
    pub fn refresh_at(&self) -> Instant {
        self.0.refresh_at
    }

    /// After this the token is not handed out.
    pub fn usable_until(&self) -> Instant {
        self.0.usable_until
    }

    /// `received + expires_in`.
    pub fn expires_at(&self) -> Instant {
        self.0.expires_at
    }

    /// Whether both are the same token received once.
    pub fn same(&self, other: &Token) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Caches the token of one (token URL, client id, scope, audience, DPoP key) and keeps it
/// fresh.
///
/// - [`TokenManager::token`] returns the cached token without any I/O while it is
///   usable (see [`crate::RefreshPolicy`] for when that is and worked examples).
/// - Once the refresh point has passed, the first caller starts one background refresh
///   and every caller keeps getting the cached token; the background refresh retries
///   transient failures (exponential backoff with full jitter, at least `Retry-After`)
///   for as long as the cached token is usable, so an outage shorter than the token's
///   remaining life is invisible.
/// - With no usable token, callers wait for one token request, however many they are:
///   the others queue and take its result (token or error). Transient failures are
///   retried up to [`crate::RetryPolicy::max_attempts`] times; permanent ones such as
///   `invalid_client` come back at once with the server's `error` and
///   `error_description`.
///
/// Clones share the cache.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

/// What one caller-driven token fetch came to.
type Outcome = Result<Arc<Cached>, TokenError>;

struct Inner {
    config: TokenConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    cache: RwLock<Option<Arc<Cached>>>,
    /// Held while a token request is in flight: the single flight.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Bumped when a caller-driven token fetch finishes (token or final error).
    generation: AtomicU64,
    /// The outcome of the caller-driven fetch of that generation: the callers that
    /// waited for it take it, usable or not (a token of `expires_in: 0` included).
    last: Mutex<Option<(u64, Outcome)>>,
    /// Why the latest token request failed, until one succeeds; for
    /// [`TokenError::NotYet`].
    latest_failure: Mutex<Option<TokenError>>,
    background: AtomicBool,
    requests: AtomicU64,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("token_url", &self.inner.config.token_url)
            .field("client_id", &self.inner.config.client_id)
            .field("scope", &self.inner.config.scope)
            .field("audience", &self.inner.config.audience)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// A manager with the system clock and an HTTP client (rustls on aws-lc-rs, the
    /// system's roots, the configuration's client certificate) that follows no redirect
    /// ([`crate::token_http_client`]).
    pub fn new(config: TokenConfig) -> Result<Self, TokenError> {
        let http = http_client_for(&config)?;
        Ok(Self::with_parts(config, http, Arc::new(SystemClock)))
    }

    /// A manager with a given HTTP client and clock. The client is for token requests
    /// only: build it with [`crate::token_http_client`], so it follows no redirect (a
    /// redirect it follows anyway makes the answer a [`TokenError::Redirect`], but the
    /// credentials have gone to the other address by then).
    pub fn with_parts(config: TokenConfig, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                clock,
                cache: RwLock::new(None),
                refresh_lock: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
                last: Mutex::new(None),
                latest_failure: Mutex::new(None),
                background: AtomicBool::new(false),
                requests: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TokenConfig {
        &self.inner.config
    }

    /// The clock (monotonic time and the wall clock of assertions and proofs).
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// How many token requests this manager has sent.
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The cached token, usable or not, without any I/O.
    pub fn cached(&self) -> Option<Token> {
        self.inner.cached().map(Token)
    }

    /// A usable token: the cached one, or a new one.
    pub async fn token(&self) -> Result<Token, TokenError> {
        if let Some(t) = self.inner.cached() {
            let now = self.inner.clock.now();
            if now < t.usable_until {
                if now >= t.refresh_at {
                    self.start_background(&t);
                }
                return Ok(Token(t));
            }
        }
        self.inner.clone().fetch_for_caller().await
    }

    /// A usable token if one can be had within `wait` (on the manager's clock);
    /// otherwise [`TokenError::NotYet`] at once, while the token request goes on in the
    /// background for the next caller. For callers that must answer promptly, such as
    /// a proxy that answers `503` + `Retry-After` rather than hold a request (RFC 9110
    /// §15.6.4). Needs a tokio runtime.
    pub async fn token_within(&self, wait: Duration) -> Result<Token, TokenError> {
        if let Some(t) = self.inner.cached()
            && self.inner.clock.now() < t.usable_until
        {
            return self.token().await;
        }
        let manager = self.clone();
        let fetch = tokio::spawn(async move { manager.token().await });
        let timeout = self.inner.clock.sleep(wait);
        tokio::select! {
            joined = fetch => joined.unwrap_or_else(|e| Err(TokenError::Config(format!("the token request task failed: {e}")))),
            () = timeout => Err(TokenError::NotYet {
                waited: wait,
                last: self
                    .inner
                    .latest_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
                    .map(Box::new),
            }),
        }
    }

    /// Drops `token` from the cache if it is still the cached one (an API answered
    /// `401` to it), so the next [`TokenManager::token`] fetches a new one. Many
    /// callers invalidating the same token cause one refresh.
    pub fn invalidate(&self, token: &Token) {
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.as_ref().is_some_and(|c| Arc::ptr_eq(c, &token.0)) {
            *cache = None;
        }
    }

    fn start_background(&self, t: &Arc<Cached>) {
        if t.background_gave_up.load(Ordering::Relaxed) {
            return;
        }
        if self.inner.background.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                let inner = self.inner.clone();
                h.spawn(async move {
                    inner.clone().background_refresh().await;
                    inner.background.store(false, Ordering::Release);
                });
            }
            Err(_) => self.inner.background.store(false, Ordering::Release),
        }
    }
}

impl Inner {
    fn cached(&self) -> Option<Arc<Cached>> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn usable(&self) -> Option<Arc<Cached>> {
        let now = self.clock.now();
        self.cached().filter(|t| now < t.usable_until)
    }

    /// The backoff before retry `attempt` (0-based) after `err`: full jitter, and at
    /// least the server's `Retry-After`.
    fn delay(&self, attempt: u32, err: &TokenError) -> Duration {
        let jittered = self.config.retry.ceiling(attempt).mul_f64(fastrand::f64());
        match err.retry_after() {
            Some(ra) => ra.max(jittered),
            None => jittered,
        }
    }

    /// One token request; stores the token on success.
    async fn fetch_and_store(&self) -> Result<Arc<Cached>, TokenError> {
        let result = self.fetch_once().await;
        *self
            .latest_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = result.as_ref().err().cloned();
        result
    }

    async fn fetch_once(&self) -> Result<Arc<Cached>, TokenError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let sent = self.clock.now();
        let answer = fetch::fetch(&self.http, &self.config, &*self.clock).await?;
        for l in &answer.leniencies {
            tracing::debug!(token_url = %self.config.token_url, "token response read leniently: {l}");
        }
        if self.config.dpop.is_some() && answer.scheme == TokenScheme::Bearer {
            tracing::warn!(
                token_url = %self.config.token_url,
                "a DPoP proof was sent but the token endpoint answered token_type bearer: it does not bind tokens to the key; the token is used as a Bearer token"
            );
        }
        let scheme = answer.scheme;
        let response = answer.response;
        let schedule = self
            .config
            .refresh
            .schedule(response.expires_in, fastrand::f64());
        if schedule.capped {
            tracing::warn!(
                token_url = %self.config.token_url,
                expires_in = response.expires_in,
                cap_s = schedule.lifetime.as_secs(),
                "the token endpoint gave a lifetime longer than the longest believed; the token is treated as living {} s",
                schedule.lifetime.as_secs()
            );
        }
        let mut authorization = http::HeaderValue::try_from(format!(
            "{} {}",
            scheme.as_str(),
            response.access_token.expose_secret()
        ))
        .map_err(|_| TokenError::UnexpectedResponse {
            status: 200,
            reason: Some(
                "the access_token contains characters not allowed in an HTTP header".into(),
            ),
            body: String::new(),
            retry_after: None,
        })?;
        authorization.set_sensitive(true);
        // `checked_add`: a policy may allow lifetimes past what an `Instant` can hold.
        let at = |d: Duration| sent.checked_add(d).unwrap_or(sent);
        let cached = Arc::new(Cached {
            response,
            members: answer.members,
            scheme,
            authorization,
            received: sent,
            refresh_at: at(schedule.refresh_after),
            usable_until: at(schedule.usable_for),
            expires_at: at(schedule.lifetime),
            background_gave_up: AtomicBool::new(false),
        });
        *self.cache.write().unwrap_or_else(PoisonError::into_inner) = Some(cached.clone());
        tracing::debug!(
            token_url = %self.config.token_url,
            client_id = %self.config.client_id,
            lifetime_s = schedule.lifetime.as_secs_f64(),
            "fetched a new access token"
        );
        Ok(cached)
    }

    /// A caller without a usable token: join or make the one token request.
    ///
    /// Callers that were waiting while a request was in flight take its outcome,
    /// token or error, even a token that is not usable any more (`expires_in: 0`):
    /// otherwise each of them would make its own request in turn, and a short-lived
    /// token would undo the single flight.
    async fn fetch_for_caller(self: Arc<Self>) -> Result<Token, TokenError> {
        let seen = self.generation.load(Ordering::Acquire);
        let _guard = self.refresh_lock.lock().await;
        if let Some(t) = self.usable() {
            return Ok(Token(t));
        }
        let current = self.generation.load(Ordering::Acquire);
        if current != seen {
            let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((g, outcome)) = last.as_ref()
                && *g == current
            {
                return outcome.clone().map(Token);
            }
        }
        let mut attempt = 0;
        let result = loop {
            match self.fetch_and_store().await {
                Ok(t) => break Ok(t),
                Err(e) => {
                    attempt += 1;
                    if !e.is_transient() || attempt >= self.config.retry.max_attempts {
                        break Err(e);
                    }
                    if e.retry_after()
                        .is_some_and(|ra| ra > self.config.retry.max_retry_after)
                    {
                        break Err(e);
                    }
                    let d = self.delay(attempt - 1, &e);
                    tracing::warn!(
                        token_url = %self.config.token_url,
                        error = %e,
                        retry_in_ms = d.as_millis() as u64,
                        "token request failed; retrying"
                    );
                    self.clock.sleep(d).await;
                }
            }
        };
        let g = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((g, result.clone()));
        result.map(Token)
    }

    /// Refreshes ahead of expiry; retries transient failures while the cached token
    /// is usable. Holds the single-flight lock only while a request is in flight.
    async fn background_refresh(self: Arc<Self>) {
        let mut attempt = 0;
        loop {
            let guard = self.refresh_lock.lock().await;
            let now = self.clock.now();
            let Some(current) = self.cached() else {
                return;
            };
            if now < current.refresh_at || now >= current.usable_until {
                // Someone refreshed already, or callers now fetch for themselves.
                return;
            }
            let result = self.fetch_and_store().await;
            drop(guard);
            match result {
                Ok(_) => return,
                Err(e) if !e.is_transient() => {
                    tracing::warn!(
                        token_url = %self.config.token_url,
                        error = %e,
                        "background token refresh failed permanently; serving the cached token until it expires"
                    );
                    current.background_gave_up.store(true, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    let d = self.delay(attempt, &e);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(
                        token_url = %self.config.token_url,
                        error = %e,
                        retry_in_ms = d.as_millis() as u64,
                        "background token refresh failed; serving the cached token and retrying"
                    );
                    self.clock.sleep(d).await;
                }
            }
        }
    }
}

/// The HTTP client for `config`'s token requests: no redirects followed, its client
/// certificate presented.
fn http_client_for(config: &TokenConfig) -> Result<reqwest::Client, TokenError> {
    let mut builder = reqwest::Client::builder();
    if let Some(id) = &config.tls_identity {
        builder = id.apply(builder);
    }
    crate::token_http_client(builder)
}

/// Token managers shared by key: one cached token per (token URL, client id, scope,
/// audience, DPoP key), however many parts of a program ask.
#[derive(Clone, Debug, Default)]
pub struct TokenManagers {
    map: Arc<Mutex<HashMap<CacheKey, TokenManager>>>,
}

impl TokenManagers {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The manager for `config`'s key, created with `make` when there is none yet.
    pub fn get_or_insert_with(
        &self,
        config: TokenConfig,
        make: impl FnOnce(TokenConfig) -> TokenManager,
    ) -> TokenManager {
        let key = config.key();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(key).or_insert_with(|| make(config)).clone()
    }

    /// The manager for `config`'s key, with the system clock and a client that follows
    /// no redirect ([`crate::token_http_client`]).
    pub fn get(&self, config: TokenConfig) -> Result<TokenManager, TokenError> {
        let http = http_client_for(&config)?;
        Ok(self.get_or_insert_with(config, |c| {
            TokenManager::with_parts(c, http, Arc::new(SystemClock))
        }))
    }
}
