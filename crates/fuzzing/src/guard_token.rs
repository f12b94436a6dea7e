//! The guard's validation of a bearer token in JWT mode: the `Authorization` header
//! (RFC 6750 §2.1), then JWS parse, `typ`, `kid`, key, `alg`, signature and claims
//! (RFC 9068 §4), against the fixture JWKS at the fixture clock second
//! (`auth_broker_guard::validate_with_keys`, the code `Guard::validate` runs).

use crate::fixture::{self, AUDIENCE, ISSUER, LEEWAY, NOW};
use auth_broker_guard::{Claims, TokenError, validate_with_keys};
use auth_broker_proto::bearer;

/// Validates `token` as a guard for [`AUDIENCE`] would.
pub fn validate(token: &str) -> Result<Claims, TokenError> {
    validate_with_keys(
        token,
        &fixture::fixture().guard_keys,
        ISSUER,
        AUDIENCE,
        LEEWAY,
        NOW,
    )
}

/// Validates the token [`fixture::token_from`] reads from `data`, sent as
/// `Authorization: Bearer <token>` (bit 2 of the first byte sends the token as the
/// whole header instead, to exercise the header parser on it). Accepted claims are
/// this issuer's, for this audience, within their time window with the leeway, and
/// the scopes are the `scope` claim's words. A refusal never repeats the token.
pub fn run(data: &[u8]) {
    let Some((token, bare)) = fixture::token_from(data) else {
        return;
    };
    let header = if bare {
        token.clone()
    } else {
        format!("Bearer {token}")
    };
    let Ok(token) = bearer::parse(std::iter::once(header.as_bytes())) else {
        return;
    };
    let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(i64::MAX);
    match validate(token) {
        Ok(claims) => {
            assert_eq!(claims.iss, ISSUER);
            assert!(claims.aud.iter().any(|a| a == AUDIENCE), "{:?}", claims.aud);
            assert!(
                claims.exp.saturating_add(leeway) > NOW,
                "expired: {}",
                claims.exp
            );
            assert!(claims.nbf.is_none_or(|t| t.saturating_sub(leeway) <= NOW));
            assert!(claims.iat.is_none_or(|t| t.saturating_sub(leeway) <= NOW));
            assert!(claims.raw.is_object());
            let scope = claims.raw.get("scope").and_then(|s| s.as_str());
            let words: Vec<&str> = scope
                .map(|s| s.split(' ').filter(|w| !w.is_empty()).collect())
                .unwrap_or_default();
            assert_eq!(claims.scopes, words);
        }
        Err(e) => {
            let msg = e.to_string();
            if token.len() >= 64 {
                assert!(!msg.contains(token), "the error repeats the token");
            }
        }
    }
}
