//! `POST /auth-broker/request-token`: the client credentials grant (RFC 6749 §4.4).

use super::client_auth::{self, Refused, refused};
use super::error::{ApiError, no_store_json};
use crate::AppState;
use crate::mtls::PeerChain;
use crate::store::ClientRecord;
use crate::usage::Outcome;
use auth_broker_jwt::dpop::{Proof, ProofFault, ProofPolicy, ProofRequest, judge_proof, one_proof};
use auth_broker_jwt::replay::NotUsable;
use auth_broker_proto::Confirmation;
use auth_broker_proto::token::TOKEN_TYPE_BEARER;
use auth_broker_proto::token::TOKEN_TYPE_DPOP;
use auth_broker_proto::{
    AccessToken, ErrorCode, Form, GRANT_CLIENT_CREDENTIALS, TokenResponse, scope,
};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;

/// The parameters of a token request (RFC 6749 §4.4.2, RFC 8707 §2); others are ignored.
const RECOGNIZED: [&str; 8] = [
    "grant_type",
    "scope",
    "audience",
    "resource",
    client_auth::CLIENT_PARAMS[0],
    client_auth::CLIENT_PARAMS[1],
    client_auth::CLIENT_PARAMS[2],
    client_auth::CLIENT_PARAMS[3],
];

/// Issue an access token: the client credentials grant (RFC 6749 §4.4).
///
/// The client authenticates with HTTP Basic (`client_secret_basic`) or with
/// `client_id` and `client_secret` in the body (`client_secret_post`), one of the two
/// (RFC 6749 §2.3). The answer is never cached (`Cache-Control: no-store`, §5.1).
#[utoipa::path(
    post,
    path = "/auth-broker/request-token",
    tag = "oauth",
    operation_id = "request_token",
    request_body(
        content = super::openapi::TokenRequest,
        content_type = "application/x-www-form-urlencoded",
        description = "RFC 6749 §4.4.2"
    ),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The token (RFC 6749 §5.1)", body = TokenResponse,
            headers(
                ("Cache-Control" = String, description = "`no-store`"),
                ("Pragma" = String, description = "`no-cache`")
            ),
            links(
                ("introspect" = (
                    operation_id = "introspect",
                    request_body = json!({"token": "$response.body#/access_token"}),
                    description = "Introspect the token (RFC 7662)"
                )),
                ("revoke" = (
                    operation_id = "revoke",
                    request_body = json!({"token": "$response.body#/access_token"}),
                    description = "Revoke the token (RFC 7009)"
                ))
            )),
        super::openapi::FormEndpointErrors,
    )
)]
pub async fn request_token(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    // The request whole rather than a `HeaderMap` extractor, which clones the headers.
    let (parts, body) = request.into_parts();
    let chain = parts.extensions.get::<PeerChain>();
    handle(&app, peer, &parts.headers, body, chain)
        .await
        .map_err(|r| client_auth::finish("token", peer, r))
}

async fn handle(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
    chain: Option<&PeerChain>,
) -> Result<Response, Refused> {
    let form = client_auth::read_form(app, headers, body, &RECOGNIZED).await?;
    check_grant_type(&form)?;
    let client = client_auth::authenticate_client(app, peer, headers, &form, chain).await?;
    let proof = dpop_proof(app, headers)?;
    if client.dpop_bound_access_tokens && proof.is_none() {
        return Err(refused(
            "invalid_dpop_proof",
            ApiError::bad(
                ErrorCode::InvalidDpopProof,
                "this client's tokens must be bound to a key (dpop_bound_access_tokens): send a DPoP proof of the token request in the DPoP header (RFC 9449 §5)",
            ),
        ));
    }
    // RFC 8705 §3: a token asked for over mutual TLS is bound to the certificate,
    // whatever the client authenticated with; RFC 9449 §5: to the proof's key. Only
    // DPoP changes the token type (§7.1): a certificate-bound token is still Bearer.
    let dpop = proof.is_some();
    let x5t = chain.map(|c| c.leaf().thumbprint().to_owned());
    let cnf = (dpop || x5t.is_some()).then(|| Confirmation {
        jkt: proof.map(|p| p.jkt),
        x5t_s256: x5t,
    });

    let granted = granted_scopes(&client, form.get_nonempty("scope"))?;
    let audience = target_audience(app, &client, &form)?;
    let now = app.clock.now_secs();
    if let Some(per_minute) = client.tokens_per_minute
        && let Err(wait) = app
            .quotas
            .take(&client.id, per_minute, std::time::Instant::now())
    {
        app.usage.count(&client.id, now, Outcome::Limited);
        return Err(Refused::from(ApiError::QuotaExceeded {
            per_minute,
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        }));
    }
    let issued = app
        .issue(&client, audience, &granted, cnf.as_ref())
        .await
        .map_err(ApiError::from)?;
    let response = TokenResponse {
        access_token: AccessToken::new(issued.token),
        expires_in: Some(issued.expires_in),
        scope: Some(granted.join(" ")),
        // RFC 9449 §5: a token bound to the proof's key is a DPoP token.
        token_type: if dpop {
            TOKEN_TYPE_DPOP
        } else {
            TOKEN_TYPE_BEARER
        }
        .to_owned(),
    };
    let json = response.to_json();
    // Let the other requests that are ready finish their work before this answer is
    // written, so the answers of a busy moment go out back to back. Each write to a
    // client on the same host (loopback: a load balancer or sidecar beside the
    // broker, or a benchmark) runs the delivery in the kernel and wakes the client's
    // core; written together, most of them find it already awake. Measured with
    // `bench/load.sh`'s layout (32 connections): +13–20 % tokens/s and a lower p99;
    // with one connection the latency is unchanged (77 µs p50 either way), since a
    // yield with nothing else ready costs one non-blocking poll.
    tokio::task::yield_now().await;
    metrics::counter!("auth_broker_tokens_issued_total").increment(1);
    app.usage.count(&client.id, now, Outcome::Issued);
    tracing::debug!(client_id = %client.id, scope = %response.scope.as_deref().unwrap_or(""), "token issued");
    let mut answer = no_store_json(StatusCode::OK, json);
    // RFC 9449 §8.2: a fresh nonce with every answer to a DPoP request, so the
    // client's next proof has one before the current one goes stale.
    if app.config.dpop_nonce
        && dpop
        && let Ok(v) = axum::http::HeaderValue::from_str(&crate::dpop::make_nonce(
            app.keys.active().nonce_key(),
            now,
        ))
    {
        answer
            .headers_mut()
            .insert(crate::dpop::DPOP_NONCE_HEADER, v);
    }
    Ok(answer)
}

/// The token's `aud`: one of the client's audiences (the issuer when it has none),
/// the first unless the request names another with `audience` or RFC 8707
/// `resource` (§2: the resource it wants a token for); naming one the client does not
/// have (or two different ones) is `invalid_target` (RFC 8707 §2), never silently
/// ignored, so a client that asked for the wrong API learns it here rather than from
/// that API's `401`.
fn target_audience<'a>(
    app: &'a AppState,
    client: &'a ClientRecord,
    form: &Form,
) -> Result<&'a str, ApiError> {
    let allowed: &[String] = &client.audiences;
    let issuer = std::slice::from_ref(&app.issuer);
    let allowed = if allowed.is_empty() { issuer } else { allowed };
    let mut chosen: Option<(&str, &'a str)> = None;
    for param in ["audience", "resource"] {
        let Some(asked) = form.get_nonempty(param) else {
            continue;
        };
        let Some(found) = allowed.iter().find(|a| *a == asked) else {
            let shown = auth_broker_proto::escaped(asked);
            return Err(ApiError::bad(
                ErrorCode::InvalidTarget,
                format!(
                    "this client's tokens may be for '{}', not '{shown}' ({param}); omit '{param}' or ask for one of those",
                    allowed.join("', '")
                ),
            ));
        };
        if let Some((other, prev)) = chosen
            && prev != found.as_str()
        {
            return Err(ApiError::bad(
                ErrorCode::InvalidTarget,
                format!(
                    "'{other}' and '{param}' name different audiences; a token has one, so name it once"
                ),
            ));
        }
        chosen = Some((param, found.as_str()));
    }
    Ok(chosen.map_or(allowed[0].as_str(), |(_, a)| a))
}

/// The DPoP proof of a token request (RFC 9449 §4.3, §5), when it has one: judged
/// for `POST` to this token endpoint, and used once.
fn dpop_proof(app: &AppState, headers: &HeaderMap) -> Result<Option<Proof>, Refused> {
    let bad = |d: String| {
        refused(
            "invalid_dpop_proof",
            ApiError::bad(ErrorCode::InvalidDpopProof, d),
        )
    };
    // A value that is not ASCII is judged as what it is not: a compact JWT.
    let values = headers
        .get_all(crate::dpop::DPOP_HEADER)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let Some(proof) = one_proof(values).map_err(|f| bad(f.to_string()))? else {
        return Ok(None);
    };
    let now = app.clock.now_secs();
    let policy = ProofPolicy::default();
    let request = ProofRequest {
        method: "POST",
        url: &app.token_endpoint,
        access_token: None,
        nonce: None,
    };
    let proof = judge_proof(proof, &request, &policy, now).map_err(|f| bad(f.to_string()))?;
    if app.config.dpop_nonce {
        let key = app.keys.active();
        let key = key.nonce_key();
        let description = match proof.nonce.as_deref() {
            None => {
                "this broker wants its nonce in DPoP proofs (RFC 9449 §8): make a new proof with the nonce from this answer's DPoP-Nonce header as its 'nonce' claim"
            }
            Some(n) if !crate::dpop::nonce_is_fresh(key, n, now) => {
                "the proof's nonce is not one this broker gave out in the last two minutes (RFC 9449 §8): make a new proof with the nonce from this answer's DPoP-Nonce header"
            }
            Some(_) => "",
        };
        if !description.is_empty() {
            return Err(refused(
                "use_dpop_nonce",
                ApiError::UseDpopNonce {
                    description: description.to_owned(),
                    nonce: crate::dpop::make_nonce(key, now),
                },
            ));
        }
    }
    match app.dpop_replay.use_once(&proof, &policy, now) {
        Ok(()) => Ok(Some(proof)),
        Err(NotUsable::Replayed) => Err(bad(ProofFault::Replayed.to_string())),
        Err(NotUsable::Full) => Err(Refused::from(ApiError::Unavailable)),
    }
}

fn check_grant_type(form: &Form) -> Result<(), ApiError> {
    match form.get("grant_type") {
        None | Some("") => Err(ApiError::invalid_request(
            "the body has no grant_type; send grant_type=client_credentials",
        )),
        Some(GRANT_CLIENT_CREDENTIALS) => Ok(()),
        Some(other) => {
            let shown = auth_broker_proto::escaped(other);
            Err(ApiError::bad(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type '{shown}' is not supported; this endpoint issues tokens for grant_type=client_credentials"
                ),
            ))
        }
    }
}

/// RFC 6749 §3.3: no `scope` grants all of the client's scopes; a request for a subset
/// gets that subset; anything outside is `invalid_scope`.
fn granted_scopes(client: &ClientRecord, requested: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(requested) = requested else {
        return Ok(client.scopes.clone());
    };
    let asked = scope::parse(requested).map_err(|bad| {
        ApiError::bad(
            ErrorCode::InvalidScope,
            format!("'{}' is not a valid scope token (RFC 6749 §3.3: printable ASCII without spaces, '\"' or '\\\\')", bad.escape_default()),
        )
    })?;
    let missing: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|s| !client.scopes.iter().any(|c| c == s))
        .collect();
    if !missing.is_empty() {
        let allowed = if client.scopes.is_empty() {
            "none".to_owned()
        } else {
            format!("'{}'", client.scopes.join(" "))
        };
        return Err(ApiError::bad(
            ErrorCode::InvalidScope,
            format!(
                "scope '{}' is not granted to this client; it may request: {allowed}",
                missing.join(" ")
            ),
        ));
    }
    Ok(asked.into_iter().map(str::to_owned).collect())
}
