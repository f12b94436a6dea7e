//! RFC 6749 §5.2 error responses.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An OAuth 2.0 error code.
///
/// The codes of RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1 and RFC 8707 §2, with an
/// `Extension` fallback so a client can still report a code it does not know.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Malformed request: a missing, repeated or invalid parameter (§5.2).
    InvalidRequest,
    /// Client authentication failed (§5.2). Answered with `401`.
    InvalidClient,
    /// The grant is invalid (§5.2).
    InvalidGrant,
    /// The client may not use this grant type (§5.2).
    UnauthorizedClient,
    /// The grant type is not supported (§5.2).
    UnsupportedGrantType,
    /// The requested scope is invalid, unknown or exceeds what the client may have (§5.2).
    InvalidScope,
    /// The requested audience/resource is not one the client may have (RFC 8707 §2).
    InvalidTarget,
    /// RFC 6750 §3.1: the bearer token is expired, revoked, malformed or invalid.
    InvalidToken,
    /// RFC 6750 §3.1: the token lacks a scope the resource requires.
    InsufficientScope,
    /// RFC 7009 §2.2.1: the server cannot revoke this token type.
    UnsupportedTokenType,
    /// RFC 9449 §5, §7.1: the DPoP proof is missing where required, or invalid.
    InvalidDpopProof,
    /// RFC 9449 §8, §9: the server wants a (new) nonce of its own in the proof; the
    /// answer's `DPoP-Nonce` header has it.
    UseDpopNonce,
    /// The server is temporarily unable to handle the request (store unreachable).
    TemporarilyUnavailable,
    /// The server hit an unexpected condition.
    ServerError,
    /// Any other code, kept verbatim.
    Extension(String),
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::Extension(s) => s,
        }
    }

    /// Parses a wire code; unknown codes become [`ErrorCode::Extension`].
    pub fn parse(s: &str) -> Self {
        match s {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_target" => Self::InvalidTarget,
            "invalid_token" => Self::InvalidToken,
            "insufficient_scope" => Self::InsufficientScope,
            "unsupported_token_type" => Self::UnsupportedTokenType,
            "invalid_dpop_proof" => Self::InvalidDpopProof,
            "use_dpop_nonce" => Self::UseDpopNonce,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            "server_error" => Self::ServerError,
            other => Self::Extension(other.to_owned()),
        }
    }

    /// Whether a client may succeed by simply retrying the same request later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::TemporarilyUnavailable | Self::ServerError)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// The JSON body of an RFC 6749 §5.2 error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorResponse {
    /// The error code.
    pub error: ErrorCode,
    /// Human-readable text saying what to fix. Never contains a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub error_description: Option<String>,
    /// A page about the error, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "uri"))]
    pub error_uri: Option<String>,
}

impl ErrorResponse {
    /// An error with a description.
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: Some(description.into()),
            error_uri: None,
        }
    }
}

/// The codes this project's server sends: a closed enum in its OpenAPI document.
/// [`ErrorCode::Extension`] exists for clients reading other servers and is left out.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let codes = [
            Self::InvalidRequest,
            Self::InvalidClient,
            Self::InvalidGrant,
            Self::UnauthorizedClient,
            Self::UnsupportedGrantType,
            Self::InvalidScope,
            Self::InvalidTarget,
            Self::InvalidToken,
            Self::InsufficientScope,
            Self::UnsupportedTokenType,
            Self::TemporarilyUnavailable,
            Self::ServerError,
        ];
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some(
                "An OAuth 2.0 error code: RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 8707 §2.",
            ))
            .enum_values(Some(codes.iter().map(|c| c.as_str().to_owned())))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error_description {
            Some(d) => write!(f, "{}: {}", self.error, d),
            None => write!(f, "{}", self.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidClient,
            ErrorCode::InvalidScope,
            ErrorCode::TemporarilyUnavailable,
            ErrorCode::Extension("vendor_thing".into()),
        ] {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
    }

    #[test]
    fn error_json_omits_absent_members() {
        let e = ErrorResponse {
            error: ErrorCode::InvalidClient,
            error_description: None,
            error_uri: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap_or_default(),
            r#"{"error":"invalid_client"}"#
        );
    }
}
