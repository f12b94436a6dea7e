//! Who may use the admin API: a caller with a token of this very broker, for its
//! issuer, carrying `admin:read` (reads) or `admin:write` (changes and reads).
//!
//! The token is judged like every token this broker explains or introspects
//! (signature with the broker's keys, `typ`, `iss`, times), then its audience must be
//! the issuer (a token minted for an API must not administer the broker), and what
//! only the broker knows must hold: not revoked, its client still enabled. A refusal
//! is an RFC 6750 challenge; refusals count against the failure limit of the token
//! endpoint (per client id and per address), so a stolen-token or scope probe is
//! slowed like a secret guess.

use super::admin_api::AdminApiError;
use crate::AppState;
use auth_broker_proto::BearerError;
use axum::http::{HeaderMap, header};
use std::net::SocketAddr;

/// The admin scopes (INTERFACE §6).
pub const ADMIN_READ: &str = "admin:read";
pub const ADMIN_WRITE: &str = "admin:write";

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
    pub scopes: Vec<String>,
}

impl AdminCaller {
    fn may(&self, need: Need) -> bool {
        let has = |s: &str| self.scopes.iter().any(|g| g == s);
        match need {
            Need::Read => has(ADMIN_READ) || has(ADMIN_WRITE),
            Need::Write => has(ADMIN_WRITE),
        }
    }
}

/// Checks the request's bearer token for `need`.
pub async fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    need: Need,
) -> Result<AdminCaller, AdminApiError> {
    let refused = |client: &str, e: AdminApiError| -> AdminApiError {
        crate::metrics::auth_failure("admin_refused");
        match app.limiter.record_failure(client, peer.ip()) {
            Some(wait) => AdminApiError::TooManyFailures {
                retry_after_secs: wait.as_secs().max(1),
            },
            None => e,
        }
    };
    let token = match auth_broker_proto::bearer::parse(
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes()),
    ) {
        Ok(t) => t,
        Err(e) => {
            let code = (e != BearerError::Missing).then_some("invalid_token");
            return Err(refused(
                "",
                AdminApiError::Unauthorized {
                    code,
                    description: if code.is_none() {
                        "the admin API needs Authorization: Bearer <a token of this broker with the scope admin:read or admin:write>".into()
                    } else {
                        e.to_string()
                    },
                },
            ));
        }
    };
    let active = match crate::inspect::inspect(app, token, Some(&app.issuer)).await {
        Ok(Ok(a)) => a,
        Ok(Err(reason)) => {
            return Err(refused(
                "",
                AdminApiError::Unauthorized {
                    code: Some("invalid_token"),
                    description: format!(
                        "{reason} (the admin API takes tokens of this broker whose audience is its issuer, {})",
                        app.issuer
                    ),
                },
            ));
        }
        Err(e) => {
            return Err(AdminApiError::Admin(crate::admin::AdminError::Store(e)));
        }
    };
    let claims = active.verified.claims;
    let caller = AdminCaller {
        scopes: claims.scopes().map(str::to_owned).collect(),
        client_id: claims.client_id,
    };
    if !caller.may(need) {
        return Err(refused(
            &caller.client_id,
            AdminApiError::Forbidden {
                scope: match need {
                    Need::Read => ADMIN_READ,
                    Need::Write => ADMIN_WRITE,
                },
                has: caller.scopes.join(" "),
            },
        ));
    }
    Ok(caller)
}
