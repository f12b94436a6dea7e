//! Why a request is refused, one precise message each (the same wording as the
//! broker's `GET /auth-broker/token-info`, so an integrator sees one story).

use auth_broker_jwt::JwtFormatError;
use auth_broker_proto::BearerError;
use http::StatusCode;

/// What is wrong with a token (RFC 6750 §3.1 `invalid_token`). Messages never
/// repeat the token; values taken from a token are cut short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Malformed(#[from] JwtFormatError),
    #[error(
        "the token's header has typ {found:?}, not \"at+jwt\" (RFC 9068 §2.1): it is not an access token from this issuer"
    )]
    WrongType { found: String },
    #[error("the token's header has no kid; this issuer's tokens always name their key")]
    NoKid,
    #[error(
        "the token is signed by key '{kid}', which the issuer's JWKS does not have: a token from another issuer or environment, or a key removed long after rotation; fetch a new token"
    )]
    UnknownKey { kid: String },
    #[error(
        "the token's header says alg {header} but key '{kid}' is {key}: the header was altered"
    )]
    AlgMismatch {
        header: String,
        kid: String,
        key: String,
    },
    #[error(
        "the token's signature does not verify: it was altered or truncated after it was issued; fetch a new token and send it unchanged"
    )]
    BadSignature,
    #[error("the token has no '{0}' claim, which an access token must carry (RFC 9068 §2.2)")]
    MissingClaim(&'static str),
    #[error("the token was issued by '{found}', not by the expected issuer ('{expected}')")]
    WrongIssuer { found: String, expected: String },
    #[error(
        "the token expired {secs_ago} seconds ago (clock skew allowance {leeway} s); fetch a new one (a client should refresh before expires_in runs out)"
    )]
    Expired { secs_ago: i64, leeway: i64 },
    #[error("the token is not valid for another {secs} seconds (nbf); check the clocks")]
    NotYetValid { secs: i64 },
    #[error("the token claims to be issued {secs} seconds in the future; check the clocks")]
    IssuedInFuture { secs: i64 },
    #[error(
        "the token is for the audience '{found}', not '{expected}'; ask the broker for a token for '{expected}' (the client's audience setting)"
    )]
    WrongAudience { found: String, expected: String },
    #[error(
        "the token is not active: the authorization server's introspection says it is unknown, expired or revoked; fetch a new token"
    )]
    Inactive,
}

/// Why the guard refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The `Authorization` header is missing or malformed.
    #[error("{0}")]
    Header(BearerError),
    /// The token is not valid here.
    #[error("{0}")]
    Token(TokenError),
    /// The token is valid but lacks a scope the route requires (RFC 6750 §3.1).
    #[error(
        "the token's scope is '{}', but this route requires '{}' (missing: '{}'); ask the broker for a token with that scope (the client must be allowed it)",
        granted.join(" "), required.join(" "), missing.join(" ")
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
            Self::Header(_) | Self::Token(_) => StatusCode::UNAUTHORIZED,
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
            Self::Header(_) | Self::Token(_) => Some("invalid_token"),
            Self::InsufficientScope { .. } => Some("insufficient_scope"),
            Self::Unavailable(_) => Some("temporarily_unavailable"),
            Self::NotInstalled => Some("server_error"),
        }
    }
}

impl From<TokenError> for GuardError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
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

/// Makes text fit an HTTP header value and a quoted-string (RFC 9110 §5.6.4):
/// visible ASCII only, no `"` or `\`, and not endlessly long.
pub(crate) fn header_text(s: &str) -> String {
    s.replace('§', "section ")
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .take(1024)
        .collect()
}

/// Cuts a value taken from a token before it goes into a message.
pub(crate) fn short(s: &str) -> String {
    if s.chars().count() <= 100 {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(100).collect();
        out.push_str("...");
        out
    }
}
