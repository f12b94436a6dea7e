//! The RFC 7662 §2.2 introspection response: what the broker's
//! `POST /auth-broker/introspect` answers, what the guard's introspection mode reads,
//! and what the OpenAPI document describes. One type that serializes and
//! deserializes, so the answer and its reading cannot drift (as oauth2-rs's
//! `StandardTokenIntrospectionResponse`).

use crate::claims::{AccessTokenClaims, Audience, Confirmation, none, secs};
use serde::{Deserialize, Serialize};

/// An RFC 7662 §2.2 answer: `{"active": false}` and nothing else for any token that
/// is not active (§2.2: the server "SHOULD NOT include any additional
/// information"), the token's members for an active one. Every member but `active`
/// is optional on the wire (§2.2); the broker writes them all for an active token,
/// `nbf` only when the token has one.
// The members are in alphabetical order, the order the broker has always written
// them in (a `json!` object sorts its keys).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntrospectionResponse {
    /// Whether the token is active: issued by this broker, unexpired, not revoked,
    /// and its client still enabled.
    pub active: bool,
    /// A string or an array of strings (RFC 7519 §4.1.3).
    #[serde(default, skip_serializing_if = "none")]
    pub aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "none")]
    pub client_id: Option<String>,
    /// The key the token is bound to (RFC 9449 §6.2, RFC 8705 §3.2), so a resource
    /// server that introspects can check the binding; absent for a bearer token.
    #[serde(default, skip_serializing_if = "none")]
    pub cnf: Option<Confirmation>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "none", deserialize_with = "secs::opt")]
    pub exp: Option<i64>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "none", deserialize_with = "secs::opt")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "none")]
    pub jti: Option<String>,
    /// Seconds since the epoch; only when the token has one.
    #[serde(default, skip_serializing_if = "none", deserialize_with = "secs::opt")]
    pub nbf: Option<i64>,
    /// The granted scopes, space separated (`""` when none).
    #[serde(default, skip_serializing_if = "none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "none")]
    pub sub: Option<String>,
    /// `bearer` (RFC 6750), or `DPoP` for a DPoP-bound token (RFC 9449 §6.2).
    #[serde(default, skip_serializing_if = "none")]
    pub token_type: Option<String>,
}

impl IntrospectionResponse {
    /// `{"active": false}`.
    pub fn inactive() -> Self {
        Self::default()
    }

    /// The answer for an active token with these claims.
    pub fn active(claims: &AccessTokenClaims, token_type: &str) -> Self {
        Self {
            active: true,
            aud: Some(claims.aud.clone()),
            client_id: Some(claims.client_id.clone()),
            cnf: claims.cnf.clone(),
            exp: Some(claims.exp),
            iat: claims.iat,
            iss: Some(claims.iss.clone()),
            jti: claims.jti.clone(),
            nbf: claims.nbf,
            scope: Some(claims.scope.clone().unwrap_or_default()),
            sub: Some(claims.sub.clone()),
            token_type: Some(token_type.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inactive_is_active_false_and_nothing_else() {
        assert_eq!(
            serde_json::to_string(&IntrospectionResponse::inactive())
                .ok()
                .as_deref(),
            Some(r#"{"active":false}"#)
        );
    }

    /// The exact bytes the broker answered before this type existed (a `json!`
    /// object: members sorted), for a token with and without `nbf` and `scope`.
    #[test]
    fn an_active_answer_is_what_the_broker_always_wrote() {
        let mut claims = AccessTokenClaims {
            iss: "https://b".into(),
            sub: "c".into(),
            client_id: "c".into(),
            aud: "https://api".into(),
            iat: Some(10),
            exp: 3610,
            nbf: None,
            jti: Some("j".into()),
            scope: Some("a b".into()),
            cnf: None,
        };
        let r = IntrospectionResponse::active(&claims, "bearer");
        let old = json!({
            "active": true, "client_id": "c", "scope": "a b", "exp": 3610, "iat": 10,
            "sub": "c", "aud": "https://api", "iss": "https://b", "jti": "j",
            "token_type": "bearer",
        });
        assert_eq!(serde_json::to_string(&r).ok(), Some(old.to_string()));
        claims.nbf = Some(5);
        claims.scope = None;
        let mut old = old;
        old["nbf"] = json!(5);
        old["scope"] = json!("");
        let r = IntrospectionResponse::active(&claims, "bearer");
        assert_eq!(serde_json::to_string(&r).ok(), Some(old.to_string()));
        let back: Option<IntrospectionResponse> = serde_json::from_value(old).ok();
        assert_eq!(back, Some(r));
    }

    #[test]
    fn reads_what_other_servers_write() {
        let r: Option<IntrospectionResponse> = serde_json::from_value(json!({
            "active": true, "aud": ["a", "b"], "exp": 1.5e9, "username": "x"
        }))
        .ok();
        let r = r.unwrap_or_default();
        assert!(r.active);
        assert_eq!(r.exp, Some(1_500_000_000));
        assert_eq!(r.aud, Some(Audience::Many(vec!["a".into(), "b".into()])));
        assert!(serde_json::from_value::<IntrospectionResponse>(json!({"exp": 1})).is_err());
    }
}
