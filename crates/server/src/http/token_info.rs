//! `GET /auth-broker/token-info`: says exactly why a bearer token would be refused.
//!
//! This answers the integrator's "my token request works but my API calls return
//! 401": each way the `Authorization` header or the token can be wrong gets its own
//! message (RFC 6750 §2.1 syntax, RFC 7519 claims, this broker's keys and clients).

use super::error::ApiError;
use crate::AppState;
use crate::token;
use auth_broker_proto::{BearerError, ErrorCode};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct Params {
    /// The audience the calling API expects, to check `aud` as it would.
    audience: Option<String>,
}

/// Takes the token out of the header, or says what is wrong with the header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    auth_broker_proto::bearer::parse(
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes()),
    )
    .map_err(|e| {
        ApiError::InvalidToken {
            description: e.to_string(),
            // RFC 6750 §3.1: a request without credentials gets no error code.
            code: (e != BearerError::Missing).then_some(ErrorCode::InvalidToken),
        }
    })
}

pub async fn token_info(
    State(app): State<Arc<AppState>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let result = inspect(&app, &headers, params.audience.as_deref()).await;
    if let Err(e) = &result {
        tracing::info!(error = ?e, "token-info refused a token");
    }
    result
}

async fn inspect(
    app: &AppState,
    headers: &HeaderMap,
    audience: Option<&str>,
) -> Result<Response, ApiError> {
    let raw = bearer_token(headers)?;
    let jwt = token::parse(raw).map_err(|e| ApiError::invalid_token(e.to_string()))?;
    if jwt
        .header
        .typ
        .as_deref()
        .is_none_or(|t| !t.eq_ignore_ascii_case("at+jwt"))
    {
        return Err(ApiError::invalid_token(format!(
            "the token's header has typ {:?}, not \"at+jwt\" (RFC 9068 §2.1): it is not an access token from this broker",
            jwt.header.typ.as_deref().unwrap_or("(none)")
        )));
    }
    let Some(kid) = jwt.header.kid.as_deref() else {
        return Err(ApiError::invalid_token(
            "the token's header has no kid; this broker's tokens always name their key",
        ));
    };
    let Some(key) = app.keys.verifier(&app.store, kid).await? else {
        return Err(ApiError::invalid_token(format!(
            "the token is signed by key '{kid}', which this broker does not have: a token from another issuer or environment, or a key removed long after rotation; fetch a new token"
        )));
    };
    if jwt.header.alg != key.alg.as_str() {
        return Err(ApiError::invalid_token(format!(
            "the token's header says alg {} but key '{kid}' is {}: the header was altered",
            jwt.header.alg, key.alg
        )));
    }
    if !key.verify(jwt.signing_input.as_bytes(), &jwt.signature) {
        return Err(ApiError::invalid_token(
            "the token's signature does not verify: it was altered or truncated after it was issued; fetch a new token and send it unchanged",
        ));
    }
    let claims = &jwt.claims;
    let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
    if iss != app.issuer {
        return Err(ApiError::invalid_token(format!(
            "the token was issued by '{iss}', not by this broker ('{}')",
            app.issuer
        )));
    }
    let now = app.clock.now_secs();
    let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
    if exp <= now {
        return Err(ApiError::invalid_token(format!(
            "the token expired {} seconds ago; fetch a new one (a client should refresh before expires_in runs out)",
            now - exp
        )));
    }
    if let Some(nbf) = claims.get("nbf").and_then(|v| v.as_i64())
        && nbf > now
    {
        return Err(ApiError::invalid_token(format!(
            "the token is not valid for another {} seconds (nbf); check the clocks",
            nbf - now
        )));
    }
    let iat = claims.get("iat").and_then(|v| v.as_i64()).unwrap_or(0);
    if iat > now + 60 {
        return Err(ApiError::invalid_token(format!(
            "the token claims to be issued {} seconds in the future; check the clocks",
            iat - now
        )));
    }
    let aud = claims.get("aud").and_then(|v| v.as_str()).unwrap_or("");
    if let Some(expected) = audience
        && aud != expected
    {
        return Err(ApiError::invalid_token(format!(
            "the token is for the audience '{aud}', not '{expected}'; ask the broker for a token for '{expected}' (the client's audience setting)"
        )));
    }
    let client_id = claims
        .get("client_id")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    match app.store.get_client(client_id).await? {
        None => {
            return Err(ApiError::invalid_token(format!(
                "the client '{client_id}' that this token was issued to has been deleted since"
            )));
        }
        Some(c) if !c.enabled => {
            return Err(ApiError::invalid_token(format!(
                "the client '{client_id}' that this token was issued to has been disabled since"
            )));
        }
        Some(_) => {}
    }
    let body = serde_json::json!({
        "active": true,
        "expires_in": exp - now,
        "header": jwt.header,
        "claims": claims,
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response())
}
