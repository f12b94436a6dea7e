//! `GET /auth-broker/token-info`: says exactly why a bearer token would be refused.
//!
//! This answers the integrator's "my token request works but my API calls return
//! 401": each way the `Authorization` header or the token can be wrong gets its own
//! message (RFC 6750 §2.1 syntax, RFC 7519 claims, this broker's keys and clients).

use super::error::ApiError;
use crate::AppState;
use auth_broker_jwt::Header;
use auth_broker_jwt::dpop::{ProofFault, ProofPolicy, ProofRequest, judge_presentation};
use auth_broker_jwt::replay::NotUsable;
use auth_broker_proto::bearer::Scheme;
use auth_broker_proto::text::escaped;
use auth_broker_proto::{AccessTokenClaims, BearerError, ErrorCode};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the broker makes of a valid bearer token.
// The members are in alphabetical order, as this answer has always listed them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Always `true`: an invalid token is a `401`.
    active: bool,
    /// The token's claims (RFC 9068 §2.2), every member as received.
    #[schema(value_type = AccessTokenClaims)]
    claims: serde_json::Value,
    /// Whole seconds until the token expires, rounded down as the token endpoint's
    /// `expires_in` is (RFC 6749 §5.1); `0` for a token past its `exp` but within
    /// the clock skew allowance.
    expires_in: u64,
    #[schema(inline)]
    format: TokenFormat,
    /// The JWS header of a JWT; `null` for an opaque token.
    #[schema(value_type = Option<Object>, required = true)]
    header: Option<Header>,
}

/// `jwt` (RFC 9068) or `opaque`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum TokenFormat {
    Jwt,
    Opaque,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
    .map_err(header_error)
}

/// Takes the token and its scheme (`Bearer`, or `DPoP` for a key-bound token, RFC
/// 9449 §7.1) out of the header.
fn presented_token(headers: &HeaderMap) -> Result<(Scheme, &str), ApiError> {
    auth_broker_proto::bearer::parse_with_dpop(
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes()),
    )
    .map_err(header_error)
}

fn header_error(e: BearerError) -> ApiError {
    {
        ApiError::InvalidToken {
            description: e.to_string(),
            // RFC 6750 §3.1: a request without credentials gets no error code.
            code: (e != BearerError::Missing).then_some(ErrorCode::InvalidToken),
        }
    }
}

/// Explain a bearer token: its claims, or exactly why it would be refused.
///
/// The "my token request works but my API calls return 401" answer: each way the
/// `Authorization` header or the token can be wrong gets its own message.
#[utoipa::path(
    get,
    path = "/auth-broker/token-info",
    tag = "oauth",
    operation_id = "token_info",
    params(Params),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token is valid", body = TokenInfo,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::InvalidToken),
        (status = 500, response = super::openapi::ServerError),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn token_info(
    State(app): State<Arc<AppState>>,
    query: Result<Query<Params>, QueryRejection>,
    chain: Option<axum::Extension<crate::mtls::PeerChain>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // axum's own rejection is a text/plain 400; every error here is RFC 6749 §5.2 JSON.
    let Query(params) = query.map_err(|e| {
        ApiError::invalid_request(format!(
            "the query string is not valid ({}); token-info takes at most one parameter: audience=<the audience your API expects>",
            escaped(&e.body_text()).max_chars(200)
        ))
    })?;
    let result = inspect(&app, &headers, params.audience.as_deref(), chain.as_deref()).await;
    if let Err(e) = &result {
        tracing::info!(error = ?e, "token-info refused a token");
    }
    result
}

async fn inspect(
    app: &AppState,
    headers: &HeaderMap,
    audience: Option<&str>,
    chain: Option<&crate::mtls::PeerChain>,
) -> Result<Response, ApiError> {
    let (scheme, raw) = presented_token(headers)?;
    let active = crate::inspect::inspect(app, raw, audience)
        .await?
        .map_err(|refusal| ApiError::invalid_token(refusal.to_string()))?;
    let jkt = active
        .verified
        .claims
        .cnf
        .as_ref()
        .and_then(|c| c.jkt.as_deref());
    let url = format!("{}/auth-broker/token-info", app.issuer);
    let request = ProofRequest {
        method: "GET",
        url: &url,
        access_token: Some(raw),
        nonce: None,
    };
    let now = app.clock.now_secs();
    let policy = ProofPolicy::default();
    let proofs = headers
        .get_all(crate::dpop::DPOP_HEADER)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let presented = judge_presentation(scheme == Scheme::Dpop, jkt, proofs, &request, &policy, now)
        .map_err(|f| ApiError::InvalidToken {
            description: f.to_string(),
            code: Some(if f.is_proof_fault() {
                ErrorCode::InvalidDpopProof
            } else {
                ErrorCode::InvalidToken
            }),
        })?;
    // RFC 8705 §3: a certificate-bound token goes with its certificate.
    if let Some(x5t) = active
        .verified
        .claims
        .cnf
        .as_ref()
        .and_then(|c| c.x5t_s256.as_deref())
    {
        auth_broker_jwt::mtls::check_binding(x5t, chain.map(crate::mtls::PeerChain::leaf))
            .map_err(|f| ApiError::invalid_token(f.to_string()))?;
    }
    if let Some(proof) = presented {
        app.dpop_replay
            .use_once(&proof, &policy, now)
            .map_err(|e| match e {
                NotUsable::Replayed => ApiError::InvalidToken {
                    description: ProofFault::Replayed.to_string(),
                    code: Some(ErrorCode::InvalidDpopProof),
                },
                NotUsable::Full => ApiError::Unavailable,
            })?;
    }
    let v = active.verified;
    let body = TokenInfo {
        active: true,
        claims: v.raw,
        expires_in: crate::expires_in(v.claims.exp, app.clock.now_nanos()),
        format: if active.opaque {
            TokenFormat::Opaque
        } else {
            TokenFormat::Jwt
        },
        header: v.header,
    };
    let body = serde_json::to_string(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}
