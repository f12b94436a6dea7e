//! Guard validation cost: a token seen for the first time (parse, ES256 verify,
//! claim checks), a token seen before (cache hit), and a DPoP-bound token with a fresh
//! proof per request, beside one raw ES256 verify.
//!
//! `cargo bench -p auth-broker-guard --bench validate`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: failing setup is a failed run

use auth_broker_guard::{Guard, RequestView};
use auth_broker_jwt::VerifyingKey;
use auth_broker_proto::Jwks;
use auth_broker_testkit::keybound::ProofKey;
use auth_broker_testkit::{Backend, TestBroker};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (broker, token, cached, uncached, key) = rt.block_on(async {
        let b = TestBroker::start(Backend::Sqlite).await;
        let (id, secret) = b.create_client("bench", "invoices:read", None).await;
        let token = b.token(&id, &secret).await;
        let cached = Guard::builder(&b.issuer).build().await.unwrap();
        let uncached = Guard::builder(&b.issuer)
            .cache_capacity(0)
            .build()
            .await
            .unwrap();
        let jwks: Jwks = b.get_json("/.well-known/jwks.json").await;
        let key = VerifyingKey::from_jwk(&jwks.keys[0]).unwrap();
        (b, token, cached, uncached, key)
    });
    let jwt = auth_broker_jwt::parse(&token).unwrap();
    assert!(key.verify(jwt.signing_input.as_bytes(), &jwt.signature));
    rt.block_on(async {
        cached.validate(&token).await.unwrap();
        uncached.validate(&token).await.unwrap();
    });

    let mut g = c.benchmark_group("guard");
    g.bench_function("es256_verify_raw", |b| {
        b.iter(|| {
            key.verify(
                black_box(jwt.signing_input.as_bytes()),
                black_box(&jwt.signature),
            )
        })
    });
    g.bench_function("validate_first_sight", |b| {
        b.to_async(&rt)
            .iter(|| async { uncached.validate(black_box(&token)).await.unwrap() })
    });
    g.bench_function("validate_repeat_cached", |b| {
        b.to_async(&rt)
            .iter(|| async { cached.validate(black_box(&token)).await.unwrap() })
    });
    let req = http::Request::get("/invoices")
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .unwrap();
    let required = vec!["invoices:read".to_owned()];
    g.bench_function("check_header_and_scope_cached", |b| {
        b.to_async(&rt)
            .iter(|| async { cached.check(view(&req), &required).await.unwrap() })
    });

    // A DPoP-bound token (RFC 9449 §7.1): each request carries a fresh proof, judged
    // (parse, the proof key's ES256 verify, the RFC 7638 thumbprint, htm/htu/iat/ath)
    // and used once; the token itself is a cache hit. The proofs are made outside
    // the measurement.
    let key = ProofKey::new();
    let dpop_token = rt.block_on(async {
        let (id, secret) = broker
            .create_client("bench-dpop", "invoices:read", None)
            .await;
        key.token_from(&broker, &id, &secret).await
    });
    let url = "https://api.example/invoices";
    let dpop_guard = rt.block_on(async {
        Guard::builder(&broker.issuer)
            .public_url("https://api.example")
            .build()
            .await
            .unwrap()
    });
    let request = |proof: String| {
        http::Request::get("/invoices")
            .header(http::header::AUTHORIZATION, format!("DPoP {dpop_token}"))
            .header("dpop", proof)
            .body(())
            .unwrap()
    };
    let first = request(key.proof("GET", url, Some(&dpop_token)));
    rt.block_on(dpop_guard.check(view(&first), &required))
        .unwrap();
    g.bench_function("check_dpop_proof_and_token_cached", |b| {
        b.to_async(&rt).iter_batched(
            || request(key.proof("GET", url, Some(&dpop_token))),
            |req| {
                let (guard, required) = (&dpop_guard, &required);
                async move { guard.check(view(&req), required).await.unwrap() }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn view<B>(req: &http::Request<B>) -> RequestView<'_> {
    RequestView::of(req)
}

criterion_group!(benches, bench);
criterion_main!(benches);
