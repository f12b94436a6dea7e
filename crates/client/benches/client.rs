//! The hot paths: getting a cached token, and signing one request with the tower layer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_client::{BearerLayer, SystemClock, TokenConfig, TokenManager};
use auth_broker_proto::ClientSecret;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use std::hint::black_box;
use std::sync::Arc;
use tower::{Layer, Service};

fn primed(rt: &tokio::runtime::Runtime) -> TokenManager {
    rt.block_on(async {
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(|| async {
                axum::Json(serde_json::json!({"access_token": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln", "token_type": "bearer", "expires_in": 3599}))
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        let m = TokenManager::with_parts(
            TokenConfig::new(url, "bench", ClientSecret::new("secret")),
            auth_broker_client::default_http_client().unwrap(),
            Arc::new(SystemClock),
        );
        m.token().await.unwrap();
        m
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = primed(&rt);
    let _guard = rt.enter();
    c.bench_function("cached token", |b| {
        b.iter(|| black_box(m.token().now_or_never().unwrap().unwrap()))
    });
    let mut svc =
        BearerLayer::new(m.clone()).layer(tower::service_fn(|req: http::Request<()>| async move {
            Ok::<_, std::convert::Infallible>({
                black_box(req);
                http::Response::new(())
            })
        }));
    c.bench_function("sign one request (tower layer)", |b| {
        b.iter(|| {
            let req = http::Request::get("http://api.example/x").body(()).unwrap();
            black_box(svc.call(req).now_or_never().unwrap().unwrap())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
