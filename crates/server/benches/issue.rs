//! The hot path of the token endpoint, piece by piece and whole.
//!
//! `cargo bench -p auth-broker-server --bench issue`
//!
//! `issue/full` is everything a token request costs apart from HTTP: parse the Basic
//! header and the form, read the client from SQLite, verify the secret, sign the JWT
//! and serialize the answer.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use auth_broker_proto::token::TOKEN_TYPE_BEARER;
use auth_broker_proto::{AccessToken, BasicCredentials, ClientSecret, Form, TokenResponse};
use auth_broker_server::admin::{Actor, Admin, NewClient};
use auth_broker_server::testing::{self as secret, Raw, SigningKey};
use auth_broker_server::{Config, Server, SigningAlg};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (state, id, secret) = rt.block_on(async {
        let admin = Admin::open(&url).await.unwrap();
        let (client, secret) = admin
            .create_client(
                &Actor::cli(),
                &NewClient {
                    name: "bench".into(),
                    scope: "read write".into(),
                    audience: None,
                },
            )
            .await
            .unwrap();
        let store = admin.store().clone();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            // The auth_path group fails thousands of times: keep it out of 429.
            auth_failures_per_minute: std::num::NonZeroU32::MAX,
            ..Config::default()
        };
        let server = Server::bind_default_clock(config, store).await.unwrap();
        (server.state().clone(), client.client_id, secret)
    });
    let header = auth_broker_proto::basic::header_value(&id, &secret, true);
    let body = b"grant_type=client_credentials";
    let hash = secret::hash_secret(&secret);

    let mut g = c.benchmark_group("parse");
    g.bench_function("basic_header", |b| {
        b.iter(|| BasicCredentials::parse(black_box(header.as_bytes())).unwrap())
    });
    g.bench_function("form_body", |b| {
        b.iter(|| Form::parse(black_box(body)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("auth");
    g.bench_function("verify_secret", |b| {
        b.iter(|| secret::verify_secret(black_box(&secret), black_box(&hash)))
    });
    let wrong = ClientSecret::new("abs_wrong_wrong_wrong_wrong_wrong_wrong_wrong_wr");
    g.bench_function("verify_wrong_secret", |b| {
        b.iter(|| secret::verify_secret(black_box(&wrong), black_box(&hash)))
    });
    g.bench_function("verify_unknown_client", |b| {
        b.iter(|| secret::verify_dummy(black_box(&wrong)))
    });
    // The read every token request makes: served from the client cache while the
    // database is unchanged (one pread of the WAL-index header), and the uncached
    // read a request after a change makes.
    g.bench_function("sqlite_client_for_auth_cached", |b| {
        b.iter(|| {
            rt.block_on(Raw(state.store()).get_client_for_auth(black_box(&id)))
                .unwrap()
        })
    });
    g.bench_function("sqlite_get_client_uncached", |b| {
        b.iter(|| {
            rt.block_on(Raw(state.store()).get_client(black_box(&id)))
                .unwrap()
        })
    });
    g.finish();

    // The whole token endpoint in process (router, middleware, Basic and form
    // parsing, store lookup, hashing, the 401), for a failed authentication: an
    // unknown client id against a known id with a wrong secret. The two must cost
    // the same (no enumeration by timing); ids and secrets have equal lengths.
    let mut g = c.benchmark_group("auth_path");
    let router = auth_broker_server::http::router(state.clone());
    let unknown_id = secret::generate_client_id().unwrap();
    let other = secret::generate_secret().unwrap();
    let wrong_full = secret::generate_secret().unwrap();
    let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let request = |id: &str, s: &ClientSecret| {
        let mut r = axum::http::Request::post("/auth-broker/request-token")
            .header(
                "authorization",
                auth_broker_proto::basic::header_value(id, s, true),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(&body[..]))
            .unwrap();
        r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        r
    };
    for (name, id, s) in [
        ("unknown_client", unknown_id.as_str(), &other),
        ("wrong_secret", id.as_str(), &wrong_full),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = rt
                    .block_on(tower::ServiceExt::oneshot(router.clone(), request(id, s)))
                    .unwrap();
                assert_eq!(r.status(), 401);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sign");
    for alg in SigningAlg::ALL {
        let key = SigningKey::from_record(&SigningKey::generate(alg, 0).unwrap()).unwrap();
        let msg = [b'x'; 300];
        g.bench_function(alg.as_str(), |b| {
            b.iter(|| key.sign(black_box(&msg)).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("issue");
    g.bench_function("full", |b| {
        b.iter(|| {
            let creds = BasicCredentials::parse(black_box(header.as_bytes())).unwrap();
            let form = Form::parse(black_box(body)).unwrap();
            assert_eq!(form.get("grant_type"), Some("client_credentials"));
            let client = rt
                .block_on(Raw(state.store()).get_client_for_auth(creds.client_id()))
                .unwrap()
                .unwrap();
            assert!(secret::verify_secret(
                creds.client_secret(),
                &client.secret_hash
            ));
            let issued = state
                .sign_token(&client.id, state.issuer(), &client.scopes)
                .unwrap();
            let resp = TokenResponse {
                access_token: AccessToken::new(issued.token),
                expires_in: Some(issued.expires_in),
                scope: Some(client.scopes.join(" ")),
                token_type: TOKEN_TYPE_BEARER.to_owned(),
            };
            serde_json::to_string(&resp).unwrap()
        })
    });
    g.finish();
}

criterion_group!(name = group; config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3)); targets = benches);
criterion_main!(group);
