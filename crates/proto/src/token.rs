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

impl TokenResponse {
    /// The same JSON text as `serde_json::to_vec(self)`, written for the hot path.
    ///
    /// serde_json escapes strings byte by byte; an access token is a few hundred
    /// bytes of base64url and dots that never need escaping, so each string is first
    /// checked in a loop the compiler vectorizes and copied whole when clean (the
    /// general escaper runs only for a string that needs it). Property-tested
    /// against `serde_json` for every string.
    pub fn to_json(&self) -> Vec<u8> {
        let token = self.access_token.expose_secret();
        let mut out = Vec::with_capacity(token.len() + 96);
        out.extend_from_slice(b"{\"access_token\":");
        write_json_str(&mut out, token);
        if let Some(expires_in) = self.expires_in {
            out.extend_from_slice(b",\"expires_in\":");
            // Writing to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &expires_in);
        }
        if let Some(scope) = &self.scope {
            out.extend_from_slice(b",\"scope\":");
            write_json_str(&mut out, scope);
        }
        out.extend_from_slice(b",\"token_type\":");
        write_json_str(&mut out, &self.token_type);
        out.push(b'}');
        out
    }
}

/// Appends `s` as a JSON string (RFC 8259 §7), escaped exactly as serde_json does.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // No early exit, so the loop is vectorized: a 500-byte token costs a few dozen
    // instructions instead of several per byte.
    let needs_escape = s.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if needs_escape {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
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

    proptest::proptest! {
        /// `to_json` is serde_json's text for any strings, clean or needing escapes.
        #[test]
        fn to_json_is_serde_json(
            token in "(?s).{0,600}",
            scope in proptest::option::of("(?s).{0,40}"),
            expires_in in proptest::option::of(proptest::num::u64::ANY),
            token_type in "[a-zA-Z\"\\\\\u{0}-\u{1f}\u{7f}é]{0,8}",
        ) {
            let r = TokenResponse {
                access_token: AccessToken::new(token),
                expires_in,
                scope,
                token_type,
            };
            proptest::prop_assert_eq!(
                String::from_utf8(r.to_json()).unwrap_or_default(),
                serde_json::to_string(&r).unwrap_or_default()
            );
        }
    }

    #[test]
    fn to_json_copies_a_clean_token_and_escapes_a_dirty_one() {
        let mut r = TokenResponse {
            access_token: AccessToken::new("eyJ.x-_y.z"),
            expires_in: Some(3599),
            scope: Some("read write".into()),
            token_type: TOKEN_TYPE_BEARER.into(),
        };
        assert_eq!(
            r.to_json(),
            br#"{"access_token":"eyJ.x-_y.z","expires_in":3599,"scope":"read write","token_type":"bearer"}"#
        );
        r.access_token = AccessToken::new("a\"b\\c\n\u{1}");
        r.scope = None;
        assert_eq!(
            String::from_utf8(r.to_json()).unwrap_or_default(),
            r#"{"access_token":"a\"b\\c\n\u0001","expires_in":3599,"token_type":"bearer"}"#
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
