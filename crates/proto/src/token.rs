//! The RFC 6749 §5.1 successful token response.

use crate::secret::AccessToken;
use serde::{Deserialize, Serialize};

/// A successful token response.
///
/// The server always sends all four members (`scope` is `""` when no scope was
/// granted, `token_type` is lowercase `bearer`). A client reading another server's
/// answer must cope with `expires_in` and `scope` being absent (both are optional in
/// RFC 6749 §5.1) and with `token_type` in any case (§7.1), so they are optional here.
///
/// The OpenAPI schema describes what this server sends: all four members, required.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// The access token.
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1))]
    pub access_token: AccessToken,
    /// Whole seconds until the token expires, rounded down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = u64, required = true))]
    pub expires_in: Option<u64>,
    /// The granted scopes, space separated; `""` when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
    pub scope: Option<String>,
    /// The token type; `bearer` here (compare case-insensitively, RFC 6749 §5.1).
    #[cfg_attr(feature = "openapi", schema(pattern = "^bearer$"))]
    pub token_type: String,
}

/// The `token_type` this server issues.
pub const TOKEN_TYPE_BEARER: &str = "bearer";

/// The `token_type` of a DPoP-bound access token (RFC 9449 §5).
pub const TOKEN_TYPE_DPOP: &str = "DPoP";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_the_contract_shape() {
        let r = TokenResponse {
            access_token: AccessToken::new("t"),
            expires_in: Some(3599),
            scope: Some(String::new()),
            token_type: TOKEN_TYPE_BEARER.into(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap_or_default(),
            r#"{"access_token":"t","expires_in":3599,"scope":"","token_type":"bearer"}"#
        );
    }

    #[test]
    fn parses_a_minimal_foreign_response() {
        let r: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","token_type":"Bearer"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.expires_in, None);
        assert!(r.token_type.eq_ignore_ascii_case(TOKEN_TYPE_BEARER));
    }
}
