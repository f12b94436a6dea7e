//! The [`Guard`]: configuration, discovery, and validation of one token.

use crate::cache::TtlCache;
use crate::claims::Claims;
use crate::clock::{Clock, SystemClock};
use crate::error::{BuildError, GuardError};
use crate::introspect::Introspector;
use crate::keys::{KeyCache, KeySet, Lookup};
use crate::local::Judge;
use auth_broker_jwt::dpop::{PresentationFault, ProofFault, ProofPolicy, ProofRequest};
use auth_broker_jwt::mtls::ClientCertificate;
use auth_broker_jwt::replay::{NotUsable, ProofReplay};
use auth_broker_jwt::{Claim, Fault, Policy};
use auth_broker_proto::bearer::Scheme;
use auth_broker_proto::text::escaped;
use auth_broker_proto::{AuthorizationServerMetadata, ClientSecret};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Clock skew allowed on `exp`, `nbf` and `iat` unless set otherwise: the
/// judgement's default, which the broker's `token-info` uses too.
pub use auth_broker_jwt::DEFAULT_LEEWAY;
/// The shortest time between two JWKS fetches caused by unknown `kid`s. A forged-`kid`
/// flood costs the issuer one fetch per this interval; a token signed by a freshly
/// rotated key waits at most this long.
pub const DEFAULT_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(2);
/// After this long the JWKS is fetched again in the background (a key may have been
/// withdrawn), without delaying requests.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// How many validated tokens are remembered.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// How long an active introspection result is reused (never past the token's `exp`).
pub const DEFAULT_INTROSPECTION_POSITIVE_TTL: Duration = Duration::from_secs(30);
/// How long an inactive introspection result is reused.
pub const DEFAULT_INTROSPECTION_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// The request header of a DPoP proof (RFC 9449 §4.1).
const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

/// How a guard decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Verify JWT access tokens (RFC 9068) locally against the issuer's JWKS.
    Jwt,
    /// Ask the issuer's RFC 7662 introspection endpoint (opaque tokens).
    Introspection,
    /// Ask the issuer's own [`Judge`]: a guard inside the authorization server.
    Local,
}

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuardStats {
    /// JWKS fetches, the first one included.
    pub jwks_fetches: u64,
    /// Introspection requests sent.
    pub introspections: u64,
    /// Validations answered from the cache.
    pub cache_hits: u64,
    /// Results held in the cache now.
    pub cached: usize,
}

type CachedResult = Result<Arc<Claims>, GuardError>;

#[derive(Debug)]
enum Backend {
    Jwt(Arc<KeyCache>),
    Introspection(Introspector),
    Local(Arc<dyn Judge>),
}

#[derive(Debug)]
struct Inner {
    /// What a JWT must be to pass (the broker's `token-info` judges by the same).
    policy: Policy,
    /// The same for an RFC 7662 answer, which need not carry `iss` or `exp` (§2.2).
    introspection_policy: Policy,
    realm: String,
    clock: Arc<dyn Clock>,
    backend: Backend,
    cache: TtlCache<CachedResult>,
    positive_ttl: i64,
    negative_ttl: i64,
    introspections: AtomicU64,
    cache_hits: AtomicU64,
    /// The API's public origin (and path prefix), for a DPoP proof's `htu`.
    public_url: Option<String>,
    /// The header a trusted TLS-terminating proxy puts the client's certificate in.
    cert_header: Option<http::HeaderName>,
    /// DPoP proofs used here, each once (per process: RFC 9449 §11.1).
    replay: ProofReplay,
    proof_policy: ProofPolicy,
}

/// What the guard reads of a request: the `Authorization` and `DPoP` headers, and
/// for a key-bound token the method and URL (a DPoP proof names them) and the TLS
/// client certificate ([`ClientCertificate`] in the extensions, put there by the
/// server that terminates TLS).
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a http::HeaderMap,
    pub extensions: &'a http::Extensions,
}

impl<'a> RequestView<'a> {
    pub fn of<B>(req: &'a http::Request<B>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }

    pub fn of_parts(parts: &'a http::request::Parts) -> Self {
        Self {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: &parts.extensions,
        }
    }
}

/// Validates bearer tokens for one API (one expected audience). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

/// Builds a [`Guard`]; start with [`Guard::builder`].
#[derive(Debug)]
pub struct GuardBuilder {
    issuer: String,
    audience: Option<String>,
    realm: Option<String>,
    leeway: Duration,
    discovery_base: Option<String>,
    jwks_uri: Option<String>,
    introspection: Option<(String, ClientSecret)>,
    introspection_endpoint: Option<String>,
    clock: Arc<dyn Clock>,
    cache_capacity: usize,
    refetch_interval: Duration,
    jwks_max_age: Duration,
    positive_ttl: Duration,
    negative_ttl: Duration,
    http: Option<reqwest::Client>,
    public_url: Option<String>,
    cert_header: Option<http::HeaderName>,
}

impl Guard {
    /// A guard for tokens from `issuer` (the `iss` the broker writes, its
    /// `--issuer`); metadata is read from `{issuer}/.well-known/oauth-authorization-server`.
    pub fn builder(issuer: impl Into<String>) -> GuardBuilder {
        GuardBuilder {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: None,
            realm: None,
            leeway: DEFAULT_LEEWAY,
            discovery_base: None,
            jwks_uri: None,
            introspection: None,
            introspection_endpoint: None,
            clock: Arc::new(SystemClock),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            refetch_interval: DEFAULT_JWKS_REFETCH_INTERVAL,
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
            positive_ttl: DEFAULT_INTROSPECTION_POSITIVE_TTL,
            negative_ttl: DEFAULT_INTROSPECTION_NEGATIVE_TTL,
            http: None,
            public_url: None,
            cert_header: None,
        }
    }

    pub fn mode(&self) -> Mode {
        match self.inner.backend {
            Backend::Jwt(_) => Mode::Jwt,
            Backend::Introspection(_) => Mode::Introspection,
            Backend::Local(_) => Mode::Local,
        }
    }

    pub fn issuer(&self) -> &str {
        self.inner.policy.issuer()
    }

    pub fn audience(&self) -> &str {
        self.inner
            .policy
            .audiences()
            .first()
            .map_or("", String::as_str)
    }

    /// What a JWT must be to pass here.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The `realm` of this guard's `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    pub fn stats(&self) -> GuardStats {
        GuardStats {
            jwks_fetches: match &self.inner.backend {
                Backend::Jwt(k) => k.fetches.load(Ordering::Relaxed),
                Backend::Introspection(_) | Backend::Local(_) => 0,
            },
            introspections: self.inner.introspections.load(Ordering::Relaxed),
            cache_hits: self.inner.cache_hits.load(Ordering::Relaxed),
            cached: self.inner.cache.len(),
        }
    }

    /// Checks a request: its token (`Authorization: Bearer`, or `DPoP` with a proof
    /// for a key-bound token), the token's binding, and the scopes a route requires
    /// (every one of `required` must be granted).
    pub async fn check(
        &self,
        req: RequestView<'_>,
        required: &[String],
    ) -> Result<Arc<Claims>, GuardError> {
        let (scheme, token) = auth_broker_proto::bearer::parse_with_dpop(
            req.headers
                .get_all(http::header::AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
        )?;
        let claims = self.judged(token).await?;
        self.check_binding(&claims, scheme == Scheme::Dpop, token, &req)?;
        require_scopes(&claims, required)?;
        Ok(claims)
    }

    /// Validates a bare token presented as a bearer token (what follows `Bearer `).
    /// A token validated before is answered from the cache while it is still within
    /// its validity.
    ///
    /// The cache files a JWT under its low-S form (`auth_broker_jwt::ecdsa`): the
    /// two encodings of one ES256 signature are one entry, found without a second
    /// signature check. The key is always the whole token, signature included,
    /// never something (a `kid` and `jti`) that could be presented without it.
    ///
    /// A token bound to a key (DPoP `cnf.jkt`, RFC 9449 §7.1; a certificate
    /// `cnf.x5t#S256`, RFC 8705 §3) is refused: it goes with a proof or a
    /// certificate, which only [`Guard::check`] sees.
    pub async fn validate(&self, token: &str) -> Result<Arc<Claims>, GuardError> {
        let claims = self.judged(token).await?;
        match claims.cnf.as_ref() {
            Some(c) if c.jkt.is_some() => Err(PresentationFault::BoundAsBearer.into()),
            Some(c) if c.x5t_s256.is_some() => Err(GuardError::Certificate(
                auth_broker_jwt::mtls::CertificateFault::NoCertificate,
            )),
            _ => Ok(claims),
        }
    }

    /// The token's judgement, from the cache or made now; bindings not checked.
    async fn judged(&self, token: &str) -> Result<Arc<Claims>, GuardError> {
        let now = self.inner.clock.now_secs();
        match self.cached(token, now) {
            Some(hit) => hit,
            // The checks, a JWKS fetch or an introspection request live in a future
            // of their own, boxed, so that a cache hit (the common case) does not
            // carry their state.
            None => Box::pin(self.validate_miss(token, now)).await,
        }
    }

    /// The token's binding holds for this request: a DPoP token comes with the
    /// `DPoP` scheme and a fresh proof of this request by its key (RFC 9449 §7.1,
    /// each proof used once here), an unbound one as `Bearer`; a certificate-bound
    /// token over a connection presenting its certificate (RFC 8705 §3).
    fn check_binding(
        &self,
        claims: &Claims,
        dpop_scheme: bool,
        token: &str,
        req: &RequestView<'_>,
    ) -> Result<(), GuardError> {
        let cnf = claims.cnf.as_ref();
        let jkt = cnf.and_then(|c| c.jkt.as_deref());
        if dpop_scheme || jkt.is_some() {
            let now = self.inner.clock.now_secs();
            let url = self.proof_url(req);
            let request = ProofRequest {
                method: req.method.as_str(),
                url: &url,
                access_token: Some(token),
                nonce: None,
            };
            let policy = &self.inner.proof_policy;
            let proofs = req
                .headers
                .get_all(DPOP)
                .iter()
                .map(|v| v.to_str().unwrap_or("\u{0}"));
            let proof = auth_broker_jwt::dpop::judge_presentation(
                dpop_scheme,
                jkt,
                proofs,
                &request,
                policy,
                now,
            )?;
            if let Some(proof) = proof {
                self.inner
                    .replay
                    .use_once(&proof, policy, now)
                    .map_err(|e| match e {
                        NotUsable::Replayed => PresentationFault::Proof(ProofFault::Replayed).into(),
                        NotUsable::Full => GuardError::Unavailable(
                            "this API has seen too many DPoP proofs in the last minutes to remember another; retry shortly".into(),
                        ),
                    })?;
            }
        }
        if let Some(x5t) = cnf.and_then(|c| c.x5t_s256.as_deref()) {
            let from_header;
            let cert = match req.extensions.get::<ClientCertificate>() {
                Some(c) => Some(c),
                None => {
                    from_header = self.header_certificate(req.headers)?;
                    from_header.as_ref()
                }
            };
            auth_broker_jwt::mtls::check_binding(x5t, cert)?;
        }
        Ok(())
    }

    /// The certificate a trusted proxy forwarded, when the guard trusts one.
    fn header_certificate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Option<ClientCertificate>, GuardError> {
        let Some(name) = &self.inner.cert_header else {
            return Ok(None);
        };
        headers
            .get(name)
            .map(|v| ClientCertificate::from_header(v.as_bytes()))
            .transpose()
            .map_err(GuardError::Refused)
    }

    /// The URL a proof of this request names as `htu` (RFC 9449 §4.2): without query
    /// and fragment; the path as the client sent it, before any router nesting.
    fn proof_url(&self, req: &RequestView<'_>) -> String {
        let path = req
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(req.uri.path(), |o| o.0.path());
        match &self.inner.public_url {
            Some(base) => format!("{base}{path}"),
            None => {
                let host = req
                    .uri
                    .authority()
                    .map(|a| a.as_str())
                    .or_else(|| {
                        req.headers
                            .get(http::header::HOST)
                            .and_then(|h| h.to_str().ok())
                    })
                    .unwrap_or_default();
                let scheme = req.uri.scheme_str().unwrap_or("https");
                format!("{scheme}://{host}{path}")
            }
        }
    }

    fn cached(&self, key: &str, now: i64) -> Option<CachedResult> {
        let hit = self.inner.cache.get(key, now)?;
        self.inner.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(hit)
    }

    async fn validate_miss(&self, token: &str, now: i64) -> Result<Arc<Claims>, GuardError> {
        match &self.inner.backend {
            Backend::Jwt(keys) => {
                // Only with a cache: a low-S token (every one a current broker
                // signs) costs one base64 decode of its signature.
                let low_s = self
                    .inner
                    .cache
                    .enabled()
                    .then(|| auth_broker_jwt::ecdsa::low_s_form(token))
                    .flatten();
                let key = low_s.as_deref().unwrap_or(token);
                if low_s.is_some()
                    && let Some(hit) = self.cached(key, now)
                {
                    return hit;
                }
                self.validate_jwt(keys, token, key, now).await
            }
            Backend::Introspection(i) => self.validate_introspected(i, token, now).await,
            // Never cached here: the issuer answers from memory, and its verdict may
            // change at the next request (a revocation).
            Backend::Local(judge) => judge.judge(token, &self.inner.policy).await.map(Arc::new),
        }
    }

    async fn validate_jwt(
        &self,
        keys: &Arc<KeyCache>,
        token: &str,
        cache_key: &str,
        now: i64,
    ) -> Result<Arc<Claims>, GuardError> {
        let read = self.inner.policy.read(token)?;
        let key = match keys.get(read.kid()).await {
            Lookup::Found(k) => Some(k),
            Lookup::Unknown => None,
            Lookup::Unreachable(e) => {
                return Err(GuardError::Unavailable(format!(
                    "the token is signed by key '{}', which is not in the last JWKS fetched, and the JWKS at {} cannot be fetched now ({e}); retry shortly",
                    escaped(read.kid()),
                    keys.uri
                )));
            }
        };
        let verified = read.finish(key.as_deref(), now)?;
        let (from, until) = (verified.valid_from, verified.valid_until);
        let claims = Arc::new(Claims::from(verified));
        self.inner
            .cache
            .insert(cache_key, Ok(claims.clone()), from, until, now);
        Ok(claims)
    }

    async fn validate_introspected(
        &self,
        introspector: &Introspector,
        token: &str,
        now: i64,
    ) -> Result<Arc<Claims>, GuardError> {
        self.inner.introspections.fetch_add(1, Ordering::Relaxed);
        let result = match introspector.introspect(token).await {
            Err(e) => {
                tracing::warn!(error = %e, "token introspection failed");
                return Err(GuardError::Unavailable(e));
            }
            Ok(None) => Err(GuardError::Inactive),
            Ok(Some(answer)) => self
                .inner
                .introspection_policy
                .judge_claims(answer, now)
                .map_err(GuardError::from),
        };
        match result {
            Ok(verified) => {
                // Reused for a short while, and never past the token's own `exp`.
                let until = verified
                    .valid_until
                    .min(verified.claims.exp)
                    .min(now.saturating_add(self.inner.positive_ttl));
                let claims = Arc::new(Claims::from(verified));
                self.inner
                    .cache
                    .insert(token, Ok(claims.clone()), now, until, now);
                Ok(claims)
            }
            Err(e) => {
                self.inner.cache.insert(
                    token,
                    Err(e.clone()),
                    now,
                    now.saturating_add(self.inner.negative_ttl),
                    now,
                );
                Err(e)
            }
        }
    }
}

/// Validates a JWT access token against a key set the caller holds, at clock second
/// `now`: the judgement a JWT-mode [`Guard`] makes (RFC 9068 §4), without fetching,
/// refetching or caching. For callers that have the issuer's JWKS already (a
/// batch job, a test, an air-gapped verifier) and for fuzzing the validation.
pub fn validate_with_keys(
    token: &str,
    keys: &KeySet,
    policy: &Policy,
    now: i64,
) -> Result<Claims, Fault> {
    policy
        .judge(token, |kid| keys.get(kid).map(|k| &**k), now)
        .map(Claims::from)
}

/// RFC 6750 §3.1 `insufficient_scope` unless every `required` scope is granted.
pub fn require_scopes(claims: &Claims, required: &[String]) -> Result<(), GuardError> {
    let missing: Vec<String> = required
        .iter()
        .filter(|r| !claims.has_scope(r))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GuardError::InsufficientScope {
            required: required.to_vec(),
            granted: claims.scopes.clone(),
            missing,
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The claims an RFC 7662 answer must carry: only `aud`, which the guard compares
/// (§2.2 makes every member but `active` optional; `iss` and `exp`, when present,
/// are still checked).
const INTROSPECTION_REQUIRED: [Claim; 1] = [Claim::Aud];

impl GuardBuilder {
    /// The `aud` this API accepts. Default: the issuer (what the broker writes for a
    /// client without an audience setting).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The `realm` in `WWW-Authenticate` challenges. Default: the audience.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Clock skew allowed on `exp`, `nbf` and `iat` ([`DEFAULT_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Where to reach the issuer when its public name is not reachable from here (a
    /// proxy, a container network, a test): metadata is read from
    /// `{base}/.well-known/oauth-authorization-server`, and endpoint URLs in it that
    /// start with the issuer are rewritten to start with `base`. The `iss` check
    /// still uses the issuer.
    pub fn discovery_base(mut self, base: impl Into<String>) -> Self {
        self.discovery_base = Some(base.into().trim_end_matches('/').to_owned());
        self
    }

    /// Use this JWKS URL instead of the metadata's `jwks_uri` (skips discovery in JWT mode).
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Switches to introspection mode (RFC 7662): every new token is sent to the
    /// issuer's introspection endpoint, authenticated as this client.
    pub fn introspection(mut self, client_id: impl Into<String>, secret: ClientSecret) -> Self {
        self.introspection = Some((client_id.into(), secret));
        self
    }

    /// Use this introspection endpoint instead of the metadata's
    /// `introspection_endpoint` (skips discovery in introspection mode).
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.introspection_endpoint = Some(url.into());
        self
    }

    /// The time source for `exp`/`nbf`/`iat` and cache expiry.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many validated tokens to remember ([`DEFAULT_CACHE_CAPACITY`]); `0` turns
    /// the cache off.
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.cache_capacity = n;
        self
    }

    /// [`DEFAULT_JWKS_REFETCH_INTERVAL`].
    pub fn jwks_refetch_interval(mut self, d: Duration) -> Self {
        self.refetch_interval = d;
        self
    }

    /// [`DEFAULT_JWKS_MAX_AGE`].
    pub fn jwks_max_age(mut self, d: Duration) -> Self {
        self.jwks_max_age = d;
        self
    }

    /// How long active and inactive introspection results are reused
    /// ([`DEFAULT_INTROSPECTION_POSITIVE_TTL`], [`DEFAULT_INTROSPECTION_NEGATIVE_TTL`]).
    pub fn introspection_cache_ttl(mut self, active: Duration, inactive: Duration) -> Self {
        self.positive_ttl = active;
        self.negative_ttl = inactive;
        self
    }

    /// The HTTP client for metadata, JWKS and introspection requests. Default: one
    /// with a 2 s connect and 5 s total timeout.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The URL clients reach this API at (`https://api.example.com`, or with a path
    /// prefix), which a DPoP proof's `htu` must name (RFC 9449 §4.3): the request's
    /// path is appended. Without it the guard takes `https://` and the request's
    /// `Host`: set it when the API is served over plain HTTP, or behind a proxy that
    /// changes the host or the path.
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Trusts the client certificate a TLS-terminating proxy forwards in `header`
    /// (RFC 9440 `Client-Cert`, `:base64 DER:`) for certificate-bound tokens (RFC 8705
    /// §3). Off by default: only when the proxy removes the header from what clients
    /// send, since anyone can send it. A certificate from a TLS connection the server
    /// terminates itself ([`ClientCertificate`] in the request's extensions) is used
    /// first.
    pub fn trust_client_cert_header(mut self, header: http::HeaderName) -> Self {
        self.cert_header = Some(header);
        self
    }

    fn rebase(&self, url: String) -> String {
        match &self.discovery_base {
            Some(base) => match url.strip_prefix(&self.issuer) {
                Some(rest) => format!("{base}{rest}"),
                None => url,
            },
            None => url,
        }
    }

    async fn discover(
        &self,
        http: &reqwest::Client,
    ) -> Result<AuthorizationServerMetadata, BuildError> {
        let base = self.discovery_base.as_deref().unwrap_or(&self.issuer);
        let url = format!("{base}/.well-known/oauth-authorization-server");
        let err = |reason: String| BuildError::Discovery {
            url: url.clone(),
            reason,
        };
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("HTTP {}", resp.status())));
        }
        let meta: AuthorizationServerMetadata = resp
            .json()
            .await
            .map_err(|e| err(format!("not RFC 8414 metadata: {e}")))?;
        if meta.issuer.trim_end_matches('/') != self.issuer {
            return Err(BuildError::IssuerMismatch {
                url,
                found: meta.issuer,
                expected: self.issuer.clone(),
            });
        }
        Ok(meta)
    }

    /// Discovers what is needed and, in JWT mode, fetches the JWKS; fails if the
    /// issuer cannot be reached, so a misconfigured API fails at start, not on the
    /// first request.
    pub async fn build(self) -> Result<Guard, BuildError> {
        let http = match &self.http {
            Some(h) => h.clone(),
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| BuildError::Http(e.to_string()))?,
        };
        let backend = match &self.introspection {
            None => {
                let uri = match &self.jwks_uri {
                    Some(u) => u.clone(),
                    None => self.rebase(self.discover(&http).await?.jwks_uri),
                };
                let keys =
                    KeyCache::new(http, uri.clone(), self.refetch_interval, self.jwks_max_age)
                        .await
                        .map_err(|reason| BuildError::Jwks { url: uri, reason })?;
                Backend::Jwt(Arc::new(keys))
            }
            Some((id, secret)) => {
                let endpoint = match &self.introspection_endpoint {
                    Some(u) => u.clone(),
                    None => self.rebase(
                        self.discover(&http)
                            .await?
                            .introspection_endpoint
                            .ok_or(BuildError::NoIntrospectionEndpoint)?,
                    ),
                };
                Backend::Introspection(Introspector::new(http, endpoint, id, secret))
            }
        };
        Ok(self.finish(backend, None))
    }

    /// A guard whose verdicts come from `judge`, the issuer's own, with no network
    /// and no discovery: for the authorization server guarding its own routes (the
    /// broker's admin API). Nothing is cached, whatever [`Self::cache_capacity`]
    /// says, so a revocation the judge knows of holds from the next request on.
    pub fn build_local(self, judge: Arc<dyn Judge>) -> Guard {
        self.finish(Backend::Local(judge), Some(0))
    }

    fn finish(self, backend: Backend, cache_capacity: Option<usize>) -> Guard {
        let audience = self.audience.unwrap_or_else(|| self.issuer.clone());
        let policy = Policy::new(self.issuer)
            .audience(audience.clone())
            .leeway(self.leeway);
        Guard {
            inner: Arc::new(Inner {
                realm: self.realm.unwrap_or(audience),
                introspection_policy: policy.clone().require(&INTROSPECTION_REQUIRED),
                policy,
                clock: self.clock,
                backend,
                cache: TtlCache::new(cache_capacity.unwrap_or(self.cache_capacity)),
                positive_ttl: secs(self.positive_ttl),
                negative_ttl: secs(self.negative_ttl),
                introspections: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                public_url: self.public_url,
                cert_header: self.cert_header,
                replay: ProofReplay::default(),
                proof_policy: ProofPolicy::default(),
            }),
        }
    }
}
