//! Why a request is refused, one precise message each: a token's faults are the
//! judgement's ([`Fault`]), the very messages of the broker's
//! `GET /auth-broker/token-info`, so an integrator sees one story.

use auth_broker_jwt::Fault;
use auth_broker_jwt::dpop::PresentationFault;
use auth_broker_jwt::mtls::CertificateFault;
use auth_broker_proto::BearerError;
use auth_broker_proto::text::escaped;
use http::StatusCode;

/// Why the guard refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The `Authorization` header is missing or malformed.
    #[error("{0}")]
    Header(BearerError),
    /// The token is not valid here: the judgement's verdict.
    #[error(transparent)]
    Token(#[from] Fault),
    /// The issuer's introspection endpoint says the token is not active (RFC 7662
    /// §2.2 gives no reason).
    #[error(
        "the token is not active: the authorization server's introspection says it is unknown, expired or revoked; fetch a new token"
    )]
    Inactive,
    /// The issuer itself refuses a token that passes the judgement, and says why
    /// (a guard built with [`GuardBuilder::build_local`](crate::GuardBuilder::build_local):
    /// revoked, or its client disabled or deleted since).
    #[error("{0}")]
    Refused(String),
    /// A token presented the wrong way for its binding, or with a DPoP proof that does
    /// not hold (RFC 9449 §7.1).
    #[error(transparent)]
    Presentation(#[from] PresentationFault),
    /// A certificate-bound token over a connection without its certificate (RFC
    /// 8705 §3).
    #[error(transparent)]
    Certificate(#[from] CertificateFault),
    /// The token is valid but lacks a scope the route requires (RFC 6750 §3.1).
    #[error(
        "the token's scope is '{}', but this route requires '{}' (missing: '{}'); ask the broker for a token with that scope (the client must be allowed it)",
        escaped(&granted.join(" ")).max_chars(1000), required.join(" "), missing.join(" ")
    )]
    InsufficientScope {
        required: Vec<String>,
        granted: Vec<String>,
        missing: Vec<String>,
    },
    /// The guard cannot decide now: the issuer's JWKS or introspection endpoint is
    /// unreachable and nothing cached answers. The client may retry.
    #[error("{0}")]
    Unavailable(String),
    /// The [`Authenticated`](crate::Authenticated) extractor ran on a route without a
    /// [`GuardLayer`](crate::GuardLayer): a programming error, answered with `500`.
    #[error("the route uses the Authenticated extractor but no GuardLayer is installed on it")]
    NotInstalled,
}

impl GuardError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Header(_)
            | Self::Token(_)
            | Self::Inactive
            | Self::Refused(_)
            | Self::Presentation(_)
            | Self::Certificate(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotInstalled => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6750 §3.1 error code; `None` when the request carried no credentials
    /// at all (RFC 6750 §3.1: "the resource server SHOULD NOT include an error code").
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::Header(BearerError::Missing) => None,
            Self::Presentation(f) if f.is_proof_fault() => Some("invalid_dpop_proof"),
            Self::Header(_)
            | Self::Token(_)
            | Self::Inactive
            | Self::Refused(_)
            | Self::Presentation(_)
            | Self::Certificate(_) => Some("invalid_token"),
            Self::InsufficientScope { .. } => Some("insufficient_scope"),
            Self::Unavailable(_) => Some("temporarily_unavailable"),
            Self::NotInstalled => Some("server_error"),
        }
    }
}

impl From<BearerError> for GuardError {
    fn from(e: BearerError) -> Self {
        Self::Header(e)
    }
}

/// Why a [`Guard`](crate::Guard) could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("could not read the authorization server metadata at {url}: {reason}")]
    Discovery { url: String, reason: String },
    #[error(
        "the metadata at {url} names the issuer '{found}', not '{expected}' (RFC 8414 §3.3 requires them to be identical)"
    )]
    IssuerMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error(
        "introspection mode needs an introspection endpoint, and the metadata names none; set one with GuardBuilder::introspection_endpoint"
    )]
    NoIntrospectionEndpoint,
    #[error("could not fetch the JWKS at {url}: {reason}")]
    Jwks { url: String, reason: String },
    #[error("could not build the HTTP client: {0}")]
    Http(String),
}
