//! The claims of a validated token, as a guarded handler sees them.

use auth_broker_jwt::Verified;
use auth_broker_proto::AccessTokenClaims;
use serde_json::Value;
use std::ops::Deref;

/// What a validated access token says (RFC 9068 §2.2, RFC 7662 §2.2): the
/// [`AccessTokenClaims`] the judgement read (reachable directly: `who.client_id`,
/// `who.aud`, `who.exp`), the granted scopes split once, and every member as
/// received.
///
/// For an introspected token without `iss` or `exp` (RFC 7662 makes them
/// optional), `iss` is the guard's issuer and `exp` is `i64::MAX`; `sub` defaults
/// to `client_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub token: AccessTokenClaims,
    /// The granted scopes (`scope` split on spaces; empty when absent).
    pub scopes: Vec<String>,
    /// Every member as received: the JWT payload or the introspection response.
    pub raw: Value,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The scopes as the `scope` claim writes them.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

impl Deref for Claims {
    type Target = AccessTokenClaims;
    fn deref(&self) -> &AccessTokenClaims {
        &self.token
    }
}

impl From<Verified> for Claims {
    fn from(v: Verified) -> Self {
        Self {
            scopes: v.claims.scopes().map(str::to_owned).collect(),
            token: v.claims,
            raw: v.raw,
        }
    }
}
