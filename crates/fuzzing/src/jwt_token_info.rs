//! The broker's judgement of a JWT access token, as `GET /auth-broker/token-info`
//! and RFC 7662 introspection make it: JWS parse, `typ` and `kid`, key, `alg`,
//! signature, `iss`, then `exp`/`nbf`/`iat`/`aud` (`auth_broker_server::inspect`),
//! against the fixture keys at the fixture clock second.

use crate::fixture::{self, AUDIENCE, ISSUER, NOW};
use auth_broker_jwt::{Policy, Verified};
use serde_json::Value;

/// The verdict on `token`, with the store lookups (revocation, client) left out.
pub fn judge(token: &str, audience: Option<&str>) -> Result<Verified, String> {
    let policy = Policy::new(ISSUER);
    let policy = match audience {
        Some(a) => policy.audience(a),
        None => policy,
    };
    policy
        .judge(
            token,
            |kid| fixture::fixture().verifiers.get(kid).map(|k| &**k),
            NOW,
        )
        .map_err(|f| f.to_string())
}

/// Judges the token [`fixture::token_from`] reads from `data`. An active token is
/// typed `at+jwt`, names a fixture key, is this issuer's, unexpired, already valid,
/// and for the audience when one was asked for. A refusal never repeats the token.
pub fn run(data: &[u8]) {
    let Some((token, with_audience)) = fixture::token_from(data) else {
        return;
    };
    let audience = with_audience.then_some(AUDIENCE);
    match judge(&token, audience) {
        Ok(active) => {
            let header = active.header.as_ref();
            assert!(
                header
                    .and_then(|h| h.typ.as_deref())
                    .is_some_and(|t| auth_broker_jwt::ACCESS_TOKEN_TYPES
                        .iter()
                        .any(|a| t.eq_ignore_ascii_case(a))),
                "an active token without typ at+jwt"
            );
            assert!(
                header
                    .and_then(|h| h.kid.as_deref())
                    .is_some_and(|k| fixture::fixture().verifiers.contains_key(k)),
                "an active token with an unknown kid"
            );
            assert_eq!(
                active.raw.get("iss").and_then(Value::as_str),
                Some(ISSUER)
            );
            assert!(
                active.claims.exp.saturating_add(60) > NOW,
                "an active token expired at {}",
                active.claims.exp
            );
            if let Some(aud) = audience {
                assert!(active.claims.aud.contains(aud));
            }
        }
        Err(reason) => {
            if token.len() >= 64 {
                assert!(!reason.contains(&token), "the reason repeats the token");
            }
        }
    }
}
