//! Reading an access token back: is it active, and if not, exactly why.
//!
//! One judgement for `token-info` (which explains the verdict to a person),
//! RFC 7662 introspection (which only says `active` or not) and RFC 7009 revocation
//! (which needs to know whose token it is).

use crate::AppState;
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
    let now = app.clock.now_secs();
    if active.exp <= now {
        return Ok(Err(format!(
            "the token expired {} seconds ago; fetch a new one (a client should refresh before expires_in runs out)",
            now - active.exp
        )));
    }
    if let Some(nbf) = active.claims.get("nbf").and_then(Value::as_i64)
        && nbf > now
    {
        return Ok(Err(format!(
            "the token is not valid for another {} seconds (nbf); check the clocks",
            nbf - now
        )));
    }
    let iat = active
        .claims
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if iat > now + 60 {
        return Ok(Err(format!(
            "the token claims to be issued {} seconds in the future; check the clocks",
            iat - now
        )));
    }
    let aud = claim_str(&active.claims, "aud");
    if let Some(expected) = audience
        && aud != expected
    {
        return Ok(Err(format!(
            "the token is for the audience '{aud}', not '{expected}'; ask the broker for a token for '{expected}' (the client's audience setting)"
        )));
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
    let jwt = match token::parse(raw) {
        Ok(j) => j,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if jwt
        .header
        .typ
        .as_deref()
        .is_none_or(|t| !t.eq_ignore_ascii_case("at+jwt"))
    {
        return Ok(Err(format!(
            "the token's header has typ {:?}, not \"at+jwt\" (RFC 9068 §2.1): it is not an access token from this broker",
            jwt.header.typ.as_deref().unwrap_or("(none)")
        )));
    }
    let Some(kid) = jwt.header.kid.as_deref() else {
        return Ok(Err(
            "the token's header has no kid; this broker's tokens always name their key".to_owned(),
        ));
    };
    let Some(key) = app.keys.verifier(&app.store, kid).await? else {
        return Ok(Err(format!(
            "the token is signed by key '{kid}', which this broker does not have: a token from another issuer or environment, or a key removed long after rotation; fetch a new token"
        )));
    };
    if jwt.header.alg != key.alg.as_str() {
        return Ok(Err(format!(
            "the token's header says alg {} but key '{kid}' is {}: the header was altered",
            jwt.header.alg, key.alg
        )));
    }
    if !key.verify(jwt.signing_input.as_bytes(), &jwt.signature) {
        return Ok(Err(
            "the token's signature does not verify: it was altered or truncated after it was issued; fetch a new token and send it unchanged".to_owned(),
        ));
    }
    let iss = claim_str(&jwt.claims, "iss");
    if iss != app.issuer {
        return Ok(Err(format!(
            "the token was issued by '{iss}', not by this broker ('{}')",
            app.issuer
        )));
    }
    let client_id = claim_str(&jwt.claims, "client_id").to_owned();
    let jti = claim_str(&jwt.claims, "jti").to_owned();
    let exp = jwt.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    Ok(Ok(Active {
        header: Some(jwt.header),
        claims: jwt.claims,
        client_id,
        jti,
        exp,
        opaque: false,
    }))
}
