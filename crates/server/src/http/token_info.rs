//! `GET /auth-broker/token-info`: says exactly why a bearer token would be refused.
//!
//! This answers the integrator's "my token request works but my API calls return
//! 401": each way the `Authorization` header or the token can be wrong gets its own
//! message (RFC 6750 §2.1 syntax, RFC 7519 claims, this broker's keys and clients).

use super::error::ApiError;
use crate::AppState;
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
    let active = crate::inspect::inspect(app, raw, audience)
        .await?
        .map_err(ApiError::invalid_token)?;
    let now = app.clock.now_secs();
    let body = serde_json::json!({
        "active": true,
        "format": if active.opaque { "opaque" } else { "jwt" },
        "expires_in": active.exp - now,
        "header": active.header,
        "claims": active.claims,
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
