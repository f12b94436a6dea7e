//! axum/tower integration: [`GuardLayer`] checks every request, [`Authenticated`]
//! hands the handler the validated claims, [`Rejection`] answers RFC 6750.

use crate::claims::Claims;
use crate::error::GuardError;
use crate::guard::{Guard, RequestView};
use auth_broker_proto::BearerError;
use auth_broker_proto::text::for_header;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, request::Parts};
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A tower layer that lets a request through only with a valid bearer token carrying
/// every required scope, and puts the claims in the request's extensions for
/// [`Authenticated`]. Use `Router::route_layer` to give routes their own scopes.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    guard: Guard,
    required: Arc<[String]>,
}

impl GuardLayer {
    /// Any valid token passes.
    pub fn new(guard: Guard) -> Self {
        Self {
            guard,
            required: Arc::from(Vec::new()),
        }
    }

    /// Also requires `scope` (and the ones required already).
    pub fn require_scope(self, scope: impl Into<String>) -> Self {
        self.require_scopes([scope])
    }

    /// Also requires every scope in `scopes`.
    pub fn require_scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all = self.required.to_vec();
        for s in scopes {
            let s = s.into();
            if !all.contains(&s) {
                all.push(s);
            }
        }
        Self {
            guard: self.guard,
            required: all.into(),
        }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            guard: self.guard.clone(),
            required: self.required.clone(),
        }
    }
}

/// The service [`GuardLayer`] wraps around a route.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
    required: Arc<[String]>,
}

impl<S, B> tower::Service<Request<B>> for GuardService<S>
where
    S: tower::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone is not ready; the one that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let required = self.required.clone();
        Box::pin(async move {
            match guard.check(RequestView::of(&req), &required).await {
                Ok(claims) => {
                    req.extensions_mut().insert(Authenticated(claims));
                    inner.call(req).await
                }
                Err(error) => {
                    tracing::debug!(%error, "bearer token refused");
                    Ok(Rejection::new(error, guard.realm(), &required).into_response())
                }
            }
        })
    }
}

/// The claims of the request's validated token; needs a [`GuardLayer`] on the route.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Claims>);

impl Deref for Authenticated {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!("{}", GuardError::NotInstalled);
                Rejection::new(GuardError::NotInstalled, "", &[])
            })
    }
}

/// A refusal as RFC 6750 §3 answers it: the status, a `WWW-Authenticate: Bearer`
/// challenge, and a JSON body `{"error", "error_description"}`.
#[derive(Debug)]
pub struct Rejection {
    pub error: GuardError,
    realm: String,
    required: Vec<String>,
}

impl Rejection {
    pub fn new(error: GuardError, realm: &str, required: &[String]) -> Self {
        Self {
            error,
            realm: realm.to_owned(),
            required: required.to_vec(),
        }
    }

    /// The `WWW-Authenticate` value: every quoted-string in the characters RFC 6750
    /// §3 allows ([`for_header`]), the description the same text as the body's.
    pub fn challenge(&self) -> String {
        // RFC 9449 §7.1: a proof fault is answered with the DPoP scheme's challenge,
        // naming the algorithms a proof may use.
        if let (GuardError::Presentation(_), Some(code @ "invalid_dpop_proof")) =
            (&self.error, self.error.code())
        {
            return format!(
                r#"DPoP algs="{}", error="{code}", error_description="{}""#,
                auth_broker_jwt::dpop::PROOF_ALGS.join(" "),
                for_header(&self.error.to_string())
            );
        }
        let mut c = format!(r#"Bearer realm="{}""#, for_header(&self.realm));
        if let Some(code) = self.error.code() {
            c.push_str(&format!(
                r#", error="{code}", error_description="{}""#,
                for_header(&self.error.to_string())
            ));
        }
        if let GuardError::InsufficientScope { required, .. } = &self.error {
            c.push_str(&format!(r#", scope="{}""#, for_header(&required.join(" "))));
        } else if !self.required.is_empty() && self.error.status() == http::StatusCode::UNAUTHORIZED
        {
            // RFC 6750 §3: the scope the resource needs, so the client can ask for it.
            c.push_str(&format!(
                r#", scope="{}""#,
                for_header(&self.required.join(" "))
            ));
        }
        c
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.error.status();
        // RFC 6750 §3.1 has no code for a request without credentials; the body
        // still needs one, and the broker's token-info says `invalid_request`.
        let code = match &self.error {
            GuardError::Header(BearerError::Missing) => "invalid_request",
            e => e.code().unwrap_or("invalid_request"),
        };
        let body = serde_json::json!({
            "error": code,
            "error_description": self.error.to_string(),
        })
        .to_string();
        let mut resp = (
            status,
            [
                (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response();
        if matches!(
            status,
            http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN
        ) && let Ok(v) = HeaderValue::from_str(&self.challenge())
        {
            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        if status == http::StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("2"));
        }
        resp
    }
}
