//! The load harness's limit: the broker's own HTTP stack (hyper, axum, the same
//! connection loop) answering every request with a fixed 250-byte token-shaped
//! JSON, doing no OAuth work at all.
//!
//! `cargo run --release -p auth-broker-server --example bare -- 127.0.0.1:0`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

/// The broker's allocator (`crates/cli/src/main.rs`), so the limit is the same stack's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 250 bytes, shaped like a token response.
const BODY: &str = r#"{"access_token":"eyJhbGciOiJFUzI1NiIsImtpZCI6ImJhcmUiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiJiYXJlIn0.c2lnbmF0dXJlLXBsYWNlaG9sZGVyLWZvci10aGUtYmFyZS1zZXJ2ZXItMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYxM","expires_in":3599,"scope":"","token_type":"bearer"}"#;

#[tokio::main]
async fn main() {
    assert_eq!(BODY.len(), 250);
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    println!(
        "bare listening on http://{}",
        listener.local_addr().unwrap()
    );
    let router = Router::new().route(
        "/auth-broker/request-token",
        post(|| async {
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                BODY,
            )
                .into_response()
        }),
    );
    let config = auth_broker_server::Config::default();
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    auth_broker_server::http::serve(listener, router, None, &config, stop)
        .await
        .unwrap();
}
