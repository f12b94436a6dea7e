//! Why a token could not be had.

use auth_broker_proto::ErrorResponse;
use std::sync::Arc;
use std::time::Duration;

/// The largest part of a non-JSON error body kept in [`TokenError::UnexpectedResponse`].
pub const MAX_KEPT_BODY: usize = 4096;

/// A failed token request, with what the server said.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The endpoint answered with an RFC 6749 §5.2 error (`error`, `error_description`).
    #[error("the token endpoint answered {status}: {error}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's error.
        error: ErrorResponse,
        /// `Retry-After` (delta-seconds or HTTP-date), when sent.
        retry_after: Option<Duration>,
    },
    /// The endpoint answered something that is not a token or an RFC 6749 error;
    /// the raw body (cut to [`MAX_KEPT_BODY`] bytes) shows what it said.
    #[error("the token endpoint answered {status} with an unexpected body{}: {body}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    UnexpectedResponse {
        /// HTTP status.
        status: u16,
        /// Why the body was not usable, when it parsed partially.
        reason: Option<String>,
        /// The body as text (lossy UTF-8), cut.
        body: String,
        /// `Retry-After` (delta-seconds or HTTP-date), when sent.
        retry_after: Option<Duration>,
    },
    /// No complete answer within [`crate::TokenConfig::request_timeout`]: the endpoint
    /// accepted the connection but did not answer, or answered too slowly (headers or
    /// body).
    #[error(
        "the token endpoint {url} did not answer within {after:?} (the request timeout); it is down, overloaded or unreachable through a firewall that drops packets"
    )]
    Timeout {
        /// The token URL.
        url: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The request did not get an answer: DNS, connect, TLS, a broken connection. The
    /// message names every cause once, down to the one that helps ("Connection
    /// refused"); reqwest's own message alone says only "error sending request".
    #[error("cannot reach the token endpoint {url}: {}", causes(cause.as_ref()))]
    Transport {
        /// The token URL.
        url: String,
        /// The cause (not `source()`: the message holds its chain already, and printing
        /// both would say everything twice; [`crate::certificate_problem`] looks inside).
        cause: Arc<reqwest::Error>,
    },
    /// The token endpoint answered with a redirect (`3xx`). Token requests never follow
    /// one: the client credentials would go to whatever address the `Location` names.
    #[error(
        "the token endpoint answered {status} redirecting to {}; a token request does not follow redirects, so the client credentials never go to another address: use the final URL as the token URL",
        location.as_deref().unwrap_or("(no Location header)")
    )]
    Redirect {
        /// HTTP status.
        status: u16,
        /// The `Location` header, when there was one.
        location: Option<String>,
    },
    /// [`crate::TokenManager::token_within`]: no token within the wait; the token request
    /// goes on in the background.
    #[error("no token yet after waiting {waited:?}; the token request goes on{}", last.as_ref().map(|e| format!(" (last attempt: {e})")).unwrap_or_default())]
    NotYet {
        /// How long the caller waited.
        waited: Duration,
        /// Why the last attempt failed, when one did.
        last: Option<Box<TokenError>>,
    },
    /// The client assertion or a DPoP proof could not be signed.
    #[error("cannot make the {what}")]
    Signing {
        /// "client assertion" or "DPoP proof".
        what: &'static str,
        /// Why.
        #[source]
        source: Arc<crate::jws::KeyError>,
    },
    /// The configuration cannot work (e.g. a token URL that does not parse).
    #[error("{0}")]
    Config(String),
}

impl TokenError {
    /// Whether retrying the same request later may succeed: transport errors, `408`,
    /// `429`, `5xx`, and the `temporarily_unavailable`/`server_error` codes.
    /// `invalid_client` and other `4xx` answers are permanent, and so is a TLS handshake
    /// that failed over a certificate (the server's refused here, or the client's
    /// refused or missing there): it fails the same way until someone changes one.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Server { status, error, .. } => {
                status_is_transient(*status) || error.error.is_transient()
            }
            Self::UnexpectedResponse { status, .. } => status_is_transient(*status),
            Self::Transport { .. } => {
                crate::certificate_problem(self).is_none()
                    && crate::client_certificate_problem(self).is_none()
            }
            Self::Timeout { .. } | Self::NotYet { .. } => true,
            Self::Config(_) | Self::Redirect { .. } | Self::Signing { .. } => false,
        }
    }

    /// The server's `Retry-After`, when it sent one (for [`TokenError::NotYet`], the one
    /// of the last attempt).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Server { retry_after, .. } | Self::UnexpectedResponse { retry_after, .. } => {
                *retry_after
            }
            Self::NotYet { last: Some(e), .. } => e.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Server { status, .. }
            | Self::UnexpectedResponse { status, .. }
            | Self::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's RFC 6749 error, when it sent one.
    pub fn server_error(&self) -> Option<&ErrorResponse> {
        match self {
            Self::Server { error, .. } => Some(error),
            _ => None,
        }
    }

    /// A [`TokenError::Signing`] of `what`.
    pub(crate) fn signing(what: &'static str) -> impl Fn(crate::jws::KeyError) -> Self {
        move |e| Self::Signing {
            what,
            source: Arc::new(e),
        }
    }
}

fn status_is_transient(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// An error's message and its causes, each once: reqwest and hyper repeat the same
/// words at several levels, while the cause that helps is at the bottom.
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let msg = err.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        cur = err.source();
    }
    parts.join(": ")
}
