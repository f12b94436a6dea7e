//! The auth-broker token server.
//!
//! [`Server::bind`] opens the listener, loads (or creates) the signing key and
//! returns a server whose address is known before it runs, which is what tests and
//! `serve --listen 127.0.0.1:0` need.
#![forbid(unsafe_code)]

pub mod admin;
mod client_keys;
pub mod clock;
mod dpop;
pub mod http;
mod inspect;
mod keyring;
mod keys;
mod metrics;
pub mod mtls;
mod quota;
mod ratelimit;
mod secret;
mod store;
pub mod tls;
mod token;
mod usage;

/// What tests, benchmarks, examples and fuzz targets reach below the public API
/// (the store's records, key material, the issuing path in pieces). Behind the
/// `testing` feature, which only dev-dependencies enable: the `auth-broker` binary
/// is built without it, so it can change state only through [`admin::Admin`].
#[cfg(feature = "testing")]
pub mod testing;

pub use auth_broker_jwt::SigningAlg;
pub use keys::KeyError;
pub use store::{Store, StoreError, redact_url};

use crate::admin::Admin;
use crate::clock::{Clock, SystemClock};
use crate::keyring::KeyRing;
use crate::ratelimit::FailureLimiter;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a retired key stays in the JWKS after its last token expired, for
/// verifiers whose clocks run behind.
pub const RETIRED_KEY_LEEWAY_SECS: i64 = 60;

/// The longest token lifetime a broker accepts (31 days), and so the longest a key
/// stored without a recorded lifetime (by an older version) can have signed for.
pub const MAX_TOKEN_TTL_SECS: i64 = 31 * 24 * 3600;

/// The server's settings, already validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// The `iss` of every token and the base of every metadata URL. `None`: derived
    /// from the bound address (`http://127.0.0.1:PORT`, `https://` with TLS), fine for
    /// development only.
    pub issuer: Option<String>,
    pub token_ttl_secs: i64,
    pub signing_alg: SigningAlg,
    /// Time allowed to send the request headers; with TLS, also the time allowed for
    /// the handshake before them.
    pub header_timeout: Duration,
    /// Time allowed to send a request body.
    pub body_timeout: Duration,
    /// How long a client may leave the broker's answer unread (a write making no
    /// progress) before its connection is closed.
    pub send_timeout: Duration,
    /// How long graceful shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Open connections at most; one more is answered `503` and closed at once.
    pub max_connections: usize,
    /// The largest request head (request line and headers) read, in bytes; a larger
    /// one gets `431` (RFC 6585 §5) and the connection is closed.
    pub max_header_bytes: usize,
    /// Failed authentications allowed per client id and per address, per minute.
    pub auth_failures_per_minute: NonZeroU32,
    /// How often to look for a key rotated by another process. On PostgreSQL a
    /// rotation is also heard (`NOTIFY auth_broker_keys`) and picked up at once; the
    /// poll is what remains when the notification connection is down.
    pub key_poll_interval: Duration,
    /// JWT (RFC 9068) or opaque access tokens.
    pub token_format: TokenFormat,
    /// Rotate the signing key automatically when the active one is this old.
    pub key_rotation_interval: Option<Duration>,
    /// How often expired revocations, opaque tokens and retired keys are deleted.
    pub prune_interval: Duration,
    /// Terminate TLS with this certificate and key; `None`: plain HTTP (behind a
    /// TLS-terminating proxy, or for development).
    pub tls: Option<tls::TlsFiles>,
    /// A second, plain-HTTP listener for the operator's `GET /metrics`, with the
    /// metrics the public one leaves out (see `metrics`); `None`: none.
    pub metrics_listen: Option<SocketAddr>,
    /// How often per-client usage counts are written to the store (and at shutdown).
    /// Checked on the key poll tick, so at most that often.
    pub usage_flush_interval: Duration,
    /// How far ahead a `private_key_jwt` client assertion's `exp` may be (RFC 7523
    /// §3): its `jti` is remembered until then.
    pub assertion_max_lifetime: Duration,
    /// Whether DPoP proofs at the token endpoint must carry a nonce of the broker's
    /// (RFC 9449 §8): bounds how far ahead a client can make proofs.
    pub dpop_nonce: bool,
    /// The CA of `tls_client_auth` clients (RFC 8705 §2.1): with it, and `tls`, the
    /// broker asks TLS clients for a certificate (optional) and binds tokens issued
    /// over mutual TLS to it (`cnf.x5t#S256`, §3).
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Whether request spans are made for OpenTelemetry too (set when the process
    /// exports traces, `serve --otlp-endpoint`): an HTTP server span per request
    /// named by its route, joined to the caller's trace (W3C `traceparent`), with the
    /// request id as an attribute. See `http::trace`.
    pub trace_export: bool,
}

/// The access token format of a deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenFormat {
    /// RFC 9068 JWTs: resource servers verify them offline from the JWKS.
    #[default]
    Jwt,
    /// 256-bit random strings stored hashed: valid only through introspection, and
    /// revocable at once everywhere.
    Opaque,
}

impl std::str::FromStr for TokenFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jwt" => Ok(Self::Jwt),
            "opaque" => Ok(Self::Opaque),
            _ => Err(format!("unknown token format '{s}'; use jwt or opaque")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            token_ttl_secs: 3600,
            signing_alg: SigningAlg::Es256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_header_bytes: 16 * 1024,
            auth_failures_per_minute: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            key_poll_interval: Duration::from_secs(2),
            token_format: TokenFormat::Jwt,
            key_rotation_interval: None,
            prune_interval: Duration::from_secs(60),
            tls: None,
            metrics_listen: None,
            usage_flush_interval: usage::FLUSH_INTERVAL,
            assertion_max_lifetime: Duration::from_secs(
                auth_broker_jwt::assertion::DEFAULT_MAX_LIFETIME_SECS.unsigned_abs(),
            ),
            dpop_nonce: false,
            tls_client_ca: None,
            trace_export: false,
        }
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub(crate) config: Config,
    pub(crate) issuer: String,
    /// For reads on the hot path (the client of a token request, revocations);
    /// every change goes through `admin`.
    pub(crate) store: Store,
    pub(crate) admin: Admin,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) keys: KeyRing,
    pub(crate) limiter: FailureLimiter,
    /// Per-client `tokens_per_minute` caps.
    pub(crate) quotas: quota::Quotas,
    /// Per-client usage since the last flush to the store.
    pub(crate) usage: usage::UsageCounter,
    /// The RFC 8414 document, rendered once.
    pub(crate) metadata_json: String,
    /// The guard of the admin API (the guard crate, judging with this state).
    pub(crate) admin_guard: auth_broker_guard::Guard,
    /// The keys of `private_key_jwt` clients, with the `jwks_uri` sets fetched.
    pub(crate) client_keys: client_keys::ClientKeySource,
    /// The CA of `tls_client_auth` clients, when the broker serves mutual TLS.
    pub(crate) client_ca: Option<tls::ClientCa>,
    /// What a client assertion must be (RFC 7523 §3): its `aud` names this broker.
    pub(crate) assertion_policy: auth_broker_jwt::assertion::AssertionPolicy,
    /// DPoP proofs seen recently, so each is used once (RFC 9449 §11.1).
    pub(crate) dpop_replay: auth_broker_jwt::replay::ProofReplay,
    /// The token endpoint's URL, as a DPoP proof's `htu` names it.
    pub(crate) token_endpoint: String,
}

/// A freshly signed token.
pub struct Issued {
    pub token: String,
    /// Whole seconds left until `exp`, rounded down (RFC 6749 §5.1).
    pub expires_in: u64,
}

/// Why a token could not be issued. Only a transient one (the store or the random
/// source) may succeed on a retry; the answer is `503` for those, `500` otherwise.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<secret::RandomError> for IssueError {
    fn from(e: secret::RandomError) -> Self {
        Self::Key(e.into())
    }
}

/// The token is a bearer credential (RFC 6750 §5.3): `Debug` leaves it out.
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// What a token grants: to whom, for what, for how long, bound to what.
pub(crate) struct Grant<'a> {
    pub client_id: &'a str,
    pub audience: &'a str,
    pub scopes: &'a [String],
    pub ttl: i64,
    /// The client's static claims (validated JSON object text).
    pub extra_claims: Option<&'a str>,
    /// The key the token is bound to (RFC 7800 §3.1): a DPoP key (RFC 9449 §6) or a
    /// client certificate (RFC 8705 §3); `None` for a bearer token.
    pub cnf: Option<&'a auth_broker_proto::Confirmation>,
}

impl AppState {
    /// Issues an access token in the deployment's format, with the client's own
    /// lifetime and extra claims when it has them, bound to `cnf` when given.
    pub(crate) async fn issue(
        &self,
        client: &store::ClientRecord,
        audience: &str,
        scopes: &[String],
        cnf: Option<&auth_broker_proto::Confirmation>,
    ) -> Result<Issued, IssueError> {
        let ttl = client
            .access_token_ttl
            .unwrap_or(self.config.token_ttl_secs);
        match self.config.token_format {
            TokenFormat::Jwt => {
                let key = self.keys.covering(&self.store, ttl).await?;
                self.sign(
                    &key,
                    &Grant {
                        client_id: &client.id,
                        audience,
                        scopes,
                        ttl,
                        extra_claims: client.extra_claims.as_deref(),
                        cnf,
                    },
                )
            }
            TokenFormat::Opaque => {
                let now_nanos = self.clock.now_nanos();
                let iat = now_nanos.div_euclid(1_000_000_000);
                let exp = iat.saturating_add(ttl);
                let token = format!("{}{}", inspect::OPAQUE_PREFIX, secret::random_id::<32>()?);
                let record = store::OpaqueRecord {
                    token_hash: secret::token_hash(&token),
                    jti: secret::random_id::<16>()?,
                    client_id: client.id.clone(),
                    scope: scopes.join(" "),
                    audience: audience.to_owned(),
                    issued_at: iat,
                    expires_at: exp,
                    cnf: cnf
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(KeyError::Json)?,
                };
                // Boxed: the store's future is kept out of every JWT request's.
                Box::pin(self.store.insert_opaque(&record)).await?;
                Ok(Issued {
                    token,
                    expires_in: expires_in(exp, now_nanos),
                })
            }
        }
    }

    /// Signs a JWT access token for `client_id` with the broker's default lifetime
    /// (RFC 9068 §2.2).
    #[cfg(feature = "testing")]
    pub(crate) fn issue_token(
        &self,
        client_id: &str,
        audience: &str,
        scopes: &[String],
    ) -> Result<Issued, IssueError> {
        self.sign(
            &self.keys.active(),
            &Grant {
                client_id,
                audience,
                scopes,
                ttl: self.config.token_ttl_secs,
                extra_claims: None,
                cnf: None,
            },
        )
    }

    /// `iat` is the current second rounded down and `exp = iat + ttl`, so
    /// `expires_in` (the time left from *now*, rounded down) is `ttl - 1` unless the
    /// request landed exactly on a whole second: 3599 for the default hour.
    fn sign(&self, key: &keys::SigningKey, grant: &Grant<'_>) -> Result<Issued, IssueError> {
        let Grant {
            client_id,
            audience,
            scopes,
            ttl,
            extra_claims,
            cnf,
        } = *grant;
        let now_nanos = self.clock.now_nanos();
        let iat = now_nanos.div_euclid(1_000_000_000);
        let exp = iat.saturating_add(ttl);
        let claims = token::Claims {
            iss: self.issuer.clone(),
            sub: client_id.to_owned(),
            client_id: client_id.to_owned(),
            aud: audience.into(),
            iat: Some(iat),
            exp,
            nbf: None,
            jti: Some(secret::random_id::<16>()?),
            scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
            cnf: cnf.cloned(),
        };
        let token = token::sign(key, &claims, extra_claims)?;
        Ok(Issued {
            token,
            expires_in: expires_in(exp, now_nanos),
        })
    }
}

/// Whole seconds from `now_nanos` until `exp`, rounded down (RFC 6749 §5.1); 0
/// once `exp` has passed. `token-info` reports the same (a token's `exp` can be any
/// NumericDate, so the arithmetic saturates).
pub(crate) fn expires_in(exp: i64, now_nanos: i64) -> u64 {
    u64::try_from(
        exp.saturating_mul(1_000_000_000)
            .saturating_sub(now_nanos)
            .div_euclid(1_000_000_000),
    )
    .unwrap_or(0)
}

impl AppState {
    /// Rotates the signing key when the active one is older than `every`; replicas
    /// decide under one lock, so only one of them rotates.
    async fn rotate_if_due(&self, every: Duration) {
        let now = self.clock.now_secs();
        let age = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(self.keys.active().created_at()) < age {
            return; // the common case, decided without touching the store
        }
        if let Err(e) = self
            .admin
            .rotate_key_if_due(self.config.signing_alg, every)
            .await
        {
            tracing::warn!(error = %e, "automatic key rotation failed; will retry");
        }
    }

    /// Writes the usage counted since the last flush to the store; on failure the
    /// counts wait for the next flush.
    async fn flush_usage(&self) {
        let rows = self.usage.drain();
        if rows.is_empty() {
            return;
        }
        if let Err(e) = self.store.add_usage(&rows).await {
            tracing::warn!(error = %e, rows = rows.len(), "could not write usage counts; will retry");
            self.usage.restore(rows);
        }
    }

    /// Deletes what can no longer matter: expired revocations and opaque tokens, and
    /// retired keys whose every token has expired (plus leeway), reckoned from the
    /// longest lifetime stored with each key, not from this broker's own.
    async fn prune(&self) {
        let now = self.clock.now_secs();
        match self.store.prune(now, RETIRED_KEY_LEEWAY_SECS).await {
            Ok(p) if p != store::Pruned::default() => tracing::info!(
                revocations = p.revocations,
                opaque_tokens = p.opaque_tokens,
                keys = p.keys,
                assertions = p.assertions,
                "pruned expired entries"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning expired entries failed; will retry"),
        }
    }
}

/// A bound, ready-to-run broker.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: Arc<AppState>,
    tls: Option<tls::Tls>,
}

impl Server {
    /// Binds the listener and loads the signing key (creating it on first start).
    pub async fn bind(config: Config, store: Store, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr()?;
        let metrics_listener =
            match config.metrics_listen {
                Some(at) => Some(TcpListener::bind(at).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on {at} (--metrics-listen): {e}")
                })?),
                None => None,
            };
        // Before anything touches the store: a wrong certificate path is the most
        // likely start-up error and should be the one reported.
        let client_ca = config
            .tls_client_ca
            .as_deref()
            .map(tls::ClientCa::load)
            .transpose()?;
        let tls = config
            .tls
            .as_ref()
            .map(|f| tls::Tls::new(f, client_ca.is_some()))
            .transpose()?;
        if client_ca.is_some() && tls.is_none() {
            anyhow::bail!(
                "--tls-client-ca needs --tls-cert and --tls-key: client certificates are presented in the TLS handshake the broker terminates itself"
            );
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = match &config.issuer {
            Some(i) => i.trim_end_matches('/').to_owned(),
            None => {
                let host = if addr.ip().is_unspecified() {
                    "localhost".to_owned()
                } else {
                    addr.ip().to_string()
                };
                if addr.is_ipv6() && !addr.ip().is_unspecified() {
                    format!("{scheme}://[{host}]:{}", addr.port())
                } else {
                    format!("{scheme}://{host}:{}", addr.port())
                }
            }
        };
        let keys = KeyRing::load(
            &store,
            config.signing_alg,
            config.token_ttl_secs,
            clock.as_ref(),
        )
        .await?;
        let metadata = http::wellknown::metadata(&issuer, client_ca.is_some());
        let metadata_json = serde_json::to_string(&metadata)?;
        // RFC 7523 §3 item 3: the issuer, or the URL of the endpoint the assertion is
        // sent to (the token endpoint last: it is the one a refusal suggests).
        let assertion_policy = auth_broker_jwt::assertion::AssertionPolicy {
            audiences: [
                Some(issuer.clone()),
                metadata.introspection_endpoint.clone(),
                metadata.revocation_endpoint.clone(),
                Some(metadata.token_endpoint.clone()),
            ]
            .into_iter()
            .flatten()
            .collect(),
            max_lifetime: i64::try_from(config.assertion_max_lifetime.as_secs())
                .unwrap_or(i64::MAX),
            leeway: i64::try_from(auth_broker_jwt::DEFAULT_LEEWAY.as_secs()).unwrap_or(60),
        };
        let limiter = FailureLimiter::new(config.auth_failures_per_minute);
        let client_keys = client_keys::ClientKeySource::new().map_err(|e| {
            anyhow::anyhow!("cannot make the HTTP client for clients' jwks_uri: {e}")
        })?;
        let _ = metrics::handle();
        Ok(Self {
            listener,
            metrics_listener,
            tls,
            state: Arc::new_cyclic(|me| AppState {
                admin_guard: http::admin_auth::guard(&issuer, me.clone()),
                config,
                issuer,
                admin: Admin::new(store.clone(), clock.clone()),
                store,
                clock,
                keys,
                limiter,
                quotas: quota::Quotas::new(),
                usage: usage::UsageCounter::new(),
                metadata_json,
                client_keys,
                client_ca,
                assertion_policy,
                dpop_replay: auth_broker_jwt::replay::ProofReplay::default(),
                token_endpoint: metadata.token_endpoint.clone(),
            }),
        })
    }

    /// [`Server::bind`] with the system clock.
    pub async fn bind_default_clock(config: Config, store: Store) -> anyhow::Result<Self> {
        Self::bind(config, store, Arc::new(SystemClock)).await
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The operator's metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The change service on this server's store and clock (what `serve --demo` uses).
    pub fn admin(&self) -> &Admin {
        &self.state.admin
    }

    /// Reloads the TLS certificate while the server runs (`serve` calls it on
    /// SIGHUP); `None` without TLS. Take it before [`Server::run`].
    pub fn tls_handle(&self) -> Option<tls::TlsHandle> {
        self.tls.as_ref().map(|t| t.handle.clone())
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let state = self.state.clone();
        let listener = state.store.listen_for_changes();
        let background = tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.config.key_poll_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_prune = std::time::Instant::now();
            let mut last_flush = std::time::Instant::now();
            loop {
                // A rotation elsewhere, when heard, is picked up at once, not at the
                // next tick; the rest of the upkeep keeps to the ticks.
                let ticked = tokio::select! {
                    _ = tick.tick() => true,
                    () = state.store.key_changed() => false,
                };
                if ticked {
                    metrics::upkeep();
                    if last_flush.elapsed() >= state.config.usage_flush_interval {
                        last_flush = std::time::Instant::now();
                        state.flush_usage().await;
                    }
                    if let Some(every) = state.config.key_rotation_interval {
                        state.rotate_if_due(every).await;
                    }
                }
                if let Err(e) = state.keys.refresh(&state.store).await {
                    tracing::warn!(error = %e, "could not check for a rotated signing key");
                }
                if ticked && last_prune.elapsed() >= state.config.prune_interval {
                    last_prune = std::time::Instant::now();
                    state.limiter.prune();
                    state.dpop_replay.prune(state.clock.now_secs());
                    state.quotas.prune(std::time::Instant::now());
                    state.prune().await;
                }
            }
        });
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_task = self.metrics_listener.map(|listener| {
            let state = self.state.clone();
            tokio::spawn(async move {
                let config = state.config.clone();
                let router = http::metrics_router(state);
                http::serve(listener, router, None, &config, async {
                    let _ = metrics_stopped.await;
                })
                .await
            })
        });
        let router = http::router(self.state.clone());
        let acceptor = self.tls.map(|t| t.acceptor);
        let r = http::serve(
            self.listener,
            router,
            acceptor,
            &self.state.config,
            shutdown,
        )
        .await;
        background.abort();
        if let Some(l) = listener {
            l.abort();
        }
        // What was counted since the last flush (the in-flight requests are done).
        self.state.flush_usage().await;
        let _ = stop_metrics.send(());
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        r
    }
}
