//! Request signing for `reqwest` through `reqwest-middleware`.

use crate::manager::TokenManager;
use http::Extensions;
use http::header::AUTHORIZATION;
use reqwest::{Request, Response, StatusCode};
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

/// Adds `Authorization: Bearer <token>` to every request, replacing any there.
///
/// On a `401` the token is dropped from the cache, a new one fetched, and the request
/// sent once more when its body can be cloned (no streamed body). A second `401` is
/// returned as it is, with an [`Unauthorized`] extension and a warning in the log
/// pointing to `auth-broker doctor`. The token itself is never logged.
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

    async fn token(&self) -> reqwest_middleware::Result<crate::Token> {
        let token = match self.max_wait {
            Some(wait) => self.manager.token_within(wait).await,
            None => self.manager.token().await,
        };
        token.map_err(reqwest_middleware::Error::middleware)
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
        let token = self.token().await?;
        let replay = req.try_clone();
        req.headers_mut()
            .insert(AUTHORIZATION, token.authorization().clone());
        let mut resp = next.clone().run(req, &mut *extensions).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        self.manager.invalidate(&token);
        let Some(mut replay) = replay else {
            tracing::warn!(url = %resp.url(), "the API answered 401 and the request body cannot be replayed; the token was dropped so the next request gets a new one");
            resp.extensions_mut().insert(Unauthorized {
                replayed: false,
                hint: crate::UNAUTHORIZED_HINT,
            });
            return Ok(resp);
        };
        let fresh = self.token().await?;
        replay
            .headers_mut()
            .insert(AUTHORIZATION, fresh.authorization().clone());
        let mut resp = next.run(replay, extensions).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            tracing::warn!(url = %resp.url(), "{}", crate::UNAUTHORIZED_HINT);
            resp.extensions_mut().insert(Unauthorized {
                replayed: true,
                hint: crate::UNAUTHORIZED_HINT,
            });
        }
        Ok(resp)
    }
}
