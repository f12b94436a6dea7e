//! The HTTP surface: routes, middleware and the connection loop.

mod client_auth;
pub mod error;
mod introspect;
pub mod openapi;
mod ops;
pub mod token;
pub mod token_info;
pub mod wellknown;

use crate::AppState;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, Request, header};
use axum::routing::{get, post};
use error::ApiError;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids: a per-process random prefix and a counter (cheaper than a UUID and
/// still unique across replicas).
#[derive(Clone, Debug)]
struct Ids {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl MakeRequestId for Ids {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
            .parse()
            .ok()
            .map(RequestId::new)
    }
}

fn only(allow: &'static str) -> impl Fn() -> std::future::Ready<ApiError> + Clone {
    move || std::future::ready(ApiError::MethodNotAllowed { allow })
}

/// The broker's routes, with their middleware.
pub fn router(app: Arc<AppState>) -> Router {
    let ids = Ids {
        prefix: crate::secret::random_id::<6>().into(),
        next: Arc::new(AtomicU64::new(1)),
    };
    Router::new()
        .route(
            "/auth-broker/request-token",
            post(token::request_token).fallback(only("POST")),
        )
        .route(
            "/auth-broker/introspect",
            post(introspect::introspect).fallback(only("POST")),
        )
        .route(
            "/auth-broker/revoke",
            post(introspect::revoke).fallback(only("POST")),
        )
        .route(
            "/auth-broker/token-info",
            get(token_info::token_info).fallback(only("GET")),
        )
        .route(
            "/.well-known/jwks.json",
            get(wellknown::jwks).fallback(only("GET")),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(wellknown::authorization_server).fallback(only("GET")),
        )
        .route("/healthz", get(ops::healthz).fallback(only("GET")))
        .route("/readyz", get(ops::readyz).fallback(only("GET")))
        .route("/metrics", get(ops::metrics).fallback(only("GET")))
        .route(
            "/openapi.json",
            get(openapi::openapi_json).fallback(only("GET")),
        )
        .fallback(|| std::future::ready(ApiError::NotFound))
        .with_state(app)
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .extensions()
                    .get::<RequestId>()
                    .and_then(|id| id.header_value().to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, ids))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests
/// finish (up to `drain`) before returning.
///
/// A hand-written loop rather than `axum::serve` because it needs what that one
/// does not offer: a header read timeout (a client stuck sending headers is cut
/// off) and a cap on open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &crate::Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = router
            .clone()
            .map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(config.drain_timeout) => tracing::warn!("drain timeout: closing remaining connections"),
    }
    Ok(())
}
