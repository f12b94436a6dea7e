//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, as OpenID Connect
//! Core §9 names it): instead of a secret, every token request carries a short-lived JWT
//! signed with the client's private key, whose public half the authorization server
//! holds in the client's `jwks`.

use crate::jws::{JwsAlg, KeyError, SigningKey, random_id};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid unless set otherwise: long enough for a slow network
/// and a little clock skew, short enough that a captured one is soon worthless.
pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// The longest lifetime an assertion is given: the broker refuses an `exp` more than 5
/// minutes ahead (INTERFACE §8), as many servers do, since they must remember each
/// `jti` until then (RFC 7523 §3, item 7).
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// The claims of one assertion (RFC 7523 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssertionClaims {
    /// The client id (item 1: the issuer is the client).
    pub iss: String,
    /// The client id (item 2: for client authentication the subject is the client too).
    pub sub: String,
    /// The token endpoint URL, or what the server asked for instead (item 3).
    pub aud: String,
    /// Issued at, seconds since the epoch (item 6).
    pub iat: u64,
    /// Expiry, seconds since the epoch (item 4): `iat` plus the lifetime.
    pub exp: u64,
    /// A unique identifier, so the server can refuse a replay (item 7).
    pub jti: String,
}

impl AssertionClaims {
    /// The claims for `client_id` at wall-clock time `now`.
    ///
    /// `iat` is `now` in whole seconds (0 for a clock before 1970); `exp` is `iat`
    /// plus `lifetime`, which is kept between 1 s and [`MAX_ASSERTION_LIFETIME`]. No
    /// clock value panics: the arithmetic saturates.
    pub fn new(
        client_id: &str,
        aud: &str,
        now: SystemTime,
        lifetime: Duration,
        jti: String,
    ) -> Self {
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let lifetime = lifetime.clamp(Duration::from_secs(1), MAX_ASSERTION_LIFETIME);
        Self {
            iss: client_id.to_owned(),
            sub: client_id.to_owned(),
            aud: aud.to_owned(),
            iat,
            exp: iat.saturating_add(lifetime.as_secs()),
            jti,
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "iss": self.iss,
            "sub": self.sub,
            "aud": self.aud,
            "iat": self.iat,
            "exp": self.exp,
            "jti": self.jti,
        })
    }
}

/// The `private_key_jwt` credential: the key, and the `aud` and lifetime of the
/// assertions it signs. A fresh assertion (new `iat`, `exp` and `jti`) is made for every
/// token request, retries included, since the server accepts each `jti` once.
#[derive(Clone, Debug)]
pub struct PrivateKeyJwt {
    key: Arc<SigningKey>,
    /// The `aud` claim; the token endpoint URL when `None` (RFC 7523 §3 item 3 allows
    /// either the token endpoint URL or the issuer; the URL is what every server takes).
    pub audience: Option<String>,
    lifetime: Duration,
}

impl PrivateKeyJwt {
    /// Assertions signed with `key` (its `alg` and `kid`), for the token endpoint, valid
    /// for [`DEFAULT_ASSERTION_LIFETIME`].
    pub fn new(key: SigningKey) -> Self {
        Self {
            key: Arc::new(key),
            audience: None,
            lifetime: DEFAULT_ASSERTION_LIFETIME,
        }
    }

    /// Another `aud`, e.g. the issuer for servers that ask for it.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audience = Some(aud.into()).filter(|a: &String| !a.is_empty());
        self
    }

    /// Another lifetime, kept between 1 s and [`MAX_ASSERTION_LIFETIME`].
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.clamp(Duration::from_secs(1), MAX_ASSERTION_LIFETIME);
        self
    }

    /// The assertions' lifetime.
    pub fn assertion_lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The claims of a new assertion (with a fresh random `jti`).
    pub fn claims(
        &self,
        client_id: &str,
        token_url: &str,
        now: SystemTime,
    ) -> Result<AssertionClaims, KeyError> {
        Ok(AssertionClaims::new(
            client_id,
            self.audience.as_deref().unwrap_or(token_url),
            now,
            self.lifetime,
            random_id()?,
        ))
    }

    /// A new signed assertion (compact JWS, RFC 7515 §7.1) for `client_id` at
    /// `token_url`, issued at `now`. The header carries `alg`, `typ: JWT` and the `kid`
    /// when the key has one.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: SystemTime,
    ) -> Result<String, KeyError> {
        let claims = self.claims(client_id, token_url, now)?;
        self.sign(&claims)
    }

    /// `claims` signed.
    pub fn sign(&self, claims: &AssertionClaims) -> Result<String, KeyError> {
        let mut header = serde_json::json!({"alg": self.key.alg().as_str(), "typ": "JWT"});
        if let Some(kid) = self.key.kid() {
            header["kid"] = kid.into();
        }
        self.key
            .compact(&SigningKey::encode_header(&header)?, &claims.to_json())
    }

    /// The algorithm of the assertions.
    pub fn alg(&self) -> JwsAlg {
        self.key.alg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any clock, any asked-for lifetime: no panic, `exp >= iat`, and `exp - iat`
        /// never over 5 minutes (and exactly the lifetime asked, bounded, for any clock
        /// before the year 292 billion).
        #[test]
        fn claims_for_any_clock_stay_in_bounds(
            secs in any::<u64>(),
            nanos in 0u32..1_000_000_000,
            before_epoch in any::<bool>(),
            lifetime_ms in any::<u64>(),
        ) {
            let d = Duration::new(secs, nanos);
            let now = if before_epoch {
                UNIX_EPOCH.checked_sub(d)
            } else {
                UNIX_EPOCH.checked_add(d)
            };
            let Some(now) = now else { return Ok(()) };
            let lifetime = Duration::from_millis(lifetime_ms);
            let c = AssertionClaims::new("app", "https://as/token", now, lifetime, "j".into());
            prop_assert!(c.exp >= c.iat);
            prop_assert!(c.exp - c.iat <= MAX_ASSERTION_LIFETIME.as_secs());
            prop_assert!(c.exp - c.iat >= 1 || c.iat == u64::MAX);
            if c.iat < u64::MAX / 2 {
                let want = lifetime.clamp(Duration::from_secs(1), MAX_ASSERTION_LIFETIME).as_secs();
                prop_assert_eq!(c.exp - c.iat, want);
            }
            if before_epoch && !d.is_zero() {
                prop_assert_eq!(c.iat, 0);
            }
            let _ = c.to_json().to_string();
        }
    }

    #[test]
    fn defaults_and_bounds() {
        let key = SigningKey::generate(JwsAlg::Es256).unwrap_or_else(|e| panic!("{e}"));
        let p = PrivateKeyJwt::new(key);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let c = p
            .claims("app", "https://as.example/token", now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.iat, c.exp), (1_800_000_000, 1_800_000_060));
        assert_eq!(c.aud, "https://as.example/token");
        assert_eq!((c.iss.as_str(), c.sub.as_str()), ("app", "app"));
        let long = p.clone().lifetime(Duration::from_secs(3600));
        assert_eq!(long.assertion_lifetime(), MAX_ASSERTION_LIFETIME);
        let other = p.audience("https://as.example/");
        let c2 = other
            .claims("app", "https://as.example/token", now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c2.aud, "https://as.example/");
        assert_ne!(c.jti, c2.jti, "a fresh jti each time");
        assert!(c.jti.len() >= 22, "128 bits: {}", c.jti);
    }
}
