//! The HTTP surface: routes, middleware and the connection loop.

pub mod admin_api;
pub(crate) mod admin_auth;
mod client_auth;
pub mod console;
pub mod error;
mod hygiene;
mod introspect;
mod observe;
pub mod openapi;
mod ops;
mod stall;
pub mod token;
pub mod token_info;
mod trace;
pub mod wellknown;

use crate::AppState;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use error::ApiError;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::ServiceExt;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id (set or adopted by [`observe`]), for the audit trail.
pub(crate) fn request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn only(allow: &'static str) -> impl Fn() -> std::future::Ready<ApiError> + Clone {
    move || std::future::ready(ApiError::MethodNotAllowed { allow })
}

/// The broker's routes, with their middleware.
pub fn router(app: Arc<AppState>) -> Router {
    let observe = observe::ObserveLayer {
        ids: observe::Ids::new(),
        export: app.config.trace_export,
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
        .route(
            "/admin/v1/clients",
            get(admin_api::list_clients)
                .post(admin_api::create_client)
                .fallback(only("GET, POST")),
        )
        .route(
            "/admin/v1/clients/{client_id}",
            get(admin_api::get_client)
                .patch(admin_api::update_client)
                .delete(admin_api::delete_client)
                .fallback(only("GET, PATCH, DELETE")),
        )
        .route(
            "/admin/v1/clients/{client_id}/secret",
            post(admin_api::rotate_secret).fallback(only("POST")),
        )
        .route(
            "/admin/v1/clients/{client_id}/revoke-tokens",
            post(admin_api::revoke_tokens).fallback(only("POST")),
        )
        .route(
            "/admin/v1/clients/{client_id}/usage",
            get(admin_api::usage).fallback(only("GET")),
        )
        .route(
            "/admin/v1/keys",
            get(admin_api::list_keys).fallback(only("GET")),
        )
        .route(
            "/admin/v1/keys/rotate",
            post(admin_api::rotate_key).fallback(only("POST")),
        )
        .route(
            "/admin/v1/audit",
            get(admin_api::audit).fallback(only("GET")),
        )
        .merge(console::routes())
        .fallback(|| std::future::ready(ApiError::NotFound))
        .with_state(app)
        // One `layer` call with the whole stack, outermost first: axum boxes what each
        // call returns around every route and clones a route's service per request,
        // so six calls meant six nested boxes to clone (about 10,000 instructions a
        // request, callgrind); one call is one box around two plain structs. What
        // every request gets (sensitive `Authorization`, request id, span and logs,
        // metrics) is one layer, `observe`, where it was five.
        .layer(
            tower::ServiceBuilder::new()
                .layer(observe)
                .layer(hygiene::HostCheckLayer),
        )
}

/// The operator's metrics listener (`serve --metrics-listen`): `GET /metrics` with
/// every family, including those the public `/metrics` leaves out
/// (`crate::metrics::PRIVATE_FAMILIES`), and nothing else. Meant for an address
/// only the monitoring system reaches (loopback, an internal interface).
pub fn metrics_router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(ops::private_metrics).fallback(only("GET")))
        .fallback(|| std::future::ready(ApiError::NotFound))
        .with_state(app)
}

/// The answer to a connection over [`crate::Config::max_connections`]: written
/// without waiting and without reading the request, then the connection is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 98\r\n\r\n{\"error\":\"temporarily_unavailable\",\"error_description\":\"the broker has too many open connections\"}";

/// Accepts connections until `shutdown` resolves, then lets in-flight requests
/// finish (up to `drain`) before returning. With `tls`, each connection is a TLS
/// connection (RFC 8446) carrying HTTP/1.1.
///
/// A hand-written loop rather than `axum::serve` because it needs what that one
/// does not offer. Idle and half-sent connections cannot pile up: the request head
/// must arrive within `header_timeout` (also between keep-alive requests) and be at
/// most `max_header_bytes`, form bodies within `body_timeout` (see
/// `client_auth::read_body`), answers taken by the client within `send_timeout`
/// (see `stall`), and at most `max_connections` are open at once. A
/// connection over the cap is not left waiting in the kernel's backlog, where a
/// client cannot tell a full broker from a dead one: it gets `503` with
/// `Retry-After` at once (RFC 9110 §15.6.4) and is closed, and the held slots free
/// themselves by the timeouts above. TLS handshakes are bounded by `header_timeout`
/// too, and run in the connection's task. (Over the cap, a TLS connection is only
/// closed: a plain-text answer would be noise to a client expecting a handshake.)
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    config: &crate::Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_header_size(config.max_header_bytes)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let handshake_timeout = config.header_timeout;
    let send_timeout = config.send_timeout;
    tokio::pin!(shutdown);
    loop {
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
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // A fresh socket's send buffer is empty, so this write does not block;
            // if it fails anyway the close alone tells the client.
            if tls.is_none() {
                let _ = stream.try_write(OVER_CAPACITY);
            }
            metrics::counter!("auth_broker_connections_rejected_total").increment(1);
            tracing::debug!(%peer, "connection refused: max_connections reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Each request carries the peer's address and, over mutual TLS, the
        // certificate chain the client presented in the handshake (RFC 8705).
        let router = router.clone();
        let service = move |chain: Option<crate::mtls::PeerChain>| {
            let leaf = chain.as_ref().map(|c| c.leaf().clone());
            TowerToHyperService::new(router.clone().map_request(
                move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    if let Some(chain) = &chain {
                        req.extensions_mut().insert(chain.clone());
                    }
                    if let Some(leaf) = &leaf {
                        req.extensions_mut().insert(leaf.clone());
                    }
                    req
                },
            ))
        };
        // Taken here, in the loop, so a shutdown that starts while this connection
        // is still in its TLS handshake waits for it too (bounded by the handshake
        // timeout, then by the drain timeout).
        let watcher = graceful.watcher();
        let builder = builder.clone();
        match &tls {
            None => {
                let conn = watcher.watch(builder.serve_connection(
                    TokioIo::new(stall::SendDeadline::new(stream, send_timeout)),
                    service(None),
                ));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                // The handshake runs in the connection's own task, never in this
                // loop, so a slow or silent client delays only itself; and it is
                // bounded, so it cannot hold a connection permit for long.
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let chain = stream.get_ref().1.peer_certificates().and_then(|c| {
                        crate::mtls::PeerChain::new(
                            c.iter().map(|c| c.clone().into_owned()).collect(),
                        )
                    });
                    let conn = watcher.watch(builder.serve_connection(
                        TokioIo::new(stall::SendDeadline::new(stream, send_timeout)),
                        service(chain),
                    ));
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(config.drain_timeout) => tracing::warn!("drain timeout: closing remaining connections"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_over_capacity_answer_is_well_formed() {
        let text = std::str::from_utf8(super::OVER_CAPACITY).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.contains(&format!("\r\nContent-Length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(v["error"], "temporarily_unavailable");
    }
}
