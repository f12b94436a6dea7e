//! Reading an access token back: is it active, and if not, exactly why.
//!
//! One judgement for `token-info` (which explains the verdict to a person),
//! RFC 7662 introspection (which only says `active` or not) and RFC 7009 revocation
//! (which needs to know whose token it is).

use crate::AppState;
use crate::keys::VerifyingKey;
use crate::secret;
use crate::store::StoreError;
use crate::token;
use serde_json::{Value, json};

/// Opaque tokens carry this prefix, so a reader knows where to look them up (and a
/// secret scanner can spot a leaked one).
pub const OPAQUE_PREFIX: &str = "abo_";

/// A token that is active now.
#[derive(Debug, Clone)]
pub struct Active {
    /// The JWS header, for JWTs.
    pub header: Option<token::Header>,
    /// The claims (for opaque tokens, the stored equivalents).
    pub claims: Value,
    pub client_id: String,
    pub jti: String,
    pub exp: i64,
    pub opaque: bool,
}

/// Why a token is not active, in words for the integrator; never repeats the token.
pub type Reason = String;

fn claim_str<'a>(claims: &'a Value, name: &str) -> &'a str {
    claims.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Judges a token. `Ok(Err(reason))` is a token that is not active; `Err` is a store
/// failure (the caller answers 503, not "inactive").
pub async fn inspect(
    app: &AppState,
    raw: &str,
    audience: Option<&str>,
) -> Result<Result<Active, Reason>, StoreError> {
    let active = if raw.starts_with(OPAQUE_PREFIX) {
        match opaque(app, raw).await? {
            Ok(a) => a,
            Err(r) => return Ok(Err(r)),
        }
    } else {
        match jwt(app, raw).await? {
            Ok(a) => a,
            Err(r) => return Ok(Err(r)),
        }
    };
    if let Err(reason) = check_times(&active, app.clock.now_secs(), audience) {
        return Ok(Err(reason));
    }
    if app.store.is_revoked(&active.jti).await? {
        return Ok(Err(
            "the token has been revoked (RFC 7009); fetch a new one".to_owned(),
        ));
    }
    let client_id = &active.client_id;
    match app.store.get_client(client_id).await? {
        None => Ok(Err(format!(
            "the client '{client_id}' that this token was issued to has been deleted since"
        ))),
        Some(c) if !c.enabled => Ok(Err(format!(
            "the client '{client_id}' that this token was issued to has been disabled since"
        ))),
        Some(c)
            if c.tokens_revoked_before.is_some_and(|before| {
                active
                    .claims
                    .get("iat")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MIN)
                    <= before
            }) =>
        {
            Ok(Err(format!(
                "every token issued to the client '{client_id}' up to {} was revoked (revoke-tokens); fetch a new one",
                crate::admin::rfc3339(c.tokens_revoked_before.unwrap_or_default())
            )))
        }
        Some(_) => Ok(Ok(active)),
    }
}

async fn opaque(app: &AppState, raw: &str) -> Result<Result<Active, Reason>, StoreError> {
    let Some(t) = app.store.get_opaque(&secret::token_hash(raw)).await? else {
        return Ok(Err(
            "this broker has no such opaque token: it was revoked, has expired and been cleaned up, or comes from another broker".to_owned(),
        ));
    };
    let mut claims = json!({
        "iss": app.issuer,
        "sub": t.client_id,
        "client_id": t.client_id,
        "aud": t.audience,
        "iat": t.issued_at,
        "exp": t.expires_at,
        "jti": t.jti,
    });
    if !t.scope.is_empty() {
        claims["scope"] = Value::String(t.scope.clone());
    }
    Ok(Ok(Active {
        header: None,
        claims,
        client_id: t.client_id,
        jti: t.jti,
        exp: t.expires_at,
        opaque: true,
    }))
}

async fn jwt(app: &AppState, raw: &str) -> Result<Result<Active, Reason>, StoreError> {
    let (jwt, kid) = match read_jwt(raw) {
        Ok(j) => j,
        Err(r) => return Ok(Err(r)),
    };
    let Some(key) = app.keys.verifier(&app.store, &kid).await? else {
        return Ok(Err(format!(
            "the token is signed by key '{kid}', which this broker does not have: a token from another issuer or environment, or a key removed long after rotation; fetch a new token"
        )));
    };
    Ok(check_signed(jwt, &kid, &key, &app.issuer))
}

/// The checks on a JWT before its key is looked up: a compact JWS (RFC 7515 §7.1)
/// typed as an access token (RFC 9068 §2.1) that names its key. Returns the token
/// and its `kid`.
pub fn read_jwt(raw: &str) -> Result<(token::Unverified<'_>, String), Reason> {
    let jwt = token::parse(raw).map_err(|e| e.to_string())?;
    if jwt
        .header
        .typ
        .as_deref()
        .is_none_or(|t| !t.eq_ignore_ascii_case("at+jwt"))
    {
        return Err(format!(
            "the token's header has typ {:?}, not \"at+jwt\" (RFC 9068 §2.1): it is not an access token from this broker",
            jwt.header.typ.as_deref().unwrap_or("(none)")
        ));
    }
    let Some(kid) = jwt.header.kid.clone() else {
        return Err(
            "the token's header has no kid; this broker's tokens always name their key".to_owned(),
        );
    };
    Ok((jwt, kid))
}

/// The checks with the key in hand (RFC 9068 §4): the header's `alg` is the key's
/// (RFC 8725 §3.1), the signature verifies, and the token is this issuer's. The
/// time and audience checks follow in [`check_times`].
pub fn check_signed(
    jwt: token::Unverified<'_>,
    kid: &str,
    key: &VerifyingKey,
    issuer: &str,
) -> Result<Active, Reason> {
    if jwt.header.alg != key.alg.as_str() {
        return Err(format!(
            "the token's header says alg {} but key '{kid}' is {}: the header was altered",
            jwt.header.alg, key.alg
        ));
    }
    if !key.verify(jwt.signing_input.as_bytes(), &jwt.signature) {
        return Err(
            "the token's signature does not verify: it was altered or truncated after it was issued; fetch a new token and send it unchanged".to_owned(),
        );
    }
    let iss = claim_str(&jwt.claims, "iss");
    if iss != issuer {
        return Err(format!(
            "the token was issued by '{iss}', not by this broker ('{issuer}')"
        ));
    }
    let client_id = claim_str(&jwt.claims, "client_id").to_owned();
    let jti = claim_str(&jwt.claims, "jti").to_owned();
    let exp = jwt.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    Ok(Active {
        header: Some(jwt.header),
        claims: jwt.claims,
        client_id,
        jti,
        exp,
        opaque: false,
    })
}

/// The checks that depend on the clock second `now` and on the caller's expected
/// audience: `exp` (RFC 7519 §4.1.4), `nbf` (§4.1.5), an `iat` not more than a
/// minute ahead (§4.1.6), and `aud` (§4.1.3). NumericDates have no range (RFC 7519
/// §2), so the arithmetic saturates.
pub fn check_times(active: &Active, now: i64, audience: Option<&str>) -> Result<(), Reason> {
    if active.exp <= now {
        return Err(format!(
            "the token expired {} seconds ago; fetch a new one (a client should refresh before expires_in runs out)",
            now.saturating_sub(active.exp)
        ));
    }
    if let Some(nbf) = active.claims.get("nbf").and_then(Value::as_i64)
        && nbf > now
    {
        return Err(format!(
            "the token is not valid for another {} seconds (nbf); check the clocks",
            nbf.saturating_sub(now)
        ));
    }
    let iat = active
        .claims
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if iat > now.saturating_add(60) {
        return Err(format!(
            "the token claims to be issued {} seconds in the future; check the clocks",
            iat.saturating_sub(now)
        ));
    }
    let aud = claim_str(&active.claims, "aud");
    if let Some(expected) = audience
        && aud != expected
    {
        return Err(format!(
            "the token is for the audience '{aud}', not '{expected}'; ask the broker for a token for '{expected}' (the client's audience setting)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(exp: i64, claims: Value) -> Active {
        Active {
            header: None,
            claims,
            client_id: "c".into(),
            jti: "j".into(),
            exp,
            opaque: false,
        }
    }

    #[test]
    fn time_checks_name_the_fault() {
        let ok = active(1_000, json!({"aud": "a", "iat": 0}));
        assert_eq!(check_times(&ok, 500, Some("a")), Ok(()));
        assert!(check_times(&ok, 1_000, None).is_err_and(|r| r.contains("expired 0 seconds")));
        assert!(check_times(&ok, 500, Some("b")).is_err_and(|r| r.contains("audience 'a'")));
        let early = active(1_000, json!({"nbf": 600}));
        assert!(check_times(&early, 500, None).is_err_and(|r| r.contains("another 100")));
        let ahead = active(1_000, json!({"iat": 561}));
        assert!(check_times(&ahead, 500, None).is_err_and(|r| r.contains("61 seconds")));
    }

    /// NumericDates have no range (RFC 7519 §2): `exp: i64::MIN` once overflowed
    /// `now - exp` (a panic in debug builds).
    #[test]
    fn extreme_times_do_not_overflow() {
        let t = active(i64::MIN, json!({}));
        assert!(check_times(&t, 500, None).is_err_and(|r| r.contains(&i64::MAX.to_string())));
        let t = active(i64::MAX, json!({"nbf": i64::MAX, "iat": i64::MIN}));
        assert!(check_times(&t, -500, None).is_err_and(|r| r.contains("not valid for another")));
        let t = active(i64::MAX, json!({"iat": i64::MAX}));
        assert!(check_times(&t, i64::MAX - 1, None).is_ok());
        assert!(check_times(&t, -500, None).is_err_and(|r| r.contains("future")));
    }
}
