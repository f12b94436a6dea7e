//! `POST /auth-broker/introspect` (RFC 7662) and `POST /auth-broker/revoke` (RFC 7009).
//!
//! Both take a form body with `token` (and an optional `token_type_hint`, which is
//! not needed: the broker tells its token formats apart) and authenticate the caller
//! as a client, exactly as the token endpoint does.

use super::client_auth::{self, Refused, refused};
use super::error::{ApiError, no_store_json};
use crate::AppState;
use crate::admin::{AdminError, Revocable};
use crate::inspect::{self, OPAQUE_PREFIX};
use crate::secret;
use auth_broker_proto::IntrospectionResponse;
use auth_broker_proto::token::TOKEN_TYPE_BEARER;
use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The parameters of both requests (RFC 7662 §2.1, RFC 7009 §2.1) and of
/// `client_secret_post`; others are ignored.
const RECOGNIZED: [&str; 6] = [
    "token",
    "token_type_hint",
    client_auth::CLIENT_PARAMS[0],
    client_auth::CLIENT_PARAMS[1],
    client_auth::CLIENT_PARAMS[2],
    client_auth::CLIENT_PARAMS[3],
];

/// The common start of introspection and revocation: a bounded, strict form body from
/// an authenticated client (as at the token endpoint).
async fn authenticated_form(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
    chain: Option<&crate::mtls::PeerChain>,
) -> Result<
    (
        std::sync::Arc<crate::store::ClientRecord>,
        auth_broker_proto::Form,
    ),
    Refused,
> {
    let form = client_auth::read_form(app, headers, body, &RECOGNIZED).await?;
    let caller = client_auth::authenticate_client(app, peer, headers, &form, chain).await?;
    Ok((caller, form))
}

fn token_param(form: &auth_broker_proto::Form) -> Result<&str, Refused> {
    form.get_nonempty("token").ok_or_else(|| {
        refused(
            "invalid_request",
            ApiError::invalid_request(
                "the body has no token parameter; send token=<the access token>",
            ),
        )
    })
}

/// Introspect a token (RFC 7662).
///
/// RFC 7662 §2.2: `{"active": false}` and nothing more for any token that is not
/// active (unknown, expired, revoked, from a disabled client, malformed); the
/// details for an active one. Any authenticated client may introspect: resource
/// servers are clients of the broker.
#[utoipa::path(
    post,
    path = "/auth-broker/introspect",
    tag = "oauth",
    operation_id = "introspect",
    request_body(
        content = super::openapi::TokenParam,
        content_type = "application/x-www-form-urlencoded",
        description = "RFC 7662 §2.1"
    ),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "RFC 7662 §2.2", body = IntrospectionResponse),
        super::openapi::FormEndpointErrors,
    )
)]
pub async fn introspect(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    chain: Option<Extension<crate::mtls::PeerChain>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let run = async {
        let (caller, form) =
            authenticated_form(&app, peer, &headers, body, chain.as_deref()).await?;
        let token = token_param(&form)?;
        let verdict = inspect::inspect(&app, token, None)
            .await
            .map_err(ApiError::from)?;
        let answer = match verdict {
            Err(reason) => {
                // The reason's values from the token are escaped and cut short, so
                // a crafted `kid` cannot forge log lines.
                tracing::debug!(caller = %caller.id, %reason, "introspection: inactive");
                IntrospectionResponse::inactive()
            }
            Ok(active) => IntrospectionResponse::active(&active.verified.claims, TOKEN_TYPE_BEARER),
        };
        let body = serde_json::to_string(&answer).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok::<_, Refused>(no_store_json(StatusCode::OK, body))
    };
    run.await
        .map_err(|r| client_auth::finish("introspect", peer, r))
}

/// RFC 7009 §2.2: `200` and no body (so no `Content-Type`; an empty body is not
/// JSON), never cached.
fn revoked() -> Response {
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Revoke a token (RFC 7009).
///
/// RFC 7009: a client revokes its own tokens. Unknown, expired or garbage tokens
/// answer `200` (§2.2: the client cannot do anything about them); a token of another
/// client is refused with `unauthorized_client`. A revoked JWT's `jti` is stored until
/// the token would have expired; an opaque token is deleted.
#[utoipa::path(
    post,
    path = "/auth-broker/revoke",
    tag = "oauth",
    operation_id = "revoke",
    request_body(
        content = super::openapi::TokenParam,
        content_type = "application/x-www-form-urlencoded",
        description = "RFC 7009 §2.1"
    ),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke (RFC 7009 §2.2); no body"),
        super::openapi::FormEndpointErrors,
    )
)]
pub async fn revoke(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    chain: Option<Extension<crate::mtls::PeerChain>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let run = async {
        let (caller, form) =
            authenticated_form(&app, peer, &headers, body, chain.as_deref()).await?;
        let token = token_param(&form)?;
        // Whose token is it? Unknown, expired or garbage tokens have nothing to revoke.
        let revocable = if token.starts_with(OPAQUE_PREFIX) {
            let hash = secret::token_hash(token);
            app.store
                .get_opaque(&hash)
                .await
                .map_err(ApiError::from)?
                .map(|t| Revocable::Opaque {
                    hash,
                    client_id: t.client_id,
                })
        } else {
            inspect::inspect(&app, token, None)
                .await
                .map_err(ApiError::from)?
                .ok()
                .and_then(|active| {
                    let claims = active.verified.claims;
                    // A token without `jti` cannot be named in the revocation list;
                    // this broker's tokens always carry one.
                    Some(Revocable::Jwt {
                        jti: claims.jti?,
                        client_id: claims.client_id,
                        exp: claims.exp,
                    })
                })
        };
        let Some(revocable) = revocable else {
            return Ok(revoked());
        };
        let actor = crate::admin::Actor::client(
            &caller.id,
            super::request_id(&headers),
            Some(peer.ip().to_string()),
        );
        match app.admin.revoke(&actor, revocable).await {
            Ok(()) => {
                metrics::counter!("auth_broker_tokens_revoked_total").increment(1);
                Ok(revoked())
            }
            Err(AdminError::NotOwner) => Err(refused(
                "revoke_foreign_token",
                ApiError::from(AdminError::NotOwner),
            )),
            Err(e) => Err(Refused::from(ApiError::from(e))),
        }
    };
    run.await
        .map_err(|r| client_auth::finish("revoke", peer, r))
}
