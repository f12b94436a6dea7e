//! The judgement of a client assertion: `private_key_jwt` client authentication
//! (RFC 7523 §2.2 and §3, RFC 7521 §4.2), in one place like the access-token
//! judgement ([`crate::Policy`]), with a typed [`AssertionFault`] whose messages are
//! written once and tell the client's developer what to change.
//!
//! The order: the compact JWS, its header (`crit`, an accepted `alg`), the issuer
//! (which names the client, so the caller can load its keys: [`peek_issuer`]),
//! the key and the signature (RFC 8725 §3.1: the registered key decides which
//! algorithms it checks), and only then the claims: `sub`, `aud`, `exp` (required,
//! and not too far ahead), `nbf`, `iat`, `jti` (required; its single use is the
//! caller's, which has the store).

use crate::{JwtFormatError, Unverified};
use auth_broker_proto::Untrusted;
use aws_lc_rs::signature::{self, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The algorithms a client may sign assertions with, as the broker's metadata lists
/// them (`token_endpoint_auth_signing_alg_values_supported`, RFC 8414 §2).
pub const ASSERTION_ALGS: [&str; 4] = ["ES256", "EdDSA", "RS256", "PS256"];

/// How far ahead an assertion's `exp` may be unless set otherwise: an assertion is
/// made for one request, and its `jti` is remembered until `exp`, so a short bound
/// keeps both the replay window and the remembered set small.
pub const DEFAULT_MAX_LIFETIME_SECS: i64 = 300;

/// The longest `jti` kept: it is stored until the assertion expires.
pub const MAX_JTI_CHARS: usize = 256;

/// One public key of a client, from its registered JWK Set (RFC 7517 §4).
pub struct ClientKey {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one: then only that algorithm is accepted.
    alg: Option<String>,
    kind: KeyKind,
}

enum KeyKind {
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
    Rsa(signature::RsaPublicKeyComponents<Vec<u8>>),
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("kid", &self.kid)
            .field("algs", &self.algs())
            .finish()
    }
}

impl ClientKey {
    /// A verifier for one JWK: a P-256 `EC` key (ES256), an Ed25519 `OKP` key (EdDSA)
    /// or an `RSA` key (RS256, PS256; 2048 to 8192 bits, checked when verifying).
    /// `Err` names what makes the JWK unusable.
    pub fn from_jwk(jwk: &Value) -> Result<Self, String> {
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| {
            member(name)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or_else(|| format!("its '{name}' is missing or not base64url"))
        };
        let kind = match (member("kty"), member("crv")) {
            (Some("EC"), Some("P-256")) => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("its x and y are not 32 bytes each (P-256)".into());
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend(x);
                point.extend(y);
                KeyKind::P256(point)
            }
            (Some("OKP"), Some("Ed25519")) => {
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err("its x is not 32 bytes (Ed25519)".into());
                }
                KeyKind::Ed25519(x)
            }
            (Some("RSA"), _) => KeyKind::Rsa(signature::RsaPublicKeyComponents {
                n: bytes("n")?,
                e: bytes("e")?,
            }),
            (kty, crv) => {
                return Err(format!(
                    "kty {} crv {} is not a P-256 EC, Ed25519 OKP or RSA key",
                    kty.unwrap_or("(none)"),
                    crv.unwrap_or("(none)")
                ));
            }
        };
        let key = Self {
            kid: member("kid").map(str::to_owned),
            alg: member("alg").map(str::to_owned),
            kind,
        };
        if let Some(alg) = &key.alg
            && !key.algs().contains(&alg.as_str())
        {
            return Err(format!(
                "its alg {alg} is not one this key type signs ({})",
                key.algs().join(", ")
            ));
        }
        Ok(key)
    }

    /// The algorithms this kind of key checks.
    pub(crate) fn algs(&self) -> &'static [&'static str] {
        match self.kind {
            KeyKind::P256(_) => &["ES256"],
            KeyKind::Ed25519(_) => &["EdDSA"],
            KeyKind::Rsa(_) => &["RS256", "PS256"],
        }
    }

    /// Whether this key checks `alg` signatures.
    pub(crate) fn accepts(&self, alg: &str) -> bool {
        self.algs().contains(&alg) && self.alg.as_deref().is_none_or(|a| a == alg)
    }

    pub(crate) fn verify(&self, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
        let unparsed = |a: &'static dyn VerificationAlgorithm, k: &[u8]| {
            signature::UnparsedPublicKey::new(a, k)
                .verify(msg, sig)
                .is_ok()
        };
        match (&self.kind, alg) {
            (KeyKind::P256(k), "ES256") => unparsed(&signature::ECDSA_P256_SHA256_FIXED, k),
            (KeyKind::Ed25519(k), "EdDSA") => unparsed(&signature::ED25519, k),
            (KeyKind::Rsa(k), "RS256") => k
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            (KeyKind::Rsa(k), "PS256") => k
                .verify(&signature::RSA_PSS_2048_8192_SHA256, msg, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// A client's public keys, from its JWK Set (RFC 7517 §5). Keys that are not for
/// signatures (`use` other than `sig`) or that this broker cannot use are left out,
/// and said why in [`ClientKeys::skipped`].
#[derive(Debug, Default)]
pub struct ClientKeys {
    keys: Vec<ClientKey>,
    skipped: Vec<String>,
    /// `x5t#S256` of the first `x5c` certificate of each key that has one: the
    /// certificates a `self_signed_tls_client_auth` client may present (RFC 8705 §2.2).
    certificates: Vec<String>,
}

impl ClientKeys {
    /// The usable keys of a JWK Set.
    pub fn from_jwks(set: &Value) -> Self {
        let mut out = Self::default();
        let Some(keys) = set.get("keys").and_then(Value::as_array) else {
            out.skipped
                .push("the JWK Set has no keys array (RFC 7517 §5)".into());
            return out;
        };
        for (i, jwk) in keys.iter().enumerate() {
            // RFC 7517 §4.7: standard base64 (not base64url) of the DER.
            if let Some(der) = jwk
                .get("x5c")
                .and_then(|c| c.get(0))
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            {
                out.certificates.push(crate::mtls::x5t_s256(&der));
            }
            if jwk
                .get("use")
                .and_then(Value::as_str)
                .is_some_and(|u| u != "sig")
            {
                out.skipped
                    .push(format!("keys[{i}] is not for signatures (use)"));
                continue;
            }
            match ClientKey::from_jwk(jwk) {
                Ok(k) => out.keys.push(k),
                Err(why) => out.skipped.push(format!("keys[{i}]: {why}")),
            }
        }
        out
    }

    /// Whether a key of the set carries the certificate whose `x5t#S256` this is
    /// (first `x5c` entry, RFC 8705 §2.2).
    pub fn has_certificate(&self, x5t_s256: &str) -> bool {
        self.certificates.iter().any(|c| c == x5t_s256)
    }

    /// How many keys carry a certificate.
    pub fn certificate_count(&self) -> usize {
        self.certificates.len()
    }

    /// A JWK Set in JSON text.
    pub fn from_json(text: &str) -> Self {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => Self::from_jwks(&v),
            Err(e) => Self {
                skipped: vec![format!("the JWK Set is not JSON: {e}")],
                ..Self::default()
            },
        }
    }

    /// Why some keys of the set were left out.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this `kid` is among them.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// What an assertion must be to authenticate its client.
#[derive(Debug, Clone)]
pub struct AssertionPolicy {
    /// The audiences that name this broker (RFC 7523 §3 item 3): its issuer and its
    /// endpoints' URLs. The assertion's `aud` must contain one.
    pub audiences: Vec<String>,
    /// How far ahead `exp` may be (beyond the leeway).
    pub max_lifetime: i64,
    /// The clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: i64,
}

/// An accepted assertion: what the caller needs to enforce single use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub jti: String,
    pub exp: i64,
}

/// Why a client assertion is refused (`401 invalid_client`, RFC 7521 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionFault {
    #[error("client_assertion is not a compact JWT: {0}")]
    Format(JwtFormatError),
    #[error(
        "client_assertion is signed with alg '{alg}'; sign it with ES256, EdDSA, RS256 or PS256 (RFC 7523 §3: never none or a shared-secret MAC)"
    )]
    Algorithm { alg: Untrusted },
    #[error(
        "client_assertion's header has a crit member (RFC 7515 §4.1.11) and no extension is understood here; leave crit out"
    )]
    Critical,
    #[error(
        "client_assertion has no {0} claim (RFC 7523 §3: iss, sub, aud, exp and jti are required)"
    )]
    Missing(&'static str),
    #[error("client_assertion's {claim} claim is not {expected}")]
    Mistyped {
        claim: &'static str,
        expected: &'static str,
    },
    #[error(
        "client_assertion's iss '{0}' is not a client that authenticates with private_key_jwt: iss and sub must both be the client id of a client registered with token_endpoint_auth_method private_key_jwt"
    )]
    UnknownClient(Untrusted),
    #[error(
        "client_assertion's sub '{sub}' differs from its iss '{iss}'; both must be the client id (RFC 7523 §3)"
    )]
    Subject { iss: Untrusted, sub: Untrusted },
    #[error(
        "the body's client_id '{client_id}' differs from client_assertion's iss '{iss}'; send the client id once, or the same in both (RFC 7521 §4.2)"
    )]
    ClientIdMismatch {
        client_id: Untrusted,
        iss: Untrusted,
    },
    #[error(
        "the client has no registered key that checks {alg} signatures{}; register its public key in jwks or at jwks_uri",
        if .skipped.is_empty() { String::new() } else { format!(" ({})", .skipped) }
    )]
    NoKey { alg: Untrusted, skipped: String },
    #[error(
        "client_assertion names key '{kid}', which is not among the client's registered keys ({known}); register the key or name one of those in kid"
    )]
    UnknownKey { kid: Untrusted, known: String },
    #[error(
        "client_assertion's signature does not verify with the client's registered key{}: it was signed with another private key, or altered",
        .kid.as_ref().map(|k| format!(" '{k}'")).unwrap_or_else(|| "s".into())
    )]
    Signature { kid: Option<Untrusted> },
    #[error(
        "client_assertion's aud {found} does not name this broker; use its token endpoint URL {expected} (or its issuer)"
    )]
    Audience { found: Untrusted, expected: String },
    #[error(
        "client_assertion expired {ago} s ago (exp, with {leeway} s allowed for clock skew); make a new assertion for each request, and check the client's clock"
    )]
    Expired { ago: i64, leeway: i64 },
    #[error(
        "client_assertion's exp is {ahead} s ahead; at most {max} s are accepted (an assertion is for one request): make exp now + 60 s, or ask the broker's operator to raise --assertion-max-lifetime"
    )]
    TooFarAhead { ahead: i64, max: i64 },
    #[error("client_assertion is not valid for {wait} more s (nbf); check the client's clock")]
    NotYetValid { wait: i64 },
    #[error("client_assertion was issued {ahead} s in the future (iat); check the client's clock")]
    IssuedInFuture { ahead: i64 },
    #[error(
        "client_assertion's jti is longer than {MAX_JTI_CHARS} characters or has control characters; use a random value such as a UUID"
    )]
    BadJti,
    #[error(
        "the client's keys could not be had: {0}; the broker keeps using the last key set it fetched, and had none"
    )]
    KeysUnavailable(Untrusted),
    #[error("the client is disabled; ask the broker's operator to enable it")]
    Disabled,
    #[error(
        "client_assertion's jti '{0}' was used before: an assertion is accepted once (RFC 7523 §3 item 7); make a new one, with a new jti, for each request"
    )]
    Replayed(Untrusted),
}

/// A client assertion whose format and header are acceptable; its issuer names the
/// client whose keys [`Peeked::judge`] needs.
#[derive(Debug)]
pub struct Peeked<'t> {
    jwt: Unverified<'t>,
    issuer: String,
}

/// Parses `token` and reads its issuer, without checking the signature: the issuer
/// names the client, whose registered keys then check it ([`Peeked::judge`]).
pub fn peek_issuer(token: &str) -> Result<Peeked<'_>, AssertionFault> {
    let jwt = crate::parse(token).map_err(AssertionFault::Format)?;
    if jwt.header.crit.is_some() {
        return Err(AssertionFault::Critical);
    }
    if !ASSERTION_ALGS.contains(&jwt.header.alg.as_str()) {
        return Err(AssertionFault::Algorithm {
            alg: Untrusted::new(&jwt.header.alg),
        });
    }
    let issuer = string_claim(&jwt.claims, "iss")?.to_owned();
    Ok(Peeked { jwt, issuer })
}

/// What is wrong with a claim a client JWT (an assertion, a DPoP proof) must have.
pub(crate) enum ClaimProblem {
    Missing(&'static str),
    Mistyped {
        claim: &'static str,
        expected: &'static str,
    },
}

impl From<ClaimProblem> for AssertionFault {
    fn from(p: ClaimProblem) -> Self {
        match p {
            ClaimProblem::Missing(c) => Self::Missing(c),
            ClaimProblem::Mistyped { claim, expected } => Self::Mistyped { claim, expected },
        }
    }
}

/// A claim that must be a non-empty string.
pub(crate) fn string_claim<'v>(
    claims: &'v Value,
    name: &'static str,
) -> Result<&'v str, ClaimProblem> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(ClaimProblem::Missing(name)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(ClaimProblem::Mistyped {
            claim: name,
            expected: "a non-empty string",
        }),
    }
}

/// A NumericDate claim (RFC 7519 §2) as whole seconds; `None` when absent.
pub(crate) fn date_claim(claims: &Value, name: &'static str) -> Result<Option<i64>, ClaimProblem> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(auth_broker_proto::claims::numeric_date_secs(n))),
        Some(_) => Err(ClaimProblem::Mistyped {
            claim: name,
            expected: "a NumericDate (a number of seconds since 1970)",
        }),
    }
}

impl Peeked<'_> {
    /// The client id the assertion claims to come from (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key the header names, if it names one.
    pub fn kid(&self) -> Option<&str> {
        self.jwt.header.kid.as_deref()
    }

    /// The signature with the client's `keys`, then the claims against `policy` at
    /// `now` (Unix seconds).
    pub fn judge(
        &self,
        keys: &ClientKeys,
        policy: &AssertionPolicy,
        now: i64,
    ) -> Result<Assertion, AssertionFault> {
        let h = &self.jwt.header;
        let alg = h.alg.as_str();
        let candidates: Vec<&ClientKey> = match &h.kid {
            Some(kid) => {
                let named: Vec<&ClientKey> = keys
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if named.is_empty() {
                    let known: Vec<&str> =
                        keys.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
                    return Err(AssertionFault::UnknownKey {
                        kid: Untrusted::new(kid),
                        known: if known.is_empty() {
                            "none has a kid".into()
                        } else {
                            format!("'{}'", known.join("', '"))
                        },
                    });
                }
                named
            }
            // RFC 7515 §4.1.4: without a kid, any of the client's keys may have signed.
            None => keys.keys.iter().collect(),
        };
        let usable: Vec<&ClientKey> = candidates.into_iter().filter(|k| k.accepts(alg)).collect();
        if usable.is_empty() {
            return Err(AssertionFault::NoKey {
                alg: Untrusted::new(alg),
                skipped: keys.skipped.join("; "),
            });
        }
        let msg = self.jwt.signing_input.as_bytes();
        if !usable
            .iter()
            .any(|k| k.verify(alg, msg, &self.jwt.signature))
        {
            return Err(AssertionFault::Signature {
                kid: h.kid.as_deref().map(Untrusted::new),
            });
        }
        self.judge_claims(policy, now)
    }

    fn judge_claims(
        &self,
        policy: &AssertionPolicy,
        now: i64,
    ) -> Result<Assertion, AssertionFault> {
        let claims = &self.jwt.claims;
        let sub = string_claim(claims, "sub")?;
        if sub != self.issuer {
            return Err(AssertionFault::Subject {
                iss: Untrusted::new(&self.issuer),
                sub: Untrusted::new(sub),
            });
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            None | Some(Value::Null) => return Err(AssertionFault::Missing("aud")),
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(_) => {
                return Err(AssertionFault::Mistyped {
                    claim: "aud",
                    expected: "a string or an array of strings",
                });
            }
        };
        if !audiences
            .iter()
            .any(|a| policy.audiences.iter().any(|p| p == a))
        {
            return Err(AssertionFault::Audience {
                found: Untrusted::new(&format!("'{}'", audiences.join("', '"))),
                expected: policy.audiences.last().cloned().unwrap_or_default(),
            });
        }
        let exp = date_claim(claims, "exp")?.ok_or(AssertionFault::Missing("exp"))?;
        let leeway = policy.leeway;
        if exp.saturating_add(leeway) <= now {
            return Err(AssertionFault::Expired {
                ago: now.saturating_sub(exp),
                leeway,
            });
        }
        let ahead = exp.saturating_sub(now);
        if ahead > policy.max_lifetime.saturating_add(leeway) {
            return Err(AssertionFault::TooFarAhead {
                ahead,
                max: policy.max_lifetime,
            });
        }
        if let Some(nbf) = date_claim(claims, "nbf")?
            && nbf > now.saturating_add(leeway)
        {
            return Err(AssertionFault::NotYetValid {
                wait: nbf.saturating_sub(now),
            });
        }
        if let Some(iat) = date_claim(claims, "iat")?
            && iat > now.saturating_add(leeway)
        {
            return Err(AssertionFault::IssuedInFuture {
                ahead: iat.saturating_sub(now),
            });
        }
        let jti = string_claim(claims, "jti")?;
        if jti.chars().count() > MAX_JTI_CHARS || jti.chars().any(char::is_control) {
            return Err(AssertionFault::BadJti);
        }
        Ok(Assertion {
            jti: jti.to_owned(),
            exp,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_keys::Signer;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const CLIENT: &str = "client-1";
    const TOKEN_URL: &str = "https://broker.example/auth-broker/request-token";

    fn claims() -> Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": NOW + 60, "iat": NOW, "jti": "j-1"})
    }

    fn policy() -> AssertionPolicy {
        AssertionPolicy {
            audiences: vec!["https://broker.example".into(), TOKEN_URL.into()],
            max_lifetime: DEFAULT_MAX_LIFETIME_SECS,
            leeway: 60,
        }
    }

    fn judge(token: &str, keys: &ClientKeys) -> Result<Assertion, AssertionFault> {
        let peeked = peek_issuer(token)?;
        assert_eq!(peeked.issuer(), CLIENT);
        peeked.judge(keys, &policy(), NOW)
    }

    fn set(jwks: &[Value]) -> ClientKeys {
        ClientKeys::from_jwks(&json!({ "keys": jwks }))
    }

    #[test]
    fn every_algorithm_is_accepted_with_and_without_kid() {
        for alg in ASSERTION_ALGS {
            let s = Signer::new(alg);
            let keys = set(&[s.jwk("k1")]);
            for header in [json!({"alg": alg, "kid": "k1"}), json!({"alg": alg})] {
                let token = s.sign(&header, &claims());
                assert_eq!(
                    judge(&token, &keys),
                    Ok(Assertion {
                        jti: "j-1".into(),
                        exp: NOW + 60
                    }),
                    "{alg} {header}"
                );
            }
        }
    }

    #[test]
    fn each_fault_has_its_own_verdict_and_message() {
        let s = Signer::new("ES256");
        let other = Signer::new("ES256");
        let keys = set(&[s.jwk("k1")]);
        let h = json!({"alg": "ES256", "kid": "k1"});
        let with = |name: &str, v: Value| {
            let mut c = claims();
            if v.is_null() {
                c.as_object_mut().unwrap().remove(name);
            } else {
                c[name] = v;
            }
            s.sign(&h, &c)
        };
        let good = s.sign(&h, &claims());
        let at = good.rfind('.').unwrap() + 1;
        let first = if good[at..].starts_with('A') {
            "B"
        } else {
            "A"
        };
        let altered = format!("{}{first}{}", &good[..at], &good[at + 1..]);
        let rows: Vec<(String, &str)> = vec![
            ("a.b".into(), "not a compact JWT"),
            (s.sign(&json!({"alg": "HS256"}), &claims()), "alg 'HS256'"),
            (s.sign(&json!({"alg": "none"}), &claims()), "alg 'none'"),
            (
                s.sign(&json!({"alg": "ES256", "crit": ["x"]}), &claims()),
                "crit",
            ),
            (with("iss", Value::Null), "no iss claim"),
            (with("iss", json!(7)), "iss claim is not a non-empty string"),
            (
                other.sign(&h, &claims()),
                "does not verify with the client's registered key 'k1'",
            ),
            (altered, "does not verify"),
            (
                s.sign(&json!({"alg": "ES256", "kid": "k9"}), &claims()),
                "key 'k9', which is not among the client's registered keys ('k1')",
            ),
            (
                s.sign(&json!({"alg": "EdDSA", "kid": "k1"}), &claims()),
                "no registered key that checks EdDSA",
            ),
            (
                with("sub", json!("someone-else")),
                "sub 'someone-else' differs from its iss",
            ),
            (with("sub", Value::Null), "no sub claim"),
            (
                with("aud", json!("https://elsewhere")),
                "aud 'https://elsewhere' does not name this broker; use its token endpoint URL",
            ),
            (with("aud", Value::Null), "no aud claim"),
            (with("aud", json!(["x", TOKEN_URL])), ""),
            (with("exp", Value::Null), "no exp claim"),
            (with("exp", json!("soon")), "exp claim is not a NumericDate"),
            (with("exp", json!(NOW - 61)), "expired 61 s ago"),
            (with("exp", json!(NOW - 59)), ""),
            (
                with("exp", json!(NOW + 361)),
                "exp is 361 s ahead; at most 300 s",
            ),
            (with("exp", json!(i64::MAX)), "at most 300 s"),
            (with("exp", json!(1e300)), "at most 300 s"),
            (with("nbf", json!(NOW + 100)), "not valid for 100 more s"),
            (with("iat", json!(NOW + 100)), "issued 100 s in the future"),
            (with("iat", json!(i64::MIN)), ""),
            (with("jti", Value::Null), "no jti claim"),
            (
                with("jti", json!("x".repeat(257))),
                "jti is longer than 256",
            ),
            (with("jti", json!("a\u{0}b")), "or has control characters"),
        ];
        let mut wrong = Vec::new();
        for (token, needle) in rows {
            let verdict = judge(&token, &keys).map_err(|f| f.to_string());
            let ok = match (&verdict, needle) {
                (Ok(_), "") => true,
                (Err(m), n) => !n.is_empty() && m.contains(n) && !m.contains('\n') && m.len() < 600,
                _ => false,
            };
            if !ok {
                wrong.push(format!("{needle:?}: {verdict:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn key_sets_say_what_they_left_out() {
        let s = Signer::new("ES256");
        let keys = ClientKeys::from_jwks(&json!({"keys": [
            s.jwk("k1"),
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "ES256"},
        ]}));
        assert_eq!(keys.len(), 1);
        assert!(keys.has_kid("k1"));
        let skipped = keys.skipped().join("\n");
        for needle in [
            "crv P-384",
            "kty oct",
            "not for signatures",
            "not 32 bytes",
            "alg ES256 is not one",
        ] {
            assert!(skipped.contains(needle), "{needle}: {skipped}");
        }
        assert!(ClientKeys::from_json("{").skipped()[0].contains("not JSON"));
        // A JWK with an alg accepts only that algorithm.
        let r = Signer::new("RS256");
        let mut jwk = r.jwk("r");
        jwk["alg"] = json!("RS256");
        let keys = set(&[jwk]);
        let pss = r.sign(&json!({"alg": "PS256", "kid": "r"}), &claims());
        assert!(matches!(
            judge(&pss, &keys),
            Err(AssertionFault::NoKey { .. })
        ));
        let pkcs1 = r.sign(&json!({"alg": "RS256", "kid": "r"}), &claims());
        assert!(judge(&pkcs1, &keys).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn judging_never_panics(token in "[A-Za-z0-9_.\\-]{0,300}") {
            if let Ok(p) = peek_issuer(&token) {
                let _ = p.judge(&ClientKeys::default(), &policy(), NOW);
            }
        }
    }
}
