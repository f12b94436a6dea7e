//! Who may use the admin API: a caller with a token of this very broker, for its
//! issuer, carrying `admin:read` (reads) or `admin:write` (changes and reads).
//!
//! The check is the guard crate's, as for any API behind it ([`auth_broker_guard`]:
//! the `Authorization` header, the judgement, the scopes, the RFC 6750 challenge),
//! with one difference: the verdict comes from the broker itself ([`BrokerJudge`]),
//! which holds its keys in memory and knows what the token cannot say (revoked, its
//! client disabled or deleted since). The audience must be the issuer: a token
//! minted for an API must not administer the broker. Refusals count against the
//! failure limit of the token endpoint (per client id and per address), so a
//! stolen-token or scope probe is slowed like a secret guess.

use super::admin_api::AdminApiError;
use crate::AppState;
use crate::inspect::{self, Refusal};
use auth_broker_guard::{
    Claims, Guard, GuardError, Judge, Judgement, Policy, Rejection, require_scopes,
};
use auth_broker_proto::BearerError;
use axum::http::HeaderMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

/// The admin scopes (INTERFACE §6).
pub const ADMIN_READ: &str = "admin:read";
pub const ADMIN_WRITE: &str = "admin:write";

/// The `realm` of the admin API's challenges.
const REALM: &str = "auth-broker admin";

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

/// The client an admin request acts for.
#[derive(Clone, Debug)]
pub struct AdminCaller {
    pub client_id: String,
}

/// The guard of the admin API: tokens of `issuer` whose audience is `issuer`,
/// judged by the broker behind `app`.
pub(crate) fn guard(issuer: &str, app: Weak<AppState>) -> Guard {
    Guard::builder(issuer)
        .audience(issuer)
        .realm(REALM)
        .build_local(Arc::new(BrokerJudge(app)))
}

/// The broker's verdict for its own guard: the one judgement (with the guard's
/// policy), then what only the store knows. Holds the state weakly: the state
/// holds the guard.
#[derive(Debug)]
pub(crate) struct BrokerJudge(Weak<AppState>);

impl Judge for BrokerJudge {
    fn judge<'a>(&'a self, token: &'a str, policy: &'a Policy) -> Judgement<'a> {
        Box::pin(async move {
            let Some(app) = self.0.upgrade() else {
                return Err(GuardError::Unavailable(
                    "the broker is shutting down; retry shortly".into(),
                ));
            };
            match inspect::judge(&app, token, policy).await {
                Ok(Ok(active)) => Ok(Claims::from(active.verified)),
                Ok(Err(Refusal::Token(fault))) => Err(GuardError::Token(fault)),
                Ok(Err(Refusal::Broker(why))) => Err(GuardError::Refused(why.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "admin API: store unavailable to check a token");
                    Err(GuardError::Unavailable(
                        "the store cannot be reached to check the token; retry shortly".into(),
                    ))
                }
            }
        })
    }
}

/// Checks the request's bearer token for `need`.
pub async fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    need: Need,
) -> Result<AdminCaller, AdminApiError> {
    let required = [match need {
        Need::Read => ADMIN_READ,
        Need::Write => ADMIN_WRITE,
    }
    .to_owned()];
    let refused = |client: &str, error: GuardError| -> AdminApiError {
        let detail = match &error {
            GuardError::Header(BearerError::Missing) => format!(
                "the admin API needs Authorization: Bearer <a token of this broker with the scope {}>",
                required[0]
            ),
            GuardError::Token(_) | GuardError::Refused(_) => format!(
                "{error} (the admin API takes tokens of this broker whose audience is its issuer, {})",
                app.issuer
            ),
            // Said as an operation of the admin API (the console shows it after "Not
            // allowed:"), with the command that gives the scope.
            GuardError::InsufficientScope { granted, .. } => format!(
                "this operation needs a token with the scope '{}'; this one has '{}' (RFC 6750 section 3.1 insufficient_scope): give the client that scope (auth-broker client update {} --scope '{}') and fetch a new token",
                required[0],
                auth_broker_proto::escaped(&granted.join(" ")).max_chars(200),
                auth_broker_proto::escaped(client),
                required[0]
            ),
            GuardError::Presentation(_) | GuardError::Certificate(_) => "the admin API takes Bearer tokens only, and this token is bound to a key (DPoP, cnf.jkt) or a TLS client certificate (cnf.x5t#S256): fetch the admin client's token without a DPoP proof, over a connection without a client certificate".to_owned(),
            _ => error.to_string(),
        };
        let rejection = Rejection::new(error, REALM, &required);
        if rejection.error.status().is_client_error() {
            crate::metrics::auth_failure("admin_refused");
            if let Some(wait) = app.limiter.record_failure(client, peer.ip()) {
                return AdminApiError::TooManyFailures {
                    retry_after_secs: wait.as_secs().max(1),
                };
            }
        }
        AdminApiError::Refused {
            rejection: Box::new(rejection),
            detail,
        }
    };
    // Bearer tokens only: a key-bound token (DPoP, mutual TLS) is refused by
    // `validate` with a message that says why.
    let token = auth_broker_proto::bearer::parse(
        headers
            .get_all(axum::http::header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes()),
    )
    .map_err(|e| refused("", e.into()))?;
    let claims = app
        .admin_guard
        .validate(token)
        .await
        .map_err(|e| refused("", e))?;
    // `admin:write` includes reading.
    if !(need == Need::Read && claims.has_scope(ADMIN_WRITE)) {
        require_scopes(&claims, &required).map_err(|e| refused(&claims.client_id, e))?;
    }
    Ok(AdminCaller {
        client_id: claims.client_id.clone(),
    })
}
