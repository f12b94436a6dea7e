//! Reading an access token back: is it active, and if not, exactly why.
//!
//! The token itself is judged by `auth_broker_jwt`'s [`Policy`], the one judgement
//! the guard makes too, so `token-info` and an API behind the guard give the same
//! verdict and message for the same token. What only the broker knows is added
//! here: its opaque tokens, revocations (RFC 7009), and whether the token's client
//! still exists and is enabled. This serves `token-info` (which explains the
//! verdict to a person), RFC 7662 introspection (which only says `active` or not)
//! and RFC 7009 revocation (which needs to know whose token it is).

use crate::AppState;
use crate::secret;
use crate::store::StoreError;
use auth_broker_jwt::{Fault, Policy, Verified};
use auth_broker_proto::Untrusted;
use serde_json::{Value, json};

/// Opaque tokens carry this prefix, so a reader knows where to look them up (and a
/// secret scanner can spot a leaked one).
pub const OPAQUE_PREFIX: &str = "abo_";

/// A token that is active now: the judgement's reading of it.
#[derive(Debug, Clone)]
pub struct Active {
    /// The header (for JWTs), claims and raw members. For an opaque token, the
    /// claims are the stored equivalents.
    pub verified: Verified,
    pub opaque: bool,
}

impl Active {
    /// The judgement's verdict on a token of this format.
    fn judged(verdict: Result<Verified, Fault>, opaque: bool) -> Result<Self, Refusal> {
        verdict
            .map(|verified| Self { verified, opaque })
            .map_err(Refusal::from)
    }
}

/// Why a token is not active: the judgement's fault, or one only the broker can
/// see. Every message says what to do next and never repeats the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The token fails the judgement a guard makes too.
    #[error(transparent)]
    Token(#[from] Fault),
    /// The token passes it, but this broker knows better.
    #[error(transparent)]
    Broker(#[from] BrokerFault),
}

/// What only the broker knows about a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerFault {
    #[error(
        "this broker has no such opaque token: it was revoked, has expired and been cleaned up, or comes from another broker"
    )]
    UnknownOpaque,
    #[error("the token has been revoked (RFC 7009); fetch a new one")]
    Revoked,
    #[error("the client '{client_id}' that this token was issued to has been deleted since")]
    ClientDeleted { client_id: Untrusted },
    #[error("the client '{client_id}' that this token was issued to has been disabled since")]
    ClientDisabled { client_id: Untrusted },
    #[error(
        "every token issued to the client '{client_id}' up to {before} was revoked (revoke-tokens); fetch a new one"
    )]
    AllRevoked {
        client_id: Untrusted,
        before: String,
    },
    #[error(
        "the token names no client (client_id), so this broker cannot tell whether its client still exists; this broker's tokens always carry one"
    )]
    NoClient,
}

/// The broker's policy: its own issuer, and the audience the caller expects when
/// it says (`token-info?audience=`); the leeway and everything else as the guard's
/// defaults, so the two agree.
pub fn policy(app: &AppState, audience: Option<&str>) -> Policy {
    let policy = Policy::new(app.issuer.clone());
    match audience {
        Some(a) => policy.audience(a),
        None => policy,
    }
}

/// Judges a token. `Ok(Err(refusal))` is a token that is not active; `Err` is a
/// store failure (the caller answers 503, not "inactive").
pub async fn inspect(
    app: &AppState,
    raw: &str,
    audience: Option<&str>,
) -> Result<Result<Active, Refusal>, StoreError> {
    judge(app, raw, &policy(app, audience)).await
}

/// [`inspect`] with a policy of the caller's (the admin API's guard brings its own,
/// with the same defaults).
pub async fn judge(
    app: &AppState,
    raw: &str,
    policy: &Policy,
) -> Result<Result<Active, Refusal>, StoreError> {
    let now = app.clock.now_secs();
    let judged = if raw.starts_with(OPAQUE_PREFIX) {
        opaque(app, policy, raw, now).await?
    } else {
        jwt(app, policy, raw, now).await?
    };
    let active = match judged {
        Ok(a) => a,
        Err(r) => return Ok(Err(r)),
    };
    Ok(still_valid(app, &active.verified).await?.map(|()| active))
}

/// What the store says about a token the judgement accepted: not revoked, and its
/// client still there and enabled.
async fn still_valid(app: &AppState, v: &Verified) -> Result<Result<(), Refusal>, StoreError> {
    if let Some(jti) = &v.claims.jti
        && app.store.is_revoked(jti).await?
    {
        return Ok(Err(BrokerFault::Revoked.into()));
    }
    let client_id = &v.claims.client_id;
    if client_id.is_empty() {
        return Ok(Err(BrokerFault::NoClient.into()));
    }
    let fault = match app.store.get_client(client_id).await? {
        Some(c) if !c.enabled => BrokerFault::ClientDisabled {
            client_id: Untrusted::new(client_id),
        },
        // Revoke-tokens: every token issued up to that second (the `iat` second;
        // one without `iat` cannot show it came later).
        Some(c)
            if c.tokens_revoked_before
                .is_some_and(|before| v.claims.iat.unwrap_or(i64::MIN) <= before) =>
        {
            BrokerFault::AllRevoked {
                client_id: Untrusted::new(client_id),
                before: crate::admin::rfc3339(c.tokens_revoked_before.unwrap_or_default()),
            }
        }
        Some(_) => return Ok(Ok(())),
        None => BrokerFault::ClientDeleted {
            client_id: Untrusted::new(client_id),
        },
    };
    Ok(Err(fault.into()))
}

/// An opaque token: looked up by its hash, then its stored claims judged like a
/// JWT's (expiry with the leeway, the audience asked for).
async fn opaque(
    app: &AppState,
    policy: &Policy,
    raw: &str,
    now: i64,
) -> Result<Result<Active, Refusal>, StoreError> {
    let Some(t) = app.store.get_opaque(&secret::token_hash(raw)).await? else {
        return Ok(Err(BrokerFault::UnknownOpaque.into()));
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
        claims["scope"] = Value::String(t.scope);
    }
    if let Some(cnf) = t.cnf.as_deref().and_then(|c| serde_json::from_str(c).ok()) {
        claims["cnf"] = cnf;
    }
    Ok(Active::judged(policy.judge_claims(claims, now), true))
}

/// A JWT: the judgement, with the key from this broker's key ring (reloaded from
/// the store when the `kid` is not known yet).
async fn jwt(
    app: &AppState,
    policy: &Policy,
    raw: &str,
    now: i64,
) -> Result<Result<Active, Refusal>, StoreError> {
    let read = match policy.read(raw) {
        Ok(r) => r,
        Err(f) => return Ok(Err(f.into())),
    };
    let key = app.keys.verifier(&app.store, read.kid()).await?;
    Ok(Active::judged(read.finish(key.as_deref(), now), false))
}
