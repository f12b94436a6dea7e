//! The hot paths: getting a cached token, and signing one request with the tower layer;
//! and what key-bound clients add: one client assertion (RFC 7523) per token request,
//! one DPoP proof (RFC 9449) per request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_client::{
    BearerLayer, DpopKey, JwsAlg, PrivateKeyJwt, SigningKey, SystemClock, TokenConfig, TokenManager,
};
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

fn key_bound(c: &mut Criterion) {
    let assertion = PrivateKeyJwt::new(SigningKey::generate(JwsAlg::Es256).unwrap().with_kid("k1"));
    c.bench_function("make one client assertion (ES256)", |b| {
        b.iter(|| {
            black_box(
                assertion
                    .assertion(
                        "billing",
                        "https://auth.example.com/auth-broker/request-token",
                        std::time::SystemTime::now(),
                    )
                    .unwrap(),
            )
        })
    });
    let dpop = DpopKey::generate().unwrap();
    let url = reqwest::Url::parse("https://api.example.com/invoices?page=2").unwrap();
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln";
    c.bench_function("make one DPoP proof (ES256, with ath)", |b| {
        b.iter(|| {
            black_box(
                dpop.proof(
                    &http::Method::GET,
                    &url,
                    std::time::SystemTime::now(),
                    Some(token),
                )
                .unwrap(),
            )
        })
    });
}

criterion_group!(benches, bench, key_bound);
criterion_main!(benches);
