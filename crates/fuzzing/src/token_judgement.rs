//! The one judgement of a JWT access token (`auth_broker_jwt::Policy::judge`), the
//! code the broker's `token-info` and introspection and the guard all run on a
//! token: JWS parse, `typ`, `crit`, `alg`, `kid`, key, signature, then `iss`,
//! `exp`/`nbf`/`iat` with the leeway and `aud`; against the fixture keys at the
//! fixture clock second. The guard's entry to it (`validate_with_keys`) is run too.
//! This one target replaced two (`jwt_token_info` and `guard_token`) when the two
//! copies of the rules became one.

use crate::fixture::{self, AUDIENCE, ISSUER, LEEWAY, NOW};
use auth_broker_guard::{Claims, validate_with_keys};
use auth_broker_jwt::{ACCESS_TOKEN_TYPES, Fault, Policy, Verified, ecdsa};
use auth_broker_proto::text::{MAX_HEADER_CHARS, for_header};

/// The policy a guard for [`AUDIENCE`] uses (`with_audience`), or token-info's
/// without `?audience=`.
pub fn policy(with_audience: bool) -> Policy {
    let p = Policy::new(ISSUER).leeway(LEEWAY);
    if with_audience {
        p.audience(AUDIENCE)
    } else {
        p
    }
}

/// The verdict on `token`.
pub fn judge(token: &str, with_audience: bool) -> Result<Verified, Fault> {
    policy(with_audience).judge(
        token,
        |kid| fixture::fixture().keys.get(kid).map(|k| &**k),
        NOW,
    )
}

/// Judges the token [`fixture::token_from`] reads from `data` (bit 2 of the first
/// byte: with the audience check).
///
/// An accepted token has an access token's `typ`, no `crit`, a fixture key whose
/// `alg` the header names, this issuer, the audience when asked, and is within its
/// time window with the leeway (and the verdict's window holds `NOW`); its scopes are
/// the `scope` claim's words; the guard's entry point gives the same claims.
///
/// A refusal never repeats the token, is one line (no control characters) of bounded
/// length, and fits a `WWW-Authenticate` header.
///
/// Either way, the other encoding of an ES256 signature (its low-S form) gets the
/// very same verdict: the guard's cache files the two together.
pub fn run(data: &[u8]) {
    let Some((token, with_audience)) = fixture::token_from(data) else {
        return;
    };
    let verdict = judge(&token, with_audience);
    match &verdict {
        Ok(v) => accepted(&token, v, with_audience),
        Err(fault) => refused(&token, fault),
    }
    if let Some(low_s) = ecdsa::low_s_form(&token) {
        assert_eq!(
            judge(&low_s, with_audience),
            verdict,
            "the two encodings of one signature were judged apart"
        );
    }
}

fn accepted(token: &str, v: &Verified, with_audience: bool) {
    let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(i64::MAX);
    let header = v
        .header
        .as_ref()
        .unwrap_or_else(|| panic!("a JWT verdict without its header"));
    assert!(
        header
            .typ
            .as_deref()
            .is_some_and(|t| ACCESS_TOKEN_TYPES.iter().any(|a| t.eq_ignore_ascii_case(a))),
        "accepted with typ {:?}",
        header.typ
    );
    assert!(
        header.crit.is_none(),
        "accepted with crit {:?}",
        header.crit
    );
    let key = header
        .kid
        .as_deref()
        .and_then(|k| fixture::fixture().keys.get(k))
        .unwrap_or_else(|| panic!("accepted with an unknown kid {:?}", header.kid));
    assert_eq!(header.alg, key.alg.as_str());
    let c = &v.claims;
    assert_eq!(c.iss, ISSUER);
    assert!(!c.aud.is_empty());
    if with_audience {
        assert!(c.aud.contains(AUDIENCE), "{:?}", c.aud);
    }
    assert!(c.exp.saturating_add(leeway) > NOW, "expired: {}", c.exp);
    assert!(c.nbf.is_none_or(|t| t.saturating_sub(leeway) <= NOW));
    assert!(c.iat.is_none_or(|t| t.saturating_sub(leeway) <= NOW));
    assert!(v.valid_from <= NOW && NOW < v.valid_until, "{v:?}");
    let words: Vec<&str> = v
        .raw
        .get("scope")
        .and_then(|s| s.as_str())
        .map(|s| s.split(' ').filter(|w| !w.is_empty()).collect())
        .unwrap_or_default();
    assert_eq!(c.scopes().collect::<Vec<_>>(), words);
    let guard = validate_with_keys(token, &fixture::fixture().keys, &policy(with_audience), NOW);
    assert_eq!(guard.ok(), Some(Claims::from(v.clone())));
}

fn refused(token: &str, fault: &Fault) {
    let message = fault.to_string();
    fixture::check_refusal(token, &message);
    let header = for_header(&message).to_string();
    assert!(header.len() <= MAX_HEADER_CHARS + 3);
    assert!(
        header
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
        "{header:?}"
    );
}
