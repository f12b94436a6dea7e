//! Request signing as a `tower` layer, for hyper, tonic-style and axum clients.

use crate::manager::TokenManager;
use crate::middleware::Unauthorized;
use crate::sign::{Signer, Verdict};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};

/// Boxed error of [`BearerService`]: the inner service's error or a [`crate::TokenError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body that may be copied to replay the request after a `401`.
///
/// Implemented for the common in-memory bodies, reqwest's body when it is in memory,
/// and boxed bodies when they are empty (a request without a body); implement it for
/// your own body type, returning `None` for bodies that cannot be copied (streams),
/// which are then sent once and not replayed.
pub trait ReplayBody: Sized {
    /// A copy of the body, when it can be made.
    fn try_clone_body(&self) -> Option<Self>;
}

macro_rules! replay_by_clone {
    ($($t:ty),*) => {$(
        impl ReplayBody for $t {
            fn try_clone_body(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}
replay_by_clone!(
    (),
    String,
    Vec<u8>,
    Bytes,
    http_body_util::Full<Bytes>,
    http_body_util::Empty<Bytes>
);

/// Wraps a service so every request carries `Authorization: Bearer <token>` (for a
/// DPoP-bound token `Authorization: DPoP <token>` and a fresh proof for the request's
/// absolute URI, RFC 9449 §7.1).
#[derive(Clone, Debug)]
pub struct BearerLayer {
    manager: TokenManager,
}

impl BearerLayer {
    /// Signs with tokens from `manager`.
    pub fn new(manager: TokenManager) -> Self {
        Self { manager }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            manager: self.manager.clone(),
        }
    }
}

/// The service made by [`BearerLayer`]: the same refresh-once-and-replay on `401` as
/// [`crate::BearerMiddleware`], for bodies that implement [`ReplayBody`].
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    manager: TokenManager,
}

impl<S, B, RB> Service<Request<B>> for BearerService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: ReplayBody + Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<RB>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The ready service goes into the future; `self` keeps a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let mut signer = Signer::new(self.manager.clone(), None);
        Box::pin(async move {
            let original = copy_request(&req);
            let method = req.method().clone();
            // The absolute URI a DPoP proof names (`htu`; a relative one has none), parsed
            // only when there are proofs to make.
            let url = signer
                .needs_url()
                .then(|| reqwest::Url::parse(&req.uri().to_string()).ok())
                .flatten();
            let mut first = true;
            loop {
                signer
                    .sign(&method, url.as_ref(), req.headers_mut())
                    .await?;
                if !first {
                    inner.ready().await.map_err(Into::into)?;
                }
                first = false;
                let mut resp = inner.call(req).await.map_err(Into::into)?;
                let replayed = match signer.after(url.as_ref(), resp.status(), resp.headers()) {
                    Verdict::Done => return Ok(resp),
                    Verdict::Replay => match original.as_ref().and_then(copy_request) {
                        Some(copy) => {
                            req = copy;
                            continue;
                        }
                        None => signer.replayed(),
                    },
                    Verdict::Refused => {
                        tracing::warn!("{}", crate::UNAUTHORIZED_HINT);
                        signer.replayed()
                    }
                };
                resp.extensions_mut().insert(Unauthorized {
                    replayed,
                    hint: crate::UNAUTHORIZED_HINT,
                });
                return Ok(resp);
            }
        })
    }
}

fn copy_request<B: ReplayBody>(req: &Request<B>) -> Option<Request<B>> {
    let body = req.body().try_clone_body()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}
/// Boxed bodies are streams and cannot be copied, but one that is already at its end
/// (a request without a body, `GET`, `HEAD`, `DELETE`, ...) is replayed with an empty
/// body of the same type.
impl<D, E> ReplayBody for http_body_util::combinators::BoxBody<D, E>
where
    D: bytes::Buf + 'static,
{
    fn try_clone_body(&self) -> Option<Self> {
        http_body::Body::is_end_stream(self).then(Self::default)
    }
}

/// As for [`http_body_util::combinators::BoxBody`].
impl<D, E> ReplayBody for http_body_util::combinators::UnsyncBoxBody<D, E>
where
    D: bytes::Buf + 'static,
{
    fn try_clone_body(&self) -> Option<Self> {
        http_body::Body::is_end_stream(self).then(Self::default)
    }
}

/// reqwest's body: copied when it is in memory (or absent), not when it is a stream.
impl ReplayBody for reqwest::Body {
    fn try_clone_body(&self) -> Option<Self> {
        self.as_bytes()
            .map(|b| reqwest::Body::from(Bytes::copy_from_slice(b)))
    }
}
