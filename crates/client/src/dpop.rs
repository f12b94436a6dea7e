//! DPoP, Demonstrating Proof of Possession (RFC 9449): tokens bound to a key the client
//! holds, so a stolen token is useless without the key.
//!
//! Every request that uses the key, the token request and each API request (each
//! replay too), carries a fresh proof: a JWT signed with the key naming the method and
//! URL, with a new `jti` (§4.2). The server may demand a nonce it chose (§8 for the
//! authorization server, §9 for a resource server): the last `DPoP-Nonce` each origin
//! sent is remembered and put in the next proof to it.

use crate::jws::{JwsAlg, KeyError, SigningKey, random_id, sha256_b64};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// The request header that carries a proof (RFC 9449 §4.1).
pub const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

/// The response header with the nonce the server wants in the next proof (§8.1, §9).
pub const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// The error code of a server that wants a (new) nonce (§8, §9).
pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";

/// The `typ` of a proof (§4.2).
pub const PROOF_TYP: &str = "dpop+jwt";

/// A DPoP key and the nonces servers gave it. Cheap to clone; clones share the nonces.
#[derive(Clone)]
pub struct DpopKey(Arc<Inner>);

struct Inner {
    key: SigningKey,
    /// The encoded protected header: `typ`, `alg` and the public `jwk` (§4.2).
    header_b64: String,
    /// The last `DPoP-Nonce` per origin (`scheme://host:port`).
    nonces: Mutex<HashMap<String, String>>,
}

/// The thumbprint only.
impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.0.key.alg())
            .field("jkt", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new ES256 key, made for this process: tokens bound to it are only usable here.
    pub fn generate() -> Result<Self, KeyError> {
        Self::new(SigningKey::generate(JwsAlg::Es256)?)
    }

    /// Proofs signed with `key` (any of [`JwsAlg`]; its `kid` is not sent: the proof
    /// carries the public key itself).
    pub fn new(key: SigningKey) -> Result<Self, KeyError> {
        let header = serde_json::json!({
            "typ": PROOF_TYP,
            "alg": key.alg().as_str(),
            "jwk": key.public_jwk_members(),
        });
        Ok(Self(Arc::new(Inner {
            header_b64: SigningKey::encode_header(&header)?,
            key,
            nonces: Mutex::default(),
        })))
    }

    /// The key's RFC 7638 thumbprint: the `jkt` a bound token's `cnf` names (§6.1).
    pub fn thumbprint(&self) -> &str {
        self.0.key.thumbprint()
    }

    /// The algorithm of the proofs.
    pub fn alg(&self) -> JwsAlg {
        self.0.key.alg()
    }

    /// A proof for `method` on `url` at `now` (§4.2): `jti`, `htm`, `htu` (without query
    /// and fragment), `iat`, the origin's last nonce when there is one, and for a request
    /// to a resource server `ath`, the hash of `access_token` (§7.1).
    pub fn proof(
        &self,
        method: &http::Method,
        url: &reqwest::Url,
        now: SystemTime,
        access_token: Option<&str>,
    ) -> Result<http::HeaderValue, KeyError> {
        let mut claims = serde_json::json!({
            "jti": random_id()?,
            "htm": method.as_str(),
            "htu": htu(url),
            "iat": now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        });
        if let Some(nonce) = self.nonce(url) {
            claims["nonce"] = nonce.into();
        }
        if let Some(token) = access_token {
            claims["ath"] = ath(token).into();
        }
        let jws = self.0.key.compact(&self.0.header_b64, &claims)?;
        let mut v = http::HeaderValue::try_from(jws).map_err(KeyError::HeaderValue)?;
        v.set_sensitive(true);
        Ok(v)
    }

    /// The nonce `url`'s origin sent last, if any.
    pub fn nonce(&self, url: &reqwest::Url) -> Option<String> {
        self.nonces().get(&origin(url)).cloned()
    }

    /// Remembers the `DPoP-Nonce` of an answer from `url`'s origin (servers may send
    /// one with any answer, §8.2). Whether it differs from the one remembered: only a new
    /// nonce is worth a retry after `use_dpop_nonce`.
    pub fn remember_nonce(&self, url: &reqwest::Url, headers: &http::HeaderMap) -> bool {
        let Some(nonce) = headers
            .get(DPOP_NONCE)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            return false;
        };
        let mut nonces = self.nonces();
        let key = origin(url);
        if nonces.get(&key).is_some_and(|n| n == nonce) {
            return false;
        }
        nonces.insert(key, nonce.to_owned());
        true
    }

    fn nonces(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.nonces.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

/// The `htu` of a proof: the URL without query and fragment (RFC 9449 §4.2), as the
/// URL parser normalized it (lowercase scheme and host, no default port).
pub fn htu(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.into()
}

/// The `ath` of a proof: base64url of the SHA-256 of the access token's ASCII (§4.2).
pub fn ath(access_token: &str) -> String {
    sha256_b64(access_token.as_bytes())
}

/// Whether a `401`'s `WWW-Authenticate` says `error="use_dpop_nonce"` (§9): the token
/// is fine, the proof lacked the nonce the resource server wants. The error code exists
/// only for DPoP, so its presence is enough, whatever other challenges come with it.
pub fn asks_for_nonce(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(USE_DPOP_NONCE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn htu_drops_query_and_fragment_and_normalizes() {
        assert_eq!(
            htu(&url("HTTPS://API.Example.com:443/a/b?x=1&y=2#frag")),
            "https://api.example.com/a/b"
        );
        assert_eq!(
            htu(&url("http://127.0.0.1:8080/token")),
            "http://127.0.0.1:8080/token"
        );
    }

    #[test]
    fn ath_is_the_rfc_example() {
        // RFC 9449 §7.1, figure 13: the access token and its `ath`.
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn nonces_are_kept_per_origin() {
        let k = DpopKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut h = http::HeaderMap::new();
        h.insert(DPOP_NONCE, http::HeaderValue::from_static("n1"));
        let a = url("https://as.example/token?x");
        assert!(k.remember_nonce(&a, &h));
        assert!(
            !k.remember_nonce(&url("https://as.example/other"), &h),
            "same"
        );
        assert_eq!(k.nonce(&url("https://as.example/x")).as_deref(), Some("n1"));
        assert_eq!(k.nonce(&url("https://api.example/x")), None);
        assert_eq!(k.nonce(&url("https://as.example:8443/x")), None);
        let mut www = http::HeaderMap::new();
        www.insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(r#"DPoP error="use_dpop_nonce", error_description="x""#),
        );
        assert!(asks_for_nonce(&www));
        assert!(!asks_for_nonce(&h));
        let dbg = format!("{k:?}");
        assert!(dbg.contains(k.thumbprint()), "{dbg}");
    }
}
