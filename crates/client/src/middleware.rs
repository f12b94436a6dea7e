//! Request signing for `reqwest` through `reqwest-middleware`.

use crate::manager::TokenManager;
use crate::sign::{Signer, Verdict};
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use std::time::Duration;

/// Set in a response's extensions when an API answered `401` and a refresh did not
/// help (or the request could not be replayed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unauthorized {
    /// Whether the request was replayed with a freshly fetched token.
    pub replayed: bool,
    /// What to do: [`crate::UNAUTHORIZED_HINT`].
    pub hint: &'static str,
}

/// Adds `Authorization: Bearer <token>` to every request, replacing any there; for a
/// DPoP-bound token `Authorization: DPoP <token>` and a fresh `DPoP` proof (RFC 9449
/// §7.1) each time the request is sent.
///
/// On a `401` the token is dropped from the cache, a new one fetched, and the request
/// sent once more when its body can be cloned (no streamed body). A `401` with
/// `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a new `DPoP-Nonce` (RFC 9449 §9)
/// is replayed once with the same token and a proof holding the nonce. A `401` after
/// that is returned as it is, with an [`Unauthorized`] extension and a warning in the
/// log pointing to `auth-broker doctor`. The token itself is never logged.
#[derive(Clone, Debug)]
pub struct BearerMiddleware {
    manager: TokenManager,
    max_wait: Option<Duration>,
}

impl BearerMiddleware {
    /// Signs with tokens from `manager`, waiting for a token as long as it takes.
    pub fn new(manager: TokenManager) -> Self {
        Self {
            manager,
            max_wait: None,
        }
    }

    /// Waits at most `wait` for a token ([`TokenManager::token_within`]): past it the
    /// request fails with [`crate::TokenError::NotYet`] and is not sent, while the token
    /// request goes on. For callers that must answer promptly (a proxy answering `503`).
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = Some(wait);
        self
    }
}

#[async_trait::async_trait]
impl Middleware for BearerMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut signer = Signer::new(self.manager.clone(), self.max_wait);
        let original = req.try_clone();
        let method = req.method().clone();
        let url = req.url().clone();
        loop {
            signer
                .sign(&method, Some(&url), req.headers_mut())
                .await
                .map_err(reqwest_middleware::Error::middleware)?;
            let mut resp = next.clone().run(req, &mut *extensions).await?;
            let replayed = match signer.after(Some(&url), resp.status(), resp.headers()) {
                Verdict::Done => return Ok(resp),
                Verdict::Replay => match original.as_ref().and_then(Request::try_clone) {
                    Some(copy) => {
                        req = copy;
                        continue;
                    }
                    None => {
                        tracing::warn!(url = %resp.url(), "the API answered 401 and the request body cannot be replayed; the next request is signed anew");
                        signer.replayed()
                    }
                },
                Verdict::Refused => {
                    tracing::warn!(url = %resp.url(), "{}", crate::UNAUTHORIZED_HINT);
                    signer.replayed()
                }
            };
            resp.extensions_mut().insert(Unauthorized {
                replayed,
                hint: crate::UNAUTHORIZED_HINT,
            });
            return Ok(resp);
        }
    }
}
