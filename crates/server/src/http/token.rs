//! `POST /auth-broker/request-token`: the client credentials grant (RFC 6749 §4.4).

use super::client_auth::{self, Refused};
use super::error::{ApiError, no_store_json};
use crate::AppState;
use crate::store::ClientRecord;
use auth_broker_proto::token::TOKEN_TYPE_BEARER;
use auth_broker_proto::{
    AccessToken, ErrorCode, Form, GRANT_CLIENT_CREDENTIALS, TokenResponse, scope,
};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;

pub async fn request_token(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    handle(&app, peer, &headers, body)
        .await
        .map_err(|r| client_auth::finish("token", peer, r))
}

async fn handle(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refused> {
    let form = client_auth::read_form(app, headers, body).await?;
    check_grant_type(&form)?;
    let client = client_auth::authenticate_client(app, peer, headers, &form).await?;

    let granted = granted_scopes(&client, form.get_nonempty("scope"))?;
    let audience = client.audience.as_deref().unwrap_or(&app.issuer);
    if let Some(asked) = form.get_nonempty("audience")
        && asked != audience
    {
        return Err(Refused::from(ApiError::bad(
            ErrorCode::InvalidTarget,
            format!(
                "this client's tokens are for the audience '{audience}', not '{asked}'; omit 'audience' or ask for that one"
            ),
        )));
    }

    let issued = app
        .issue(&client.id, audience, &granted)
        .await
        .map_err(ApiError::from)?;
    let response = TokenResponse {
        access_token: AccessToken::new(issued.token),
        expires_in: Some(issued.expires_in),
        scope: Some(granted.join(" ")),
        token_type: TOKEN_TYPE_BEARER.to_owned(),
    };
    let json = serde_json::to_string(&response).map_err(|e| ApiError::Internal(e.to_string()))?;
    metrics::counter!("auth_broker_tokens_issued_total").increment(1);
    tracing::debug!(client_id = %client.id, scope = %response.scope.as_deref().unwrap_or(""), "token issued");
    Ok(no_store_json(StatusCode::OK, json))
}

fn check_grant_type(form: &Form) -> Result<(), ApiError> {
    match form.get("grant_type") {
        None | Some("") => Err(ApiError::invalid_request(
            "the body has no grant_type; send grant_type=client_credentials",
        )),
        Some(GRANT_CLIENT_CREDENTIALS) => Ok(()),
        Some(other) => {
            let shown: String = other.chars().filter(|c| !c.is_control()).take(60).collect();
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
