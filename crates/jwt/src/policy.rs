//! The judgement of an access token: one [`Policy`] (what a verifier accepts) and
//! one way to apply it, [`Policy::judge`], for the broker's `token-info` and
//! introspection and for the guard. Like jsonwebtoken's `Validation`, but the time
//! is passed in (`now`), so tests never sleep and the two sides of a test can judge
//! at the same second; and the verdict is a typed [`Fault`] whose message is
//! written once.
//!
//! The order of the checks is RFC 9068 §4's: the header (`typ`, RFC 7515 §4.1.11
//! `crit`, an accepted `alg`, a `kid`), then the key and the signature (RFC 8725
//! §3.1: the key decides the algorithm, not the token), and only then, with the
//! signature checked, the claims: `iss`, `exp`, `nbf`, `iat` (with the leeway),
//! `aud`, and the types of the rest.

use crate::fault::{Claim, ClaimFault, Fault, HeaderFault, KeyFault, TimeFault};
use crate::{Header, JwtFormatError, SigningAlg, Unverified, VerifyingKey};
use auth_broker_proto::claims::numeric_date_secs;
use auth_broker_proto::{AccessTokenClaims, Audience, Confirmation, Untrusted};
use serde_json::{Map, Value};
use std::time::Duration;

/// The clock skew allowed on `exp`, `nbf` and `iat` unless set otherwise: the same
/// for the broker and the guard, so they never disagree about a token near a limit.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// The `typ` values of an access token (RFC 9068 §2.1), matched without regard to
/// case; RFC 7515 §4.1.9 lets the `application/` prefix be left out, and RFC 9068
/// §2.1 uses the short form.
pub const ACCESS_TOKEN_TYPES: [&str; 2] = ["at+jwt", "application/at+jwt"];

/// The claims a token must carry by default: the issuer, the expiry and the
/// audience. RFC 9068 §2.2 lists more (`sub`, `client_id`, `iat`, `jti`), which
/// this broker always writes; verifiers have never required them, and
/// [`Policy::require`] adds them.
pub const DEFAULT_REQUIRED: [Claim; 3] = [Claim::Iss, Claim::Exp, Claim::Aud];

/// What a verifier accepts.
#[derive(Debug, Clone)]
pub struct Policy {
    issuer: String,
    audiences: Vec<String>,
    leeway: i64,
    required: Vec<Claim>,
    types: Vec<String>,
    algorithms: Vec<SigningAlg>,
}

impl Policy {
    /// Tokens from `issuer` (their `iss`), any audience, [`DEFAULT_LEEWAY`],
    /// [`DEFAULT_REQUIRED`], [`ACCESS_TOKEN_TYPES`], every [`SigningAlg`].
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: Vec::new(),
            leeway: secs(DEFAULT_LEEWAY),
            required: DEFAULT_REQUIRED.to_vec(),
            types: ACCESS_TOKEN_TYPES.iter().map(|t| (*t).to_owned()).collect(),
            algorithms: SigningAlg::ALL.to_vec(),
        }
    }

    /// Also accepts tokens for `audience`. With none, `aud` is not compared (it is
    /// still required by default).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The clock skew allowed on `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = secs(leeway);
        self
    }

    /// The claims a token must carry (instead of [`DEFAULT_REQUIRED`]).
    pub fn require(mut self, claims: &[Claim]) -> Self {
        self.required = claims.to_vec();
        self
    }

    /// The `typ` values accepted (instead of [`ACCESS_TOKEN_TYPES`]).
    pub fn types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.types = types.into_iter().map(Into::into).collect();
        self
    }

    /// The algorithms accepted (instead of all of [`SigningAlg::ALL`]).
    pub fn algorithms(mut self, algorithms: &[SigningAlg]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The leeway in whole seconds.
    pub fn leeway_secs(&self) -> i64 {
        self.leeway
    }

    fn requires(&self, claim: Claim) -> bool {
        self.required.contains(&claim)
    }

    /// Judges `token` at clock second `now`, with `keys` giving the key a `kid`
    /// names (or `None`: an unknown key). The judgement for callers that hold the
    /// keys; a caller whose key lookup waits (a JWKS fetch, a store) runs the same
    /// two steps itself: [`Policy::read`], then [`Read::finish`].
    pub fn judge<'k>(
        &self,
        token: &str,
        keys: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
        now: i64,
    ) -> Result<Verified, Fault> {
        let read = self.read(token)?;
        let key = keys(read.kid());
        read.finish(key, now)
    }

    /// The checks before a key is looked up: a compact JWS (RFC 7515 §7.1) typed as
    /// an access token (RFC 9068 §2.1), without critical extensions (RFC 7515
    /// §4.1.11), with an accepted `alg`, that names its key.
    pub fn read<'t>(&self, token: &'t str) -> Result<Read<'t, '_>, Fault> {
        let jwt = crate::parse(token)?;
        let h = &jwt.header;
        let typ = h.typ.as_deref();
        if !typ.is_some_and(|t| self.types.iter().any(|a| a.eq_ignore_ascii_case(t))) {
            return Err(HeaderFault::WrongType {
                found: typ.map(Untrusted::new),
                expected: self.types.first().cloned().unwrap_or_default(),
            }
            .into());
        }
        check_crit(h.crit.as_ref())?;
        // RFC 7515 §4.1.1: `alg` is case-sensitive.
        let Some(alg) = self
            .algorithms
            .iter()
            .copied()
            .find(|a| a.as_str() == h.alg)
        else {
            return Err(HeaderFault::AlgorithmNotAccepted {
                alg: Untrusted::new(&h.alg),
                accepted: self
                    .algorithms
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        };
        if h.kid.is_none() {
            return Err(HeaderFault::NoKid.into());
        }
        Ok(Read {
            policy: self,
            jwt,
            alg,
        })
    }

    /// The claim checks, with the leeway on every time comparison, on claims whose
    /// origin is already trusted: a JWT payload whose signature verified (from
    /// [`Read::finish`]), an RFC 7662 answer from the issuer, or the broker's own
    /// record of an opaque token. The order is the broker's: `iss`, `exp`, `nbf`,
    /// `iat`, `aud`, then the types of the other claims.
    ///
    /// NumericDates have no range (RFC 7519 §2), so the arithmetic saturates:
    /// `nbf: -9223372036854775808` once overflowed `nbf - leeway` in the guard, and
    /// `exp: i64::MIN` overflowed `now - exp` in token-info (found by fuzzing).
    pub fn judge_claims(&self, raw: Value, now: i64) -> Result<Verified, Fault> {
        let Value::Object(map) = &raw else {
            return Err(JwtFormatError::NotJson("payload").into());
        };
        let leeway = self.leeway;
        let iss = self.string(map, Claim::Iss)?;
        if let Some(found) = &iss
            && *found != self.issuer
        {
            return Err(ClaimFault::WrongIssuer {
                found: Untrusted::new(found),
                expected: self.issuer.clone(),
            }
            .into());
        }
        let exp = self.date(map, Claim::Exp)?.unwrap_or(i64::MAX);
        if exp.saturating_add(leeway) <= now {
            return Err(TimeFault::Expired {
                secs_ago: now.saturating_sub(exp),
                leeway,
            }
            .into());
        }
        let nbf = self.not_ahead(map, Claim::Nbf, now, |secs| TimeFault::NotYetValid { secs })?;
        let iat = self.not_ahead(map, Claim::Iat, now, |secs| TimeFault::IssuedInFuture {
            secs,
        })?;
        let aud = self.judge_audience(map)?;
        let client_id = self.string(map, Claim::ClientId)?.unwrap_or_default();
        let sub = self
            .string(map, Claim::Sub)?
            .unwrap_or_else(|| client_id.clone());
        let jti = self.string(map, Claim::Jti)?;
        let scope = self.string(map, Claim::Scope)?;
        let cnf = self.confirmation(map)?;
        let from = [nbf, iat]
            .into_iter()
            .flatten()
            .max()
            .map_or(i64::MIN, |t| t.saturating_sub(leeway));
        let claims = AccessTokenClaims {
            iss: iss.unwrap_or_else(|| self.issuer.clone()),
            sub,
            client_id,
            aud,
            iat,
            exp,
            nbf,
            jti,
            scope,
            cnf,
        };
        Ok(Verified {
            header: None,
            claims,
            raw,
            valid_from: from,
            valid_until: exp.saturating_add(leeway),
        })
    }

    /// `aud`, required and compared as the policy says; absent and not required,
    /// an empty list.
    fn judge_audience(&self, map: &Map<String, Value>) -> Result<Audience, Fault> {
        let aud = match map.get(Claim::Aud.as_str()) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Audience::One(s.clone())),
            Some(Value::Array(all)) => Some(Audience::Many(
                all.iter()
                    .map(|a| a.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or(ClaimFault::WrongType { claim: Claim::Aud })?,
            )),
            Some(_) => return Err(ClaimFault::WrongType { claim: Claim::Aud }.into()),
        }
        .filter(|a| !a.is_empty());
        let Some(aud) = aud else {
            if self.requires(Claim::Aud) || !self.audiences.is_empty() {
                return Err(ClaimFault::Missing(Claim::Aud).into());
            }
            return Ok(Audience::Many(Vec::new()));
        };
        if !self.audiences.is_empty() && !self.audiences.iter().any(|a| aud.contains(a)) {
            return Err(Fault::Audience {
                found: Untrusted::new(&aud.to_string()),
                expected: Untrusted::new(&self.audiences[0]),
            });
        }
        Ok(aud)
    }

    /// A NumericDate that must not lie ahead of `now` by more than the leeway
    /// (`nbf`, RFC 7519 §4.1.5; `iat`, §4.1.6); `ahead` names the fault with the
    /// seconds it lies ahead.
    fn not_ahead(
        &self,
        map: &Map<String, Value>,
        claim: Claim,
        now: i64,
        ahead: fn(i64) -> TimeFault,
    ) -> Result<Option<i64>, Fault> {
        let t = self.date(map, claim)?;
        match t {
            Some(t) if t.saturating_sub(self.leeway) > now => {
                Err(ahead(t.saturating_sub(now)).into())
            }
            _ => Ok(t),
        }
    }

    /// A string claim; `None` when absent or `null` and not required.
    fn string(&self, map: &Map<String, Value>, claim: Claim) -> Result<Option<String>, Fault> {
        match map.get(claim.as_str()) {
            None | Some(Value::Null) => self.absent(claim),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ClaimFault::WrongType { claim }.into()),
        }
    }

    /// `cnf` (RFC 7800 §3.1): an object; of its members, `jkt` (RFC 9449 §6.1) and
    /// `x5t#S256` (RFC 8705 §3.1) are read and must be strings. An object with
    /// neither binds the token to nothing and reads as no `cnf`.
    fn confirmation(&self, map: &Map<String, Value>) -> Result<Option<Confirmation>, Fault> {
        let wrong = || Fault::from(ClaimFault::WrongType { claim: Claim::Cnf });
        let obj = match map.get(Claim::Cnf.as_str()) {
            None | Some(Value::Null) => return self.absent(Claim::Cnf),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(wrong()),
        };
        let member = |name: &str| match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong()),
        };
        let cnf = Confirmation {
            jkt: member("jkt")?,
            x5t_s256: member("x5t#S256")?,
        };
        Ok((!cnf.is_empty()).then_some(cnf))
    }

    /// A NumericDate claim (whole seconds; see [`numeric_date_secs`]).
    fn date(&self, map: &Map<String, Value>, claim: Claim) -> Result<Option<i64>, Fault> {
        match map.get(claim.as_str()) {
            None | Some(Value::Null) => self.absent(claim),
            Some(Value::Number(n)) => Ok(Some(numeric_date_secs(n))),
            Some(_) => Err(ClaimFault::WrongType { claim }.into()),
        }
    }

    fn absent<T>(&self, claim: Claim) -> Result<Option<T>, Fault> {
        if self.requires(claim) {
            Err(ClaimFault::Missing(claim).into())
        } else {
            Ok(None)
        }
    }
}

/// RFC 7515 §4.1.11: `crit` lists header parameters the recipient must understand,
/// or refuse the token; it must be a non-empty array of names. This verifier
/// understands no extension, so any `crit` at all is refused: precisely, when it
/// names something, and as malformed otherwise.
fn check_crit(crit: Option<&Value>) -> Result<(), HeaderFault> {
    let Some(crit) = crit else { return Ok(()) };
    let names: Option<Vec<&str>> = crit
        .as_array()
        .filter(|a| !a.is_empty())
        .and_then(|a| a.iter().map(Value::as_str).collect());
    match names {
        Some(names) => Err(HeaderFault::CriticalExtension {
            names: Untrusted::new(&format!("'{}'", names.join("', '"))),
        }),
        None => Err(HeaderFault::MalformedCrit),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A token that passed [`Policy::read`]: its header is an access token's and names
/// a key. [`Read::kid`] is what to look up; [`Read::finish`] completes the judgement.
#[derive(Debug)]
pub struct Read<'t, 'p> {
    policy: &'p Policy,
    jwt: Unverified<'t>,
    alg: SigningAlg,
}

impl Read<'_, '_> {
    /// The key the token names.
    pub fn kid(&self) -> &str {
        self.jwt.header.kid.as_deref().unwrap_or_default()
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.jwt.header
    }

    /// The rest of the judgement with the key the `kid` names (`None`: no such key):
    /// the header's `alg` is the key's (RFC 8725 §3.1), the signature verifies, and
    /// then the claims ([`Policy::judge_claims`]).
    pub fn finish(self, key: Option<&VerifyingKey>, now: i64) -> Result<Verified, Fault> {
        let kid = self.kid();
        let Some(key) = key else {
            return Err(KeyFault::Unknown {
                kid: Untrusted::new(kid),
            }
            .into());
        };
        if key.alg != self.alg {
            return Err(KeyFault::AlgorithmMismatch {
                header: Untrusted::new(&self.jwt.header.alg),
                kid: Untrusted::new(kid),
                key: key.alg,
            }
            .into());
        }
        if !key.verify(self.jwt.signing_input.as_bytes(), &self.jwt.signature) {
            return Err(Fault::Signature);
        }
        // Only now, with the signature checked, may the claims be trusted.
        let mut verified = self.policy.judge_claims(self.jwt.claims, now)?;
        verified.header = Some(self.jwt.header);
        Ok(verified)
    }
}

/// An accepted token: its claims as the judgement read them, and the span of clock
/// seconds in which the verdict stands (`valid_from <= now < valid_until`, leeway
/// included), for a cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The JWS header; `None` when the claims did not come from a JWT.
    pub header: Option<Header>,
    pub claims: AccessTokenClaims,
    /// Every member as received.
    pub raw: Value,
    pub valid_from: i64,
    pub valid_until: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecdsa;
    use auth_broker_proto::Jwk;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    const NOW: i64 = 1_000;

    fn policy() -> Policy {
        Policy::new("https://idp").audience("https://api")
    }

    fn claims() -> Value {
        json!({"iss":"https://idp","aud":"https://api","exp":1000 + 500,"iat":NOW,"client_id":"c","scope":"a b","jti":"j"})
    }

    fn with(name: &str, v: Value) -> Value {
        let mut c = claims();
        c[name] = v;
        c
    }

    fn fault(raw: Value) -> Option<Fault> {
        policy().judge_claims(raw, NOW).err()
    }

    #[test]
    fn accepted_claims_and_their_window() {
        let v = policy()
            .judge_claims(claims(), NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.claims.sub, "c", "sub defaults to client_id");
        assert_eq!(v.claims.scopes().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(v.claims.aud, Audience::One("https://api".into()));
        assert_eq!((v.valid_from, v.valid_until), (NOW - 60, 1_560));
        assert_eq!(v.raw, claims());
        // An array audience, with the expected one anywhere in it.
        let v = policy().judge_claims(with("aud", json!(["x", "https://api"])), NOW);
        assert!(v.is_ok());
        // Without an expected audience, any is fine; a floating-point date is cut.
        let v = Policy::new("https://idp")
            .judge_claims(with("exp", json!(1_500.9)), NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.claims.exp, 1_500);
    }

    #[test]
    fn each_claim_fault_has_its_verdict() {
        let time = |f: TimeFault| Some(Fault::Time(f));
        assert_eq!(
            fault(with("exp", json!(NOW - 61))),
            time(TimeFault::Expired {
                secs_ago: 61,
                leeway: 60
            })
        );
        assert_eq!(
            fault(with("exp", json!(NOW - 59))),
            None,
            "within the leeway"
        );
        assert_eq!(
            fault(with("nbf", json!(NOW + 200))),
            time(TimeFault::NotYetValid { secs: 200 })
        );
        assert_eq!(fault(with("nbf", json!(NOW + 60))), None);
        assert_eq!(
            fault(with("iat", json!(NOW + 61))),
            time(TimeFault::IssuedInFuture { secs: 61 })
        );
        assert_eq!(
            fault(with("aud", json!(["x", "y"]))),
            Some(Fault::Audience {
                found: Untrusted::new("x, y"),
                expected: Untrusted::new("https://api")
            })
        );
        assert_eq!(
            fault(with("iss", json!("https://evil"))),
            Some(Fault::Claim(ClaimFault::WrongIssuer {
                found: Untrusted::new("https://evil"),
                expected: "https://idp".into()
            }))
        );
        let missing = |c| Some(Fault::Claim(ClaimFault::Missing(c)));
        let wrong = |claim| Some(Fault::Claim(ClaimFault::WrongType { claim }));
        for c in DEFAULT_REQUIRED {
            assert_eq!(fault(with(c.as_str(), Value::Null)), missing(c), "{c}");
        }
        assert_eq!(fault(with("aud", json!([]))), missing(Claim::Aud));
        assert_eq!(fault(with("exp", json!("soon"))), wrong(Claim::Exp));
        assert_eq!(fault(with("aud", json!(["a", 1]))), wrong(Claim::Aud));
        assert_eq!(fault(with("aud", json!({}))), wrong(Claim::Aud));
        assert_eq!(fault(with("client_id", json!(7))), wrong(Claim::ClientId));
        assert_eq!(fault(with("scope", json!(["a"]))), wrong(Claim::Scope));
        assert_eq!(
            fault(json!([1])),
            Some(Fault::Format(JwtFormatError::NotJson("payload")))
        );
        // Required claims are the policy's: an introspection answer need not carry
        // iss or exp (RFC 7662 §2.2), a stricter verifier can require jti.
        let bare = json!({"aud": "https://api"});
        let lenient = policy().require(&[Claim::Aud]);
        let v = lenient
            .judge_claims(bare.clone(), NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (v.claims.iss.as_str(), v.claims.exp),
            ("https://idp", i64::MAX)
        );
        let strict = policy().require(&[Claim::Jti]);
        assert_eq!(strict.judge_claims(bare, NOW).err(), missing(Claim::Jti));
        // The messages: one each, with what to do next.
        assert_eq!(
            fault(with("exp", json!(NOW - 61)))
                .map(|f| f.to_string())
                .as_deref(),
            Some(
                "the token expired 61 seconds ago (clock skew allowance 60 s); fetch a new one (a client should refresh before expires_in runs out)"
            )
        );
        assert_eq!(
            fault(with("exp", json!("soon")))
                .map(|f| f.to_string())
                .as_deref(),
            Some(
                "the token's 'exp' claim is not a NumericDate (a number of seconds since the epoch, RFC 7519 §2): the token was not made by this issuer"
            )
        );
    }

    /// NumericDates have no range (RFC 7519 §2): every one of these once overflowed
    /// in the guard or in token-info.
    #[test]
    fn extreme_times_do_not_overflow() {
        assert!(fault(with("nbf", json!(i64::MIN))).is_none());
        assert!(fault(with("iat", json!(i64::MIN))).is_none());
        assert_eq!(
            fault(with("exp", json!(i64::MIN))),
            Some(Fault::Time(TimeFault::Expired {
                secs_ago: i64::MAX,
                leeway: 60
            }))
        );
        let at = |now| {
            policy()
                .judge_claims(with("nbf", json!(i64::MAX)), now)
                .err()
        };
        assert_eq!(
            at(-500),
            Some(Fault::Time(TimeFault::NotYetValid { secs: i64::MAX }))
        );
        let far = with("exp", json!(i64::MAX));
        let v = policy().judge_claims(far, i64::MAX - 1);
        assert_eq!(v.map(|v| v.valid_until).ok(), Some(i64::MAX));
    }

    /// An ES256 key: its verifier (from its JWK, as a JWKS gives it) and a signer.
    fn key(kid: &str) -> (VerifyingKey, impl Fn(&Value, &Value) -> String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .unwrap_or_else(|e| panic!("{e}"));
        let point = pair.public_key().as_ref().to_vec();
        let jwk = Jwk {
            kty: "EC".into(),
            kid: kid.into(),
            use_: None,
            alg: Some("ES256".into()),
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&point[33..])),
            n: None,
            e: None,
        };
        let verifier = VerifyingKey::from_jwk(&jwk).unwrap_or_else(|| panic!("jwk"));
        let sign = move |header: &Value, payload: &Value| {
            let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
            let input = format!("{}.{}", enc(header), enc(payload));
            let sig = pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            let mut sig = sig.as_ref().to_vec();
            ecdsa::normalize_es256(&mut sig);
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
        };
        (verifier, sign)
    }

    #[test]
    fn the_header_and_the_signature_are_judged_before_the_claims() {
        let (k, sign) = key("k1");
        let p = policy();
        let judge = |t: &str| p.judge(t, |kid| (kid == "k1").then_some(&k), NOW);
        let message = |t: &str| judge(t).err().map(|f| f.to_string());
        let h = json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"});
        let hdr = |name: &str, v: Value| {
            let mut h = h.clone();
            if v.is_null() {
                h.as_object_mut().map(|o| o.remove(name));
            } else {
                h[name] = v;
            }
            sign(&h, &claims())
        };
        let good = sign(&h, &claims());
        let v = judge(&good).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.header.map(|h| h.kid), Some(Some("k1".to_owned())));
        for typ in ["application/at+jwt", "AT+JWT"] {
            assert!(judge(&hdr("typ", json!(typ))).is_ok(), "{typ}");
        }
        // The other encoding of the same ES256 signature verifies too.
        let (input, sig) = good.rsplit_once('.').unwrap_or_default();
        let mut twin = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
        ecdsa::es256_twin(&mut twin);
        assert!(judge(&format!("{input}.{}", URL_SAFE_NO_PAD.encode(twin))).is_ok());

        let header = |f| Some(Fault::Header(f));
        assert_eq!(
            judge(&hdr("typ", json!("JWT"))).err(),
            header(HeaderFault::WrongType {
                found: Some(Untrusted::new("JWT")),
                expected: "at+jwt".into()
            })
        );
        assert_eq!(
            message(&hdr("typ", Value::Null)).as_deref(),
            Some(
                "the token's header has typ (none), not \"at+jwt\" (RFC 9068 §2.1): it is not an access token from this issuer"
            )
        );
        assert_eq!(
            judge(&hdr("crit", json!(["exp", "b64"]))).err(),
            header(HeaderFault::CriticalExtension {
                names: Untrusted::new("'exp', 'b64'")
            })
        );
        for bad in [json!([]), json!("exp"), json!([1]), json!({})] {
            assert_eq!(
                judge(&hdr("crit", bad.clone())).err(),
                header(HeaderFault::MalformedCrit),
                "{bad}"
            );
        }
        let null_crit = sign(
            &json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt", "crit": null}),
            &claims(),
        );
        assert_eq!(judge(&null_crit).err(), header(HeaderFault::MalformedCrit));
        for alg in ["none", "HS256", "es256", "PS256"] {
            assert!(
                matches!(
                    judge(&hdr("alg", json!(alg))).err(),
                    Some(Fault::Header(HeaderFault::AlgorithmNotAccepted { .. }))
                ),
                "{alg}"
            );
        }
        assert_eq!(
            message(&hdr("alg", json!("none"))).as_deref(),
            Some(
                "the token's header says alg none, which is not accepted here (only ES256, EdDSA, RS256, RFC 8725 §3.1): a token from another issuer, or one altered to pass without a valid signature"
            )
        );
        let es_only = policy().algorithms(&[SigningAlg::Es256]);
        let edsa = hdr("alg", json!("EdDSA"));
        assert!(matches!(
            es_only.judge(&edsa, |_| Some(&k), NOW),
            Err(Fault::Header(HeaderFault::AlgorithmNotAccepted { .. }))
        ));
        assert_eq!(
            judge(&edsa).err(),
            Some(Fault::Key(KeyFault::AlgorithmMismatch {
                header: Untrusted::new("EdDSA"),
                kid: Untrusted::new("k1"),
                key: SigningAlg::Es256
            }))
        );
        assert_eq!(
            judge(&hdr("kid", Value::Null)).err(),
            header(HeaderFault::NoKid)
        );
        let unknown = hdr("kid", json!("k2\n"));
        assert_eq!(
            message(&unknown).as_deref(),
            Some(
                r"the token is signed by key 'k2\n', which the issuer's JWKS does not have: a token from another issuer or environment, or a key removed long after rotation; fetch a new token"
            )
        );
        // The claims are judged only under a good signature.
        let tampered = format!(
            "{}.{}.{}",
            good.split('.').next().unwrap_or_default(),
            URL_SAFE_NO_PAD.encode(with("exp", json!(0)).to_string()),
            sig
        );
        assert_eq!(judge(&tampered).err(), Some(Fault::Signature));
        assert_eq!(
            judge("abc").err(),
            Some(Fault::Format(JwtFormatError::Parts(1)))
        );
    }

    #[test]
    fn a_read_token_names_its_key_for_a_lookup_that_waits() {
        let (k, sign) = key("k1");
        let t = sign(
            &json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}),
            &claims(),
        );
        let p = policy();
        let read = p.read(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.kid(), "k1");
        assert_eq!(read.header().alg, "ES256");
        assert!(read.finish(Some(&k), NOW).is_ok());
    }
}
