//! What to ask for and how: endpoint, credentials, client authentication, refresh policy
//! and retry policy.

use crate::assertion::PrivateKeyJwt;
use crate::dpop::DpopKey;
use crate::tls::ClientIdentity;
use auth_broker_proto::ClientSecret;
use std::time::Duration;

/// What the client proves its identity with at the token endpoint.
///
/// `Debug` never shows a secret or key material.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Credential {
    /// A client secret, sent as [`TokenConfig::auth`] says: `client_secret_basic` or
    /// `client_secret_post` (RFC 6749 §2.3.1).
    Secret(ClientSecret),
    /// `private_key_jwt` (RFC 7523 §2.2): a fresh assertion signed with the client's
    /// private key in every token request.
    PrivateKey(PrivateKeyJwt),
    /// `tls_client_auth` or `self_signed_tls_client_auth` (RFC 8705 §2): the client
    /// certificate presented at the TLS layer ([`TokenConfig::tls_identity`]) is the
    /// proof, and the form body names the client (`client_id`, §2, RFC 6749 §2.3.1).
    TlsClientCertificate,
}

/// How the client authenticates to the token endpoint with a secret (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` per RFC 6749 §2.3.1: id and secret are
    /// form-urlencoded, joined with `:` and base64-encoded. The default.
    #[default]
    Basic,
    /// `client_secret_basic` without the form-encoding step: `base64(id:secret)`
    /// exactly, for servers that skip §2.3.1. Only differs from [`ClientAuth::Basic`]
    /// when the id or secret contains characters such as `/ + = : %` or a space.
    BasicRaw,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
}

impl ClientAuth {
    /// The RFC 8414 name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::BasicRaw => "client_secret_basic (raw, not form-encoded)",
            Self::Post => "client_secret_post",
        }
    }
}

/// When a cached token is refreshed and when it stops being handed out.
///
/// With lifetime `L` (from `expires_in`, measured from the moment the token request
/// was *sent*, on the local monotonic clock):
///
/// - the token is never handed out in its last `min(max_margin, margin_fraction × L)`
///   (defaults: `min(60 s, 10 % of L)`);
/// - a background refresh starts at `refresh_fraction × L` plus a random jitter of up
///   to `jitter_fraction × L` (defaults: half the lifetime, jitter up to 10 %), but
///   never later than the end of the usable window;
/// - callers keep getting the cached token while the refresh runs, and while it fails,
///   until the usable window closes; only then does a caller wait for a new token.
///
/// Worked examples with the defaults:
///
/// - `expires_in: 3599`: usable for 3599 − 60 = 3539 s; the background refresh starts
///   between 1799.5 s and 2159.4 s, so about 23 minutes remain for retries if the
///   endpoint is down.
/// - `expires_in: 4`: margin min(60 s, 0.4 s) = 0.4 s, usable for 3.6 s; the refresh
///   starts between 2.0 s and 2.4 s.
///
/// A response without `expires_in` is treated as `default_lifetime` (default
/// [`DEFAULT_LIFETIME`], 5 minutes): short enough that a token that really expires
/// sooner is rarely handed out late, and a `401` from an API triggers a refresh anyway.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefreshPolicy {
    /// Fraction of the lifetime after which the background refresh starts. Default 0.5.
    pub refresh_fraction: f64,
    /// Up to this fraction of the lifetime is added at random to the refresh start, so
    /// many processes started together do not refresh together. Default 0.1.
    pub jitter_fraction: f64,
    /// The longest end-of-life margin in which a token is not handed out. Default 60 s.
    pub max_margin: Duration,
    /// The end-of-life margin as a fraction of the lifetime, when shorter than
    /// `max_margin`. Default 0.1.
    pub margin_fraction: f64,
    /// The lifetime assumed when the response has no `expires_in`. Default 300 s.
    pub default_lifetime: Duration,
    /// The longest lifetime believed. Default [`MAX_LIFETIME`].
    pub max_lifetime: Duration,
}

/// The longest token lifetime believed: one year. Longer ones are cut to it with a
/// warning; the token is then refreshed after half a year like any other.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The lifetime assumed for a token whose response has no `expires_in`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            refresh_fraction: 0.5,
            jitter_fraction: 0.1,
            max_margin: Duration::from_secs(60),
            margin_fraction: 0.1,
            default_lifetime: DEFAULT_LIFETIME,
            max_lifetime: MAX_LIFETIME,
        }
    }
}

/// The instants of one token's life, relative to its receipt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// The token's lifetime.
    pub lifetime: Duration,
    /// When the background refresh starts (jitter included).
    pub refresh_after: Duration,
    /// After this the token is no longer handed out.
    pub usable_for: Duration,
    /// The stated lifetime was longer than [`RefreshPolicy::max_lifetime`] and was cut.
    pub capped: bool,
}

impl RefreshPolicy {
    /// The schedule for a token of `expires_in` seconds; `jitter` in `[0, 1)` picks the
    /// point in the jitter window.
    ///
    /// A lifetime past `max_lifetime` is cut to it (`capped` says so): an `expires_in` of
    /// 2^63 seconds is no promise anyone can keep, and instants that far ahead do not
    /// exist on a monotonic clock.
    pub fn schedule(&self, expires_in: Option<u64>, jitter: f64) -> Schedule {
        let stated = expires_in.map_or(self.default_lifetime, Duration::from_secs);
        let capped = stated > self.max_lifetime;
        let lifetime = stated.min(self.max_lifetime);
        let margin = self
            .max_margin
            .min(lifetime.mul_f64(self.margin_fraction.clamp(0.0, 1.0)));
        let usable_for = lifetime.saturating_sub(margin);
        let refresh_after = lifetime
            .mul_f64(self.refresh_fraction.clamp(0.0, 1.0))
            .saturating_add(
                lifetime.mul_f64(self.jitter_fraction.clamp(0.0, 1.0) * jitter.clamp(0.0, 1.0)),
            )
            .min(usable_for);
        Schedule {
            lifetime,
            refresh_after,
            usable_for,
            capped,
        }
    }
}

/// How failed token requests are retried: exponential backoff with full jitter
/// (`sleep = random(0, min(max_delay, base_delay × 2^attempt))`), and at least the
/// server's `Retry-After` (delta-seconds or HTTP-date) on `429` and `503`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff ceiling. Default 250 ms.
    pub base_delay: Duration,
    /// Largest backoff ceiling. Default 30 s.
    pub max_delay: Duration,
    /// Token requests a caller without a usable token makes before it gets the error.
    /// Default 3. (The background refresh keeps trying for as long as the cached token
    /// is usable.)
    pub max_attempts: u32,
    /// A `Retry-After` longer than this is not waited for by a caller without a token;
    /// it gets the error instead. Default 60 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_attempts: 3,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff ceiling before retry number `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Everything a [`crate::TokenManager`] needs.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// The token endpoint, e.g. `https://auth.example.com/auth-broker/request-token`.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// What the client authenticates with.
    pub credential: Credential,
    /// Space-separated scopes to request (`scope` parameter), if any.
    pub scope: Option<String>,
    /// The `audience` parameter, if any.
    pub audience: Option<String>,
    /// How a [`Credential::Secret`] is sent.
    pub auth: ClientAuth,
    /// Bind tokens to this key with DPoP (RFC 9449): a proof with each token request
    /// and with each API request the middleware or layer signs. Any credential can go
    /// with it.
    pub dpop: Option<DpopKey>,
    /// Present this client certificate at the TLS layer (RFC 8705): for
    /// [`Credential::TlsClientCertificate`], and for certificate-bound tokens with any
    /// credential. [`crate::TokenManager::new`] builds its HTTP client with it; give the
    /// one of [`crate::TokenManager::with_parts`] the same ([`ClientIdentity::apply`]).
    pub tls_identity: Option<ClientIdentity>,
    /// Refresh policy.
    pub refresh: RefreshPolicy,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Timeout of one token request. Default 10 s.
    pub request_timeout: Duration,
}

impl TokenConfig {
    /// A configuration with the defaults: `client_secret_basic`, no scope or audience.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Self {
        Self::with_credential(token_url, client_id, Credential::Secret(client_secret))
    }

    /// A configuration authenticating with `credential`, e.g. a private key:
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use auth_broker_client::{Credential, DpopKey, PrivateKeyJwt, SigningKey, TokenConfig};
    /// let key = SigningKey::from_file("client-key.pem".as_ref())?.with_kid("2026-01");
    /// let config = TokenConfig::with_credential(
    ///     "https://auth.example.com/auth-broker/request-token",
    ///     "billing",
    ///     Credential::PrivateKey(PrivateKeyJwt::new(key)),
    /// )
    /// .dpop(DpopKey::generate()?);
    /// # Ok(()) }
    /// ```
    pub fn with_credential(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
    ) -> Self {
        Self {
            token_url: token_url.into(),
            client_id: client_id.into(),
            credential,
            scope: None,
            audience: None,
            auth: ClientAuth::default(),
            dpop: None,
            tls_identity: None,
            refresh: RefreshPolicy::default(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Requests these space-separated scopes.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into()).filter(|s: &String| !s.is_empty());
        self
    }

    /// Requests this audience.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into()).filter(|s: &String| !s.is_empty());
        self
    }

    /// Sets the client authentication method.
    pub fn auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Binds tokens to `key` with DPoP.
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// Presents `identity` at the TLS layer.
    pub fn tls_identity(mut self, identity: ClientIdentity) -> Self {
        self.tls_identity = Some(identity);
        self
    }

    /// The RFC 8414 / RFC 7591 name of the client authentication method in use.
    pub fn auth_method(&self) -> &'static str {
        match &self.credential {
            Credential::Secret(_) => self.auth.as_str(),
            Credential::PrivateKey(_) => "private_key_jwt",
            Credential::TlsClientCertificate => "tls_client_auth",
        }
    }

    /// Sets the refresh policy.
    pub fn refresh(mut self, refresh: RefreshPolicy) -> Self {
        self.refresh = refresh;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The cache key: one token per (token URL, client id, scope, audience, DPoP key).
    pub fn key(&self) -> CacheKey {
        CacheKey {
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            scope: self.scope.clone(),
            audience: self.audience.clone(),
            dpop_jkt: self.dpop.as_ref().map(|k| k.thumbprint().to_owned()),
        }
    }
}

/// Identifies one cached token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Token endpoint.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Requested scope.
    pub scope: Option<String>,
    /// Requested audience.
    pub audience: Option<String>,
    /// The thumbprint of the DPoP key the token is bound to: a token bound to one key
    /// is useless with another.
    pub dpop_jkt: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples_hold() {
        let p = RefreshPolicy::default();
        let s = p.schedule(Some(3599), 0.0);
        assert_eq!(s.usable_for, Duration::from_secs(3539));
        assert_eq!(s.refresh_after, Duration::from_millis(1_799_500));
        let s = p.schedule(Some(3599), 0.999_999);
        assert!(
            s.refresh_after > Duration::from_secs(2159)
                && s.refresh_after < Duration::from_secs(2160)
        );
        let s = p.schedule(Some(4), 0.0);
        assert_eq!(s.usable_for, Duration::from_millis(3600));
        assert_eq!(s.refresh_after, Duration::from_secs(2));
        let s = p.schedule(Some(4), 0.999_999);
        assert!(s.refresh_after < Duration::from_millis(2401));
        let s = p.schedule(None, 0.0);
        assert_eq!(s.lifetime, DEFAULT_LIFETIME);
        // A zero lifetime is never usable.
        assert_eq!(p.schedule(Some(0), 0.5).usable_for, Duration::ZERO);
        // An absurd one is cut to a year.
        let s = p.schedule(Some(u64::MAX), 0.999);
        assert!(s.capped && s.lifetime == MAX_LIFETIME, "{s:?}");
        assert!(!p.schedule(Some(3599), 0.0).capped);
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let r = RetryPolicy::default();
        assert_eq!(r.ceiling(0), Duration::from_millis(250));
        assert_eq!(r.ceiling(1), Duration::from_millis(500));
        assert_eq!(r.ceiling(3), Duration::from_secs(2));
        assert_eq!(r.ceiling(40), Duration::from_secs(30));
    }
}
