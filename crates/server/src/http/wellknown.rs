//! Discovery: RFC 8414 metadata and the JWKS (RFC 7517).

use super::error::ApiError;
use crate::AppState;
use auth_broker_proto::{AuthorizationServerMetadata, Jwk, Jwks};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The metadata document; every URL is absolute and derived from the issuer. With
/// `mutual_tls` (a client CA is configured) the RFC 8705 methods are listed and
/// certificate-bound tokens announced (§2.1.1, §2.2.1, §3.3).
pub fn metadata(issuer: &str, mutual_tls: bool) -> AuthorizationServerMetadata {
    let base = issuer.trim_end_matches('/');
    let mut methods: Vec<String> = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    .map(str::to_owned)
    .to_vec();
    if mutual_tls {
        methods.extend(["tls_client_auth", "self_signed_tls_client_auth"].map(str::to_owned));
    }
    AuthorizationServerMetadata {
        issuer: issuer.to_owned(),
        token_endpoint: format!("{base}/auth-broker/request-token"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        introspection_endpoint: Some(format!("{base}/auth-broker/introspect")),
        revocation_endpoint: Some(format!("{base}/auth-broker/revoke")),
        grant_types_supported: vec!["client_credentials".into()],
        token_endpoint_auth_methods_supported: methods.clone(),
        token_endpoint_auth_signing_alg_values_supported:
            auth_broker_jwt::assertion::ASSERTION_ALGS
                .iter()
                .map(|a| (*a).to_owned())
                .collect(),
        dpop_signing_alg_values_supported: auth_broker_jwt::dpop::PROOF_ALGS
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        tls_client_certificate_bound_access_tokens: mutual_tls,
        introspection_endpoint_auth_methods_supported: methods.clone(),
        revocation_endpoint_auth_methods_supported: methods,
        response_types_supported: vec![],
        scopes_supported: vec![],
        service_documentation: None,
    }
}

fn json(body: String, cache: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// Authorization server metadata (RFC 8414 §3).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "discovery",
    operation_id = "authorization_server_metadata",
    responses(
        (status = 200, description = "RFC 8414 §3.2", body = AuthorizationServerMetadata),
    )
)]
pub async fn authorization_server(State(app): State<Arc<AppState>>) -> Response {
    json(app.metadata_json.clone(), "public, max-age=300")
}

/// The public signing keys (RFC 7517 §5).
///
/// Every key that may have signed a still-valid token: the active one and retired
/// ones until their last token expires (plus leeway), reckoned from the longest
/// token lifetime stored with each key (whichever broker signed with it).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "discovery",
    operation_id = "jwks",
    responses(
        (status = 200, description = "The JWK Set", body = Jwks),
        (status = 500, response = super::openapi::ServerError),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn jwks(State(app): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let now = app.clock.now_secs();
    let keys: Vec<Jwk> = app
        .store
        .list_keys()
        .await?
        .into_iter()
        .filter(|k| {
            k.needed_until(crate::RETIRED_KEY_LEEWAY_SECS)
                .is_none_or(|t| t >= now)
        })
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    let body =
        serde_json::to_string(&Jwks { keys }).map_err(|e| ApiError::Internal(e.to_string()))?;
    // Short: a verifier that caches it still refetches on an unknown kid.
    Ok(json(body, "public, max-age=60"))
}
