//! Every error the broker's endpoints answer, mapped to its response in one place.
//!
//! The description says what to fix (following the seed's troubleshooting list) and
//! never carries a secret; the detail that only operators need goes to the log.

use auth_broker_proto::{ErrorCode, ErrorResponse};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

/// The `WWW-Authenticate` challenge of a failed client authentication (RFC 6749 §5.2).
pub const BASIC_CHALLENGE: &str = r#"Basic realm="auth-broker""#;

/// The one description every failed credential check shares, so an unknown client,
/// a wrong secret and a disabled client cannot be told apart (no enumeration).
pub const AUTH_FAILED: &str = "client authentication failed: the client_id and client_secret do not match an enabled client; check both (and that the client is enabled)";

#[derive(Debug)]
pub enum ApiError {
    /// A `400` with an RFC 6749 §5.2 code.
    BadRequest {
        code: ErrorCode,
        description: String,
    },
    /// `401 invalid_client` with a Basic challenge.
    InvalidClient { description: Cow<'static, str> },
    /// Too many failed authentications: `429` with `Retry-After`.
    TooManyFailures { retry_after_secs: u64 },
    /// The client's `tokens_per_minute` is used up: `429 temporarily_unavailable`
    /// with `Retry-After`.
    QuotaExceeded {
        per_minute: u32,
        retry_after_secs: u64,
    },
    /// RFC 9449 §8: the proof lacks the server's nonce, or has a stale one: `400
    /// use_dpop_nonce` with the nonce to use in `DPoP-Nonce`.
    UseDpopNonce { description: String, nonce: String },
    /// `401` from a bearer-protected endpoint, RFC 6750 §3.
    InvalidToken {
        description: String,
        code: Option<ErrorCode>,
    },
    /// The body is over the limit: `413`.
    PayloadTooLarge { limit: usize },
    /// The body did not arrive in time: `408`.
    BodyTimeout { secs: u64 },
    /// `405` with `Allow`.
    MethodNotAllowed { allow: &'static str },
    /// `404` for paths that do not exist.
    NotFound,
    /// The store is unreachable: `503 temporarily_unavailable` with `Retry-After`.
    Unavailable,
    /// Anything unexpected: `500 server_error`; the detail is logged, not sent.
    Internal(String),
}

impl ApiError {
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::BadRequest {
            code: ErrorCode::InvalidRequest,
            description: description.into(),
        }
    }

    pub fn bad(code: ErrorCode, description: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidClient {
            description: description.into(),
        }
    }

    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self::InvalidToken {
            description: description.into(),
            code: Some(ErrorCode::InvalidToken),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "store unavailable");
            Self::Unavailable
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl From<crate::KeyError> for ApiError {
    fn from(e: crate::KeyError) -> Self {
        if e.is_transient() {
            // The OS random source failed: nothing can be issued now; a retry may work.
            tracing::error!(error = %e, "cannot make a token now");
            Self::Unavailable
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl From<crate::IssueError> for ApiError {
    fn from(e: crate::IssueError) -> Self {
        match e {
            crate::IssueError::Store(e) => e.into(),
            crate::IssueError::Key(e) => e.into(),
        }
    }
}

impl From<crate::admin::AdminError> for ApiError {
    fn from(e: crate::admin::AdminError) -> Self {
        use crate::admin::AdminError;
        match e {
            AdminError::Store(e) => e.into(),
            AdminError::Key(e) => e.into(),
            AdminError::NotOwner => Self::bad(
                ErrorCode::UnauthorizedClient,
                "this token was issued to another client; a client may revoke only its own tokens (RFC 7009 section 2.1)",
            ),
            AdminError::Invalid { .. } => Self::invalid_request(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// A JSON response that no cache may keep (RFC 6749 §5.1, §5.2).
pub fn no_store_json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Adds `Connection: close`: hyper closes the connection after this response.
fn closing(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn body(code: ErrorCode, description: impl Into<String>) -> String {
    serde_json::to_string(&ErrorResponse::new(code, description))
        .unwrap_or_else(|_| r#"{"error":"server_error"}"#.to_owned())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest { code, description } => {
                no_store_json(StatusCode::BAD_REQUEST, body(code, description))
            }
            Self::UseDpopNonce { description, nonce } => {
                let mut r = no_store_json(
                    StatusCode::BAD_REQUEST,
                    body(ErrorCode::UseDpopNonce, description),
                );
                if let Ok(v) = HeaderValue::from_str(&nonce) {
                    r.headers_mut().insert(crate::dpop::DPOP_NONCE_HEADER, v);
                }
                r
            }
            Self::InvalidClient { description } => {
                let mut r = no_store_json(
                    StatusCode::UNAUTHORIZED,
                    body(ErrorCode::InvalidClient, description),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(BASIC_CHALLENGE),
                );
                r
            }
            Self::TooManyFailures { retry_after_secs } => {
                let mut r = no_store_json(
                    StatusCode::TOO_MANY_REQUESTS,
                    body(
                        ErrorCode::InvalidClient,
                        format!(
                            "too many failed client authentications from this client_id or address; fix the credentials and retry after {retry_after_secs} s (requests with the right credentials are never limited)"
                        ),
                    ),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                r
            }
            Self::QuotaExceeded {
                per_minute,
                retry_after_secs,
            } => {
                let mut r = no_store_json(
                    StatusCode::TOO_MANY_REQUESTS,
                    body(
                        ErrorCode::TemporarilyUnavailable,
                        format!(
                            "this client may get {per_minute} tokens a minute and has had them; cache the token and reuse it until shortly before it expires (expires_in) instead of asking for one per call; retry after {retry_after_secs} s"
                        ),
                    ),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                r
            }
            Self::InvalidToken { description, code } => {
                let challenge = match &code {
                    // RFC 9449 §7.1: a proof fault is answered with the DPoP scheme's
                    // challenge, naming the algorithms a proof may use.
                    Some(code @ ErrorCode::InvalidDpopProof) => format!(
                        r#"DPoP algs="{}", error="{code}", error_description="{}""#,
                        auth_broker_jwt::dpop::PROOF_ALGS.join(" "),
                        auth_broker_proto::text::for_header(&description)
                    ),
                    // RFC 6750 §3: the description in the characters a challenge
                    // may carry, the same text as the body's.
                    Some(code) => format!(
                        r#"Bearer realm="auth-broker", error="{code}", error_description="{}""#,
                        auth_broker_proto::text::for_header(&description)
                    ),
                    None => r#"Bearer realm="auth-broker""#.to_owned(),
                };
                let json_code = code.unwrap_or(ErrorCode::InvalidRequest);
                let mut r = no_store_json(StatusCode::UNAUTHORIZED, body(json_code, description));
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                r
            }
            // Both answer before the body was read: `Connection: close` (RFC 9112
            // §9.6) so the client does not reuse a connection whose unread body the
            // broker is about to drop, which would fail its next request.
            Self::PayloadTooLarge { limit } => closing(no_store_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                body(
                    ErrorCode::InvalidRequest,
                    format!(
                        "the request body is larger than {} KiB; a token request is a short form body",
                        limit / 1024
                    ),
                ),
            )),
            Self::BodyTimeout { secs } => closing(no_store_json(
                StatusCode::REQUEST_TIMEOUT,
                body(
                    ErrorCode::InvalidRequest,
                    format!(
                        "the request body did not arrive within {secs} s; send the whole body (and a correct Content-Length)"
                    ),
                ),
            )),
            Self::MethodNotAllowed { allow } => {
                let mut r = no_store_json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    body(
                        ErrorCode::InvalidRequest,
                        format!("this endpoint takes {allow} only"),
                    ),
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                r
            }
            Self::NotFound => no_store_json(
                StatusCode::NOT_FOUND,
                body(
                    ErrorCode::InvalidRequest,
                    "no such endpoint; the token endpoint is POST /auth-broker/request-token (see /.well-known/oauth-authorization-server)",
                ),
            ),
            Self::Unavailable => {
                let mut r = no_store_json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    body(
                        ErrorCode::TemporarilyUnavailable,
                        "the broker cannot reach its store right now; retry shortly",
                    ),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                no_store_json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    body(
                        ErrorCode::ServerError,
                        "the broker hit an unexpected error; it is logged with this request's id",
                    ),
                )
            }
        }
    }
}
