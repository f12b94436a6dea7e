//! The judgement of a `private_key_jwt` client assertion (RFC 7523 §3,
//! `auth_broker_jwt::assertion`), the code every form endpoint runs on a
//! `client_assertion` from the network: JWS parse, `crit`, `alg`, the issuer, then
//! the key (by `kid`, or each), the signature, `sub`, `aud`, `exp` and its bound,
//! `nbf`, `iat`, `jti`. The client's keys are the fixture keys' public JWK Set, at
//! the fixture clock second; tokens signed by them reach the claim checks.

use crate::fixture::{self, ISSUER, LEEWAY, NOW};
use auth_broker_jwt::assertion::{
    ASSERTION_ALGS, Assertion, AssertionFault, AssertionPolicy, ClientKeys,
    DEFAULT_MAX_LIFETIME_SECS, MAX_JTI_CHARS, peek_issuer,
};
use std::sync::OnceLock;

/// The token endpoint the fixture broker names.
pub const TOKEN_ENDPOINT: &str = "https://broker.example.com/auth-broker/request-token";

/// The fixture client's keys: the public halves of the fixture keys.
pub fn keys() -> &'static ClientKeys {
    static K: OnceLock<ClientKeys> = OnceLock::new();
    K.get_or_init(|| ClientKeys::from_json(&fixture::fixture().jwks))
}

/// What the fixture broker accepts.
pub fn policy() -> AssertionPolicy {
    AssertionPolicy {
        audiences: vec![ISSUER.to_owned(), TOKEN_ENDPOINT.to_owned()],
        max_lifetime: DEFAULT_MAX_LIFETIME_SECS,
        leeway: i64::try_from(LEEWAY.as_secs()).unwrap_or(60),
    }
}

/// The verdict on `token`: its claimed client, and the judgement.
pub fn judge(token: &str) -> Result<(String, Assertion), AssertionFault> {
    let peeked = peek_issuer(token)?;
    let accepted = peeked.judge(keys(), &policy(), NOW)?;
    Ok((peeked.issuer().to_owned(), accepted))
}

/// Judges the token [`fixture::token_from`] reads from `data`.
///
/// An accepted assertion names an accepted `alg` and has no `crit`; its `iss` and
/// `sub` are one non-empty string; its `aud` names the broker; its `exp` is within
/// the leeway of now and at most the bound ahead, `nbf` and `iat` not in the future;
/// its `jti` is short and without control characters.
///
/// A refusal never repeats the token, is one line of bounded length.
pub fn run(data: &[u8]) {
    let Some((token, _)) = fixture::token_from(data) else {
        return;
    };
    match judge(&token) {
        Ok((iss, a)) => accepted(&token, &iss, &a),
        Err(fault) => refused(&token, &fault),
    }
}

fn accepted(token: &str, iss: &str, a: &Assertion) {
    let jwt = auth_broker_jwt::parse(token).unwrap_or_else(|e| panic!("accepted but {e}"));
    assert!(
        ASSERTION_ALGS.contains(&jwt.header.alg.as_str()),
        "{:?}",
        jwt.header
    );
    assert!(jwt.header.crit.is_none());
    let c = &jwt.claims;
    assert!(!iss.is_empty());
    assert_eq!(c["iss"].as_str(), Some(iss));
    assert_eq!(c["sub"].as_str(), Some(iss));
    let p = policy();
    let aud_ok = match &c["aud"] {
        serde_json::Value::String(s) => p.audiences.contains(s),
        serde_json::Value::Array(v) => v.iter().any(|s| {
            s.as_str()
                .is_some_and(|s| p.audiences.iter().any(|a| a == s))
        }),
        _ => false,
    };
    assert!(aud_ok, "accepted for aud {}", c["aud"]);
    assert!(a.exp.saturating_add(p.leeway) > NOW, "expired: {}", a.exp);
    assert!(
        a.exp <= NOW + p.max_lifetime + p.leeway,
        "too far ahead: {}",
        a.exp
    );
    assert!(a.jti.chars().count() <= MAX_JTI_CHARS && !a.jti.chars().any(char::is_control));
}

fn refused(token: &str, fault: &AssertionFault) {
    fixture::check_refusal(token, &fault.to_string());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The target reaches acceptance: a fixture-signed assertion with the right
    /// claims is accepted, with and without `kid`, by ES256 and EdDSA keys.
    #[test]
    fn a_signed_assertion_is_accepted() {
        let claims = serde_json::json!({
            "iss": "c", "sub": "c", "aud": TOKEN_ENDPOINT,
            "exp": NOW + 60, "iat": NOW, "jti": "j",
        })
        .to_string();
        for pick in [0u8, 1] {
            let mut data = vec![2, pick];
            data.extend(claims.as_bytes());
            let (token, _) = fixture::token_from(&data).unwrap();
            assert_eq!(judge(&token).unwrap().0, "c");
            let alg = ["ES256", "EdDSA"][usize::from(pick)];
            let mut data = vec![3, pick];
            data.extend(format!("{{\"alg\":\"{alg}\"}}\n{claims}").as_bytes());
            let (token, _) = fixture::token_from(&data).unwrap();
            assert!(judge(&token).is_ok(), "{alg} without kid");
            run(&data);
        }
    }
}
