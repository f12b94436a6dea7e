//! Signing one API request with a managed token, shared by the reqwest middleware and
//! the tower layer: the `Authorization` header and, for a DPoP-bound token, a fresh proof
//! each time the request is sent (RFC 9449 §7.1: a new `jti`, and `ath`); and what a
//! `401` calls for.

use crate::dpop::{self, DPOP};
use crate::error::TokenError;
use crate::fetch::TokenScheme;
use crate::manager::{Token, TokenManager};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, StatusCode};
use std::time::Duration;

/// What to do with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand it to the caller.
    Done,
    /// Send the request again (signed anew): the resource server wants a DPoP nonce it
    /// has just sent (RFC 9449 §9), or the token was refused and has been dropped.
    Replay,
    /// A `401` after the replays allowed: hand it over, with the hint.
    Refused,
}

/// The signing of one request across its sends: at most one replay for a DPoP nonce and
/// one with a freshly fetched token.
pub(crate) struct Signer {
    manager: TokenManager,
    max_wait: Option<Duration>,
    /// `None` when a token is to be fetched before the next send.
    token: Option<Token>,
    nonce_replayed: bool,
    refreshed: bool,
}

impl Signer {
    pub(crate) fn new(manager: TokenManager, max_wait: Option<Duration>) -> Self {
        Self {
            manager,
            max_wait,
            token: None,
            nonce_replayed: false,
            refreshed: false,
        }
    }

    async fn token(&mut self) -> Result<Token, TokenError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let t = match self.max_wait {
            Some(wait) => self.manager.token_within(wait).await?,
            None => self.manager.token().await?,
        };
        self.token = Some(t.clone());
        Ok(t)
    }

    /// Sets `Authorization` (replacing any) and, for a DPoP-bound token, a new `DPoP`
    /// proof for `method` on `url` (removing any stale one otherwise). `url` is needed
    /// only for DPoP: `None` (a relative URI) is then an error.
    pub(crate) async fn sign(
        &mut self,
        method: &Method,
        url: Option<&reqwest::Url>,
        headers: &mut HeaderMap,
    ) -> Result<(), TokenError> {
        let token = self.token().await?;
        headers.insert(AUTHORIZATION, token.authorization().clone());
        let key = self.manager.config().dpop.as_ref();
        match (token.scheme(), key) {
            (TokenScheme::Dpop, Some(key)) => {
                let url = url.ok_or_else(|| {
                    TokenError::Config(
                        "a DPoP proof names the request's absolute URL (htu); this request's URI has no scheme and host".into(),
                    )
                })?;
                let proof = key
                    .proof(
                        method,
                        url,
                        self.manager.clock().wall(),
                        Some(token.access_token().expose_secret()),
                    )
                    .map_err(TokenError::signing("DPoP proof"))?;
                headers.insert(DPOP, proof);
            }
            _ => {
                headers.remove(DPOP);
            }
        }
        Ok(())
    }

    /// Whether the request's URL is needed: for DPoP proofs and the nonces of their
    /// answers.
    pub(crate) fn needs_url(&self) -> bool {
        self.manager.config().dpop.is_some()
    }

    /// Whether the request has been sent more than once.
    pub(crate) fn replayed(&self) -> bool {
        self.nonce_replayed || self.refreshed
    }

    /// What the answer `status`/`headers` from `url` calls for. Remembers a DPoP nonce it
    /// carries; on a `401`, replays once for a new nonce (the token is fine, RFC 9449 §9)
    /// and once with a new token (the cached one is dropped).
    pub(crate) fn after(
        &mut self,
        url: Option<&reqwest::Url>,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Verdict {
        let key = self.manager.config().dpop.as_ref();
        let new_nonce = matches!((key, url), (Some(k), Some(u)) if k.remember_nonce(u, headers));
        if status != StatusCode::UNAUTHORIZED {
            return Verdict::Done;
        }
        let dpop_token = self
            .token
            .as_ref()
            .is_some_and(|t| t.scheme() == TokenScheme::Dpop);
        if dpop_token && dpop::asks_for_nonce(headers) {
            if new_nonce && !self.nonce_replayed {
                self.nonce_replayed = true;
                return Verdict::Replay;
            }
            // The same nonce again, or none: a new token would not help.
            return Verdict::Refused;
        }
        if self.refreshed {
            return Verdict::Refused;
        }
        self.refreshed = true;
        if let Some(t) = self.token.take() {
            self.manager.invalidate(&t);
        }
        Verdict::Replay
    }
}
