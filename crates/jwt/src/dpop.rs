//! The judgement of a DPoP proof (RFC 9449 §4.3): one place for the token endpoint
//! and, next, for token-info, introspection callers and the guard, with a typed
//! [`ProofFault`] whose messages are written once.
//!
//! The checks, in the RFC's order: a compact JWS; `typ` `dpop+jwt`; an accepted
//! asymmetric `alg` (never `none` or a MAC); a public `jwk` in the header that the
//! `alg` fits and that verifies the signature; no `crit`; the claims `jti`, `htm` (the
//! request's method), `htu` (its URL without query and fragment, compared after RFC
//! 3986 §6.2.2-§6.2.3 normalization of scheme, host and default port), `iat` within
//! the accepted window; `nonce` when the server gave one; `ath` (the SHA-256 of the
//! access token) when one is presented with the proof. The proof's key is named by
//! its RFC 7638 thumbprint (`jkt`), which a bound token carries as `cnf.jkt`. Replay
//! of a `jti` is the caller's to check (it holds the cache).

use crate::assertion::{
    ASSERTION_ALGS, ClaimProblem, ClientKey, MAX_JTI_CHARS, date_claim, string_claim,
};
use auth_broker_proto::admin::PRIVATE_JWK_MEMBERS;
use auth_broker_proto::{Jwk, Untrusted};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";

/// The algorithms a proof may be signed with, as `dpop_signing_alg_values_supported`
/// lists them (RFC 9449 §5.1).
pub const PROOF_ALGS: [&str; 4] = ASSERTION_ALGS;

/// How old a proof's `iat` may be, unless set otherwise (RFC 9449 §11.1: a short
/// window bounds the replay cache).
pub const DEFAULT_MAX_AGE_SECS: i64 = 300;

/// The request a proof must be for.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The HTTP method, as sent (`POST`).
    pub method: &'a str,
    /// The URL the request was sent to, as the server is known to its clients.
    pub url: &'a str,
    /// The access token presented with the proof (resource requests), whose hash
    /// the proof must carry as `ath`.
    pub access_token: Option<&'a str>,
    /// The nonce the server gave the client, when it requires one.
    pub nonce: Option<&'a str>,
}

/// The time window of a proof.
#[derive(Debug, Clone, Copy)]
pub struct ProofPolicy {
    /// How old `iat` may be, in seconds.
    pub max_age: i64,
    /// The clock skew allowed for an `iat` in the future.
    pub leeway: i64,
}

impl Default for ProofPolicy {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_MAX_AGE_SECS,
            leeway: 60,
        }
    }
}

/// An accepted proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key: what a bound token's `cnf.jkt` is.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The server nonce the proof carries (§8), for a server that checks nonces
    /// itself rather than naming one in [`ProofRequest::nonce`].
    pub nonce: Option<String>,
}

/// Why a DPoP proof is refused (`invalid_dpop_proof`, RFC 9449 §5, §7.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofFault {
    #[error("the DPoP proof is not a compact JWT: {0}")]
    Format(crate::JwtFormatError),
    #[error(
        "the DPoP proof's header has typ {}, not \"dpop+jwt\" (RFC 9449 §4.2)",
        .0.as_ref().map_or_else(|| "none".to_owned(), |t| format!("'{t}'"))
    )]
    Type(Option<Untrusted>),
    #[error(
        "the DPoP proof is signed with alg '{0}'; sign it with ES256, EdDSA, RS256 or PS256 (RFC 9449 §4.2: asymmetric, never none)"
    )]
    Algorithm(Untrusted),
    #[error(
        "the DPoP proof's header has a crit member (RFC 7515 §4.1.11) and no extension is understood here; leave crit out"
    )]
    Critical,
    #[error(
        "the DPoP proof's header has no jwk: put the public key that signs it there (RFC 9449 §4.2)"
    )]
    NoKey,
    #[error(
        "the DPoP proof's jwk holds a private key member ('{0}'): send the public key only, and treat the private key as exposed"
    )]
    PrivateKey(&'static str),
    #[error("the DPoP proof's jwk cannot check an {alg} signature: {why}")]
    UnusableKey { alg: Untrusted, why: String },
    #[error(
        "the DPoP proof's signature does not verify with the jwk in its header: it was signed with another key, or altered"
    )]
    Signature,
    #[error("the DPoP proof has no {0} claim (RFC 9449 §4.2: jti, htm, htu and iat are required)")]
    Missing(&'static str),
    #[error("the DPoP proof's {claim} claim is not {expected}")]
    Mistyped {
        claim: &'static str,
        expected: &'static str,
    },
    #[error(
        "the DPoP proof's jti is longer than {MAX_JTI_CHARS} characters or has control characters"
    )]
    BadJti,
    #[error(
        "the DPoP proof is for method '{found}' (htm), but the request is a {expected}: make a new proof for each request"
    )]
    Method { found: Untrusted, expected: String },
    #[error(
        "the DPoP proof is for '{found}' (htu), but the request went to '{expected}': the proof's htu must be the URL the client sends to, without query and fragment (a proxy that rewrites the URL breaks this)"
    )]
    Url { found: Untrusted, expected: String },
    #[error(
        "the DPoP proof was made {age} s ago (iat); at most {max_age} s are accepted: make a new proof for each request, and check the client's clock"
    )]
    TooOld { age: i64, max_age: i64 },
    #[error("the DPoP proof was made {ahead} s in the future (iat); check the client's clock")]
    InFuture { ahead: i64 },
    #[error(
        "the DPoP proof has no nonce, or not the one the server gave: send the last DPoP-Nonce received (RFC 9449 §8)"
    )]
    Nonce,
    #[error(
        "the DPoP proof has no ath, or one that is not the SHA-256 of this access token: the proof must be made for the token it comes with (RFC 9449 §4.2)"
    )]
    AccessTokenHash,
    #[error(
        "the DPoP proof's jti was used before: a proof is accepted once; make a new one, with a new jti, for each request (RFC 9449 §11.1)"
    )]
    Replayed,
    #[error(
        "the access token is bound to another key (cnf.jkt '{token}') than the DPoP proof's ('{proof}'): send the proof made with the key the token was issued for"
    )]
    Binding { token: Untrusted, proof: String },
}

impl From<ClaimProblem> for ProofFault {
    fn from(p: ClaimProblem) -> Self {
        match p {
            ClaimProblem::Missing(c) => Self::Missing(c),
            ClaimProblem::Mistyped { claim, expected } => Self::Mistyped { claim, expected },
        }
    }
}

/// The `ath` of an access token (RFC 9449 §4.2): its SHA-256, base64url.
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        access_token.as_bytes(),
    ))
}

/// `url` without query and fragment, with its scheme and host in lower case and a
/// default port left out (RFC 3986 §6.2.2.1, §6.2.3), as RFC 9449 §4.3 compares `htu`.
pub fn normalized_htu(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut authority = authority.to_ascii_lowercase();
    for (s, port) in [("https", ":443"), ("http", ":80")] {
        if scheme == s && authority.ends_with(port) {
            authority.truncate(authority.len() - port.len());
        }
    }
    let path = if path.is_empty() { "/" } else { path };
    format!("{scheme}://{authority}{path}")
}

/// The RFC 7638 thumbprint of a public JWK given as JSON.
fn thumbprint_of(jwk: &Value) -> String {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str).map(str::to_owned);
    crate::thumbprint(&Jwk {
        kty: member("kty").unwrap_or_default(),
        kid: String::new(),
        use_: None,
        alg: None,
        crv: member("crv"),
        x: member("x"),
        y: member("y"),
        n: member("n"),
        e: member("e"),
    })
}

/// Judges `proof` (the `DPoP` header's value) for `request` at `now`.
pub fn judge_proof(
    proof: &str,
    request: &ProofRequest<'_>,
    policy: &ProofPolicy,
    now: i64,
) -> Result<Proof, ProofFault> {
    let jwt = crate::parse(proof).map_err(ProofFault::Format)?;
    // The header again as JSON: `jwk` is not among the members `Header` keeps.
    let header: Value = proof
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice(&h).ok())
        .unwrap_or_default();
    let typ = jwt.header.typ.as_deref();
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYPE)) {
        return Err(ProofFault::Type(typ.map(Untrusted::new)));
    }
    let alg = jwt.header.alg.as_str();
    if !PROOF_ALGS.contains(&alg) {
        return Err(ProofFault::Algorithm(Untrusted::new(alg)));
    }
    if jwt.header.crit.is_some() {
        return Err(ProofFault::Critical);
    }
    let Some(jwk) = header.get("jwk").filter(|j| j.is_object()) else {
        return Err(ProofFault::NoKey);
    };
    if let Some(m) = PRIVATE_JWK_MEMBERS.iter().find(|m| jwk.get(**m).is_some()) {
        return Err(ProofFault::PrivateKey(m));
    }
    let key = ClientKey::from_jwk(jwk).map_err(|why| ProofFault::UnusableKey {
        alg: Untrusted::new(alg),
        why,
    })?;
    if !key.accepts(alg) {
        return Err(ProofFault::UnusableKey {
            alg: Untrusted::new(alg),
            why: format!("it is a key for {}", key.algs().join(", ")),
        });
    }
    if !key.verify(alg, jwt.signing_input.as_bytes(), &jwt.signature) {
        return Err(ProofFault::Signature);
    }
    let c = &jwt.claims;
    let string = |name: &'static str| string_claim(c, name).map_err(ProofFault::from);
    let jti = string("jti")?;
    if jti.chars().count() > MAX_JTI_CHARS || jti.chars().any(char::is_control) {
        return Err(ProofFault::BadJti);
    }
    let htm = string("htm")?;
    if htm != request.method {
        return Err(ProofFault::Method {
            found: Untrusted::new(htm),
            expected: request.method.to_owned(),
        });
    }
    let htu = string("htu")?;
    let expected = normalized_htu(request.url);
    if normalized_htu(htu) != expected {
        return Err(ProofFault::Url {
            found: Untrusted::new(htu),
            expected,
        });
    }
    let iat = date_claim(c, "iat")?.ok_or(ProofFault::Missing("iat"))?;
    if iat > now.saturating_add(policy.leeway) {
        return Err(ProofFault::InFuture {
            ahead: iat.saturating_sub(now),
        });
    }
    let age = now.saturating_sub(iat);
    if age > policy.max_age {
        return Err(ProofFault::TooOld {
            age,
            max_age: policy.max_age,
        });
    }
    if let Some(nonce) = request.nonce
        && c.get("nonce").and_then(Value::as_str) != Some(nonce)
    {
        return Err(ProofFault::Nonce);
    }
    if let Some(token) = request.access_token
        && c.get("ath").and_then(Value::as_str) != Some(ath(token).as_str())
    {
        return Err(ProofFault::AccessTokenHash);
    }
    Ok(Proof {
        jkt: thumbprint_of(jwk),
        jti: jti.to_owned(),
        iat,
        nonce: c.get("nonce").and_then(Value::as_str).map(str::to_owned),
    })
}

/// Why a token was presented the wrong way for its binding (RFC 9449 §7.1), or with a
/// proof that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresentationFault {
    #[error(
        "this token is bound to a key (DPoP, cnf.jkt): send it as 'Authorization: DPoP <token>' with a DPoP proof of this request in the DPoP header (RFC 9449 §7.1); as a Bearer token it is refused"
    )]
    BoundAsBearer,
    #[error(
        "this token is not bound to a key (it has no cnf.jkt): send it as 'Authorization: Bearer <token>'"
    )]
    UnboundAsDpop,
    #[error(
        "the request has no DPoP header: a DPoP token comes with a proof of the request, made with the token's key (RFC 9449 §7.1)"
    )]
    NoProof,
    #[error("the request has more than one DPoP header; send one proof (RFC 9449 §4.3)")]
    ProofTwice,
    #[error(transparent)]
    Proof(#[from] ProofFault),
}

impl PresentationFault {
    /// Whether the fault is in the proof (`invalid_dpop_proof`) rather than in how the
    /// token was sent (`invalid_token`).
    pub fn is_proof_fault(&self) -> bool {
        matches!(self, Self::NoProof | Self::ProofTwice | Self::Proof(_))
    }
}

/// The request's one `DPoP` header value, if it has one (RFC 9449 §4.3: not two).
pub fn one_proof<'a>(
    mut proofs: impl Iterator<Item = &'a str>,
) -> Result<Option<&'a str>, PresentationFault> {
    let first = proofs.next();
    if proofs.next().is_some() {
        return Err(PresentationFault::ProofTwice);
    }
    Ok(first)
}

/// How a token was presented: the `Authorization` scheme, the token's binding
/// (`cnf.jkt`, from its judgement) and the `DPoP` header values. A bound token needs
/// the `DPoP` scheme and a proof by its key for `request` (whose `access_token` is the
/// token); an unbound one the `Bearer` scheme. The accepted proof is returned, for the
/// caller to check its `jti` is new.
pub fn judge_presentation<'a>(
    dpop_scheme: bool,
    cnf_jkt: Option<&str>,
    proofs: impl Iterator<Item = &'a str>,
    request: &ProofRequest<'_>,
    policy: &ProofPolicy,
    now: i64,
) -> Result<Option<Proof>, PresentationFault> {
    match (dpop_scheme, cnf_jkt) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(PresentationFault::BoundAsBearer),
        (true, None) => Err(PresentationFault::UnboundAsDpop),
        (true, Some(jkt)) => {
            let proof = one_proof(proofs)?.ok_or(PresentationFault::NoProof)?;
            let proof = judge_proof(proof, request, policy, now)?;
            check_binding(jkt, &proof)?;
            Ok(Some(proof))
        }
    }
}

/// RFC 9449 §7.1: a token bound to `token_jkt` (its `cnf.jkt`) goes only with a proof
/// by that key.
pub fn check_binding(token_jkt: &str, proof: &Proof) -> Result<(), ProofFault> {
    if token_jkt == proof.jkt {
        Ok(())
    } else {
        Err(ProofFault::Binding {
            token: Untrusted::new(token_jkt),
            proof: proof.jkt.clone(),
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
    const URL: &str = "https://broker.example/auth-broker/request-token";

    fn request() -> ProofRequest<'static> {
        ProofRequest {
            method: "POST",
            url: URL,
            access_token: None,
            nonce: None,
        }
    }

    fn proof(s: &Signer, alg: &str, claims: &Value) -> String {
        s.sign(
            &json!({"typ": "dpop+jwt", "alg": alg, "jwk": s.jwk("k")}),
            claims,
        )
    }

    fn claims() -> Value {
        json!({"jti": "p-1", "htm": "POST", "htu": URL, "iat": NOW})
    }

    #[test]
    fn every_algorithm_is_accepted_and_named_by_its_thumbprint() {
        for alg in PROOF_ALGS {
            let s = Signer::new(alg);
            let p = judge_proof(
                &proof(&s, alg, &claims()),
                &request(),
                &ProofPolicy::default(),
                NOW,
            )
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
            let mut jwk = s.jwk("k");
            jwk.as_object_mut().unwrap().remove("kid");
            assert_eq!(p.jkt, thumbprint_of(&jwk), "{alg}");
            assert_eq!((p.jti.as_str(), p.iat), ("p-1", NOW));
        }
    }

    #[test]
    fn each_fault_has_its_own_message() {
        let s = Signer::new("ES256");
        let other = Signer::new("ES256");
        let with = |name: &str, v: Value| {
            let mut c = claims();
            if v.is_null() {
                c.as_object_mut().unwrap().remove(name);
            } else {
                c[name] = v;
            }
            proof(&s, "ES256", &c)
        };
        let mut private = s.jwk("k");
        private["d"] = json!("AAAA");
        let token = "an.access.token";
        let rows: Vec<(String, ProofRequest, &str)> = vec![
            ("x.y".into(), request(), "not a compact JWT"),
            (
                s.sign(
                    &json!({"typ": "JWT", "alg": "ES256", "jwk": s.jwk("k")}),
                    &claims(),
                ),
                request(),
                "typ 'JWT', not \"dpop+jwt\"",
            ),
            (
                s.sign(&json!({"alg": "ES256", "jwk": s.jwk("k")}), &claims()),
                request(),
                "typ none",
            ),
            (
                s.sign(
                    &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": s.jwk("k")}),
                    &claims(),
                ),
                request(),
                "alg 'HS256'",
            ),
            (
                s.sign(&json!({"typ": "dpop+jwt", "alg": "ES256"}), &claims()),
                request(),
                "has no jwk",
            ),
            (
                s.sign(
                    &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
                    &claims(),
                ),
                request(),
                "private key member ('d')",
            ),
            (
                s.sign(
                    &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": s.jwk("k")}),
                    &claims(),
                ),
                request(),
                "cannot check an EdDSA signature",
            ),
            (
                s.sign(
                    &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": other.jwk("k")}),
                    &claims(),
                ),
                request(),
                "signature does not verify",
            ),
            (
                s.sign(
                    &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": s.jwk("k"), "crit": ["x"]}),
                    &claims(),
                ),
                request(),
                "crit",
            ),
            (with("jti", Value::Null), request(), "no jti claim"),
            (
                with("htm", json!("GET")),
                request(),
                "method 'GET' (htm), but the request is a POST",
            ),
            (
                with("htu", json!("https://elsewhere/token")),
                request(),
                "is for 'https://elsewhere/token' (htu)",
            ),
            (
                with(
                    "htu",
                    json!("HTTPS://Broker.Example:443/auth-broker/request-token?x=1"),
                ),
                request(),
                "",
            ),
            (with("iat", json!(NOW - 301)), request(), "made 301 s ago"),
            (
                with("iat", json!(NOW + 61)),
                request(),
                "61 s in the future",
            ),
            (
                with("iat", json!("now")),
                request(),
                "iat claim is not a NumericDate",
            ),
            (with("iat", json!(i64::MIN)), request(), "s ago"),
            (
                proof(&s, "ES256", &claims()),
                ProofRequest {
                    nonce: Some("n-1"),
                    ..request()
                },
                "no nonce",
            ),
            (
                with("nonce", json!("n-1")),
                ProofRequest {
                    nonce: Some("n-1"),
                    ..request()
                },
                "",
            ),
            (
                proof(&s, "ES256", &claims()),
                ProofRequest {
                    access_token: Some(token),
                    ..request()
                },
                "no ath",
            ),
            (
                with("ath", json!(ath(token))),
                ProofRequest {
                    access_token: Some(token),
                    ..request()
                },
                "",
            ),
            (
                with("ath", json!(ath("another"))),
                ProofRequest {
                    access_token: Some(token),
                    ..request()
                },
                "not the SHA-256 of this access token",
            ),
        ];
        let mut wrong = Vec::new();
        for (p, req, needle) in rows {
            let verdict =
                judge_proof(&p, &req, &ProofPolicy::default(), NOW).map_err(|f| f.to_string());
            let ok = match (&verdict, needle) {
                (Ok(_), "") => true,
                (Err(m), n) => !n.is_empty() && m.contains(n) && !m.contains('\n'),
                _ => false,
            };
            if !ok {
                wrong.push(format!("{needle:?}: {verdict:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_bound_token_goes_only_with_its_key() {
        let s = Signer::new("EdDSA");
        let p = judge_proof(
            &proof(&s, "EdDSA", &claims()),
            &request(),
            &ProofPolicy::default(),
            NOW,
        )
        .unwrap();
        assert!(check_binding(&p.jkt, &p).is_ok());
        let refused = check_binding("another-thumbprint", &p)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("bound to another key"), "{refused}");
    }

    #[test]
    fn htu_normalization() {
        for (a, b) in [
            ("HTTPS://A.example:443/x?q#f", "https://a.example/x"),
            ("http://a.example:80", "http://a.example/"),
            ("http://a.example:8080/x", "http://a.example:8080/x"),
        ] {
            assert_eq!(normalized_htu(a), b);
        }
        // The path is compared as it is: case matters there.
        assert_ne!(
            normalized_htu("https://a.example/X"),
            normalized_htu("https://a.example/x")
        );
    }

    proptest::proptest! {
        #[test]
        fn judging_never_panics(p in "[A-Za-z0-9_.\\-]{0,300}", url in "[a-zA-Z:/.?#0-9]{0,60}") {
            let req = ProofRequest { method: "GET", url: &url, access_token: Some("t"), nonce: None };
            let _ = judge_proof(&p, &req, &ProofPolicy::default(), NOW);
            let _ = normalized_htu(&url);
        }
    }
}
