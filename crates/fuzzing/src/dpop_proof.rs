//! The judgement of a DPoP proof (RFC 9449 §4.3, `auth_broker_jwt::dpop`), the code
//! the token endpoint, token-info and the guard run on a `DPoP` header from the
//! network: JWS parse, `typ`, `alg`, `crit`, the embedded public `jwk` (no private
//! member), its signature, `jti`, `htm`, `htu` (compared after RFC 3986
//! normalization), `iat`, `nonce`, `ath`; then the `cnf.jkt` binding.
//!
//! Input as [`fixture::token_from`] reads it, except that signed modes make proofs:
//! mode 2 under `{"typ":"dpop+jwt","alg","jwk"}` with the picked fixture key's public
//! JWK; mode 3 under the fuzzer's header, with that `jwk` added when it has none. So
//! the fuzzer reaches the claim checks, and can still try every header.

use crate::fixture::{self, NOW};
use auth_broker_jwt::dpop::{
    PROOF_ALGS, PROOF_TYPE, Proof, ProofFault, ProofPolicy, ProofRequest, ath, check_binding,
    judge_proof, normalized_htu,
};
use serde_json::{Value, json};

/// The request the proofs are judged for: a resource request with a token.
pub const URL: &str = "https://api.example.com/v1/orders";
/// The access token the proofs are for (`ath`).
pub const TOKEN: &str = "the-access-token";
/// The nonce the fixture server wants when bit 3 of the first byte is set.
pub const NONCE: &str = "fixture-nonce";

fn public_jwk(pick: u8) -> (String, Value) {
    let f = fixture::fixture();
    let key = &f.signing[usize::from(pick % 2)];
    let jwks: Value = serde_json::from_str(&f.jwks).unwrap_or_default();
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kid"] == key.kid()).cloned())
        .unwrap_or_default();
    (key.alg().as_str().to_owned(), jwk)
}

/// The proof `data` makes, and whether a nonce is wanted.
pub fn proof_from(data: &[u8]) -> Option<(String, bool)> {
    let (&mode, rest) = data.split_first()?;
    let want_nonce = mode & 8 != 0;
    let proof = match mode % 4 {
        0 | 1 => std::str::from_utf8(rest).ok()?.to_owned(),
        m => {
            let (&pick, rest) = rest.split_first()?;
            let (alg, jwk) = public_jwk(pick);
            let (header, payload) = if m == 2 {
                (json!({"typ": PROOF_TYPE, "alg": alg, "jwk": jwk}), rest)
            } else {
                let i = rest.iter().position(|b| *b == b'\n')?;
                let mut h: Value = serde_json::from_slice(&rest[..i]).ok()?;
                if let Some(o) = h.as_object_mut() {
                    o.entry("jwk").or_insert(jwk);
                }
                (h, &rest[i + 1..])
            };
            let key = &fixture::fixture().signing[usize::from(pick % 2)];
            fixture::sign(key, Some(header.to_string().as_bytes()), payload)
        }
    };
    Some((proof, want_nonce))
}

/// Judges the proof of `data` for `GET` [`URL`] with [`TOKEN`].
///
/// An accepted proof has `typ` `dpop+jwt`, an accepted `alg`, no `crit`; its `htm`
/// is `GET`, its `htu` normalizes to the URL's, its `iat` is within the window, its
/// `ath` is the token's hash, its `nonce` the wanted one when one is wanted; its
/// `jkt` is the thumbprint of a fixture key, and the binding holds for that `jkt`
/// only. A refusal never repeats the proof and is one bounded line.
pub fn run(data: &[u8]) {
    let Some((proof, want_nonce)) = proof_from(data) else {
        return;
    };
    let request = ProofRequest {
        method: "GET",
        url: URL,
        access_token: Some(TOKEN),
        nonce: want_nonce.then_some(NONCE),
    };
    let policy = ProofPolicy::default();
    match judge_proof(&proof, &request, &policy, NOW) {
        Ok(p) => accepted(&proof, &p, want_nonce, &policy),
        Err(fault) => refused(&proof, &fault),
    }
}

fn accepted(proof: &str, p: &Proof, want_nonce: bool, policy: &ProofPolicy) {
    let jwt = auth_broker_jwt::parse(proof).unwrap_or_else(|e| panic!("accepted but {e}"));
    assert!(PROOF_ALGS.contains(&jwt.header.alg.as_str()));
    assert!(
        jwt.header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYPE))
    );
    assert!(jwt.header.crit.is_none());
    let c = &jwt.claims;
    assert_eq!(c["htm"], "GET");
    assert_eq!(
        normalized_htu(c["htu"].as_str().unwrap_or_default()),
        normalized_htu(URL)
    );
    assert_eq!(c["ath"].as_str(), Some(ath(TOKEN).as_str()));
    assert!(p.iat <= NOW + policy.leeway && NOW - p.iat <= policy.max_age);
    if want_nonce {
        assert_eq!(c["nonce"].as_str(), Some(NONCE));
    }
    assert!(check_binding(&p.jkt, p).is_ok());
    assert!(check_binding("another-thumbprint", p).is_err());
}

fn refused(proof: &str, fault: &ProofFault) {
    fixture::check_refusal(proof, &fault.to_string());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The target reaches acceptance, by both fixture keys, and the nonce check.
    #[test]
    fn a_signed_proof_is_accepted() {
        let claims = json!({
            "jti": "j", "htm": "GET", "htu": "https://API.example.com:443/v1/orders?x=1",
            "iat": NOW, "ath": ath(TOKEN), "nonce": NONCE,
        })
        .to_string();
        for pick in [0u8, 1] {
            let mut data = vec![2 | 8, pick];
            data.extend(claims.as_bytes());
            let (proof, _) = proof_from(&data).unwrap();
            let request = ProofRequest {
                method: "GET",
                url: URL,
                access_token: Some(TOKEN),
                nonce: Some(NONCE),
            };
            assert!(judge_proof(&proof, &request, &ProofPolicy::default(), NOW).is_ok());
            run(&data);
        }
    }
}
