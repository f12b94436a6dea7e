//! Introspection (RFC 7662), revocation (RFC 7009), opaque tokens, key rotation
//! and pruning, on both stores.

use crate::{broker_with_client, expect_error, on_both_stores};
use auth_broker_proto::ClientSecret;
use auth_broker_server::SigningAlg;
use auth_broker_server::admin::Actor;
use auth_broker_server::clock::{Clock, ManualClock, SystemClock};
use auth_broker_server::{Config, TokenFormat};
use auth_broker_testkit::{Backend, Options, TestBroker};
use serde_json::Value;
use std::time::{Duration, Instant};

on_both_stores!(
    introspection_says_active_or_only_false,
    revocation_is_seen_by_the_next_request,
    opaque_tokens_work_through_introspection_only,
    rotation_under_continuous_load_fails_nothing,
    automatic_rotation_and_pruning_follow_the_clock,
);

async fn post_form(
    b: &TestBroker,
    path: &str,
    id: &str,
    secret: &ClientSecret,
    form: &[(&str, &str)],
) -> reqwest::Response {
    b.http
        .post(b.url(path))
        .basic_auth(id, Some(secret.expose_secret()))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn introspect(b: &TestBroker, id: &str, secret: &ClientSecret, token: &str) -> Value {
    let r = post_form(
        b,
        "/auth-broker/introspect",
        id,
        secret,
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn introspection_says_active_or_only_false(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let (rs, rs_secret) = b.create_client("resource-server", "", None).await;
    let t = b.token(&id, &secret).await;
    let v = introspect(&b, &rs, &rs_secret, &t).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], id.as_str());
    assert_eq!(v["sub"], id.as_str());
    assert_eq!(v["scope"], "read write");
    assert_eq!(v["iss"], b.issuer.as_str());
    assert_eq!(v["aud"], b.issuer.as_str());
    assert_eq!(v["token_type"], "bearer");
    for k in ["exp", "iat", "jti"] {
        assert!(!v[k].is_null(), "{k} in {v}");
    }
    for garbage in ["nope", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "abo_unknown"] {
        let v = introspect(&b, &rs, &rs_secret, garbage).await;
        assert_eq!(v, serde_json::json!({"active": false}), "{garbage}");
    }
    b.admin()
        .set_enabled(&Actor::cli(), &id, false)
        .await
        .unwrap();
    assert_eq!(
        introspect(&b, &rs, &rs_secret, &t).await,
        serde_json::json!({"active": false})
    );
    // The caller must authenticate, and must send a token.
    let r = b
        .http
        .post(b.url("/auth-broker/introspect"))
        .form(&[("token", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Basic realm="auth-broker""#
    );
    expect_error(r, 401, "invalid_client").await;
    let r = post_form(
        &b,
        "/auth-broker/introspect",
        &rs,
        &ClientSecret::new("wrong"),
        &[("token", t.as_str())],
    )
    .await;
    expect_error(r, 401, "invalid_client").await;
    let d = expect_error(
        post_form(&b, "/auth-broker/introspect", &rs, &rs_secret, &[]).await,
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("no token"), "{d}");
    let r = b
        .http
        .get(b.url("/auth-broker/introspect"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    // Metadata names both endpoints.
    let meta: Value = b.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{}/auth-broker/introspect", b.issuer)
    );
    assert_eq!(
        meta["revocation_endpoint"],
        format!("{}/auth-broker/revoke", b.issuer)
    );
}

async fn revocation_is_seen_by_the_next_request(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let (other, other_secret) = b.create_client("other", "", None).await;
    let t = b.token(&id, &secret).await;
    let keep = b.token(&id, &secret).await;
    // Another client may not revoke it.
    let r = post_form(
        &b,
        "/auth-broker/revoke",
        &other,
        &other_secret,
        &[("token", t.as_str())],
    )
    .await;
    expect_error(r, 400, "unauthorized_client").await;
    assert_eq!(
        introspect(&b, &other, &other_secret, &t).await["active"],
        true
    );
    // Its own client may; garbage and repeats are fine (RFC 7009 §2.2).
    for token in [t.as_str(), t.as_str(), "garbage", "abo_nothing"] {
        let r = post_form(
            &b,
            "/auth-broker/revoke",
            &id,
            &secret,
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .await;
        assert_eq!(r.status(), 200, "{token}");
    }
    assert_eq!(
        introspect(&b, &other, &other_secret, &t).await,
        serde_json::json!({"active": false})
    );
    let r = b
        .http
        .get(b.url("/auth-broker/token-info"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error_description"].as_str().unwrap().contains("revoked"),
        "{v}"
    );
    // Other tokens of the same client are untouched.
    assert_eq!(
        introspect(&b, &other, &other_secret, &keep).await["active"],
        true
    );
    // The revocation is kept until the token would have expired, then pruned.
    let now = SystemClock.now_secs();
    assert_eq!(b.raw().prune(now, 0).await.unwrap().revocations, 0);
    assert_eq!(b.raw().prune(now + 3601, 0).await.unwrap().revocations, 1);
}

async fn opaque_tokens_work_through_introspection_only(backend: Backend) {
    let config = Config {
        token_format: TokenFormat::Opaque,
        ..Config::default()
    };
    let b = TestBroker::start_config(backend, config).await;
    let (id, secret) = b.create_client("c", "read", None).await;
    let r = b.request_token(&id, &secret).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "scope", "token_type"],
        "the answer is unchanged"
    );
    let t = v["access_token"].as_str().unwrap().to_owned();
    assert!(t.starts_with("abo_") && t.len() >= 4 + 43, "{t}");
    // Only a hash is stored.
    let hash = auth_broker_server::testing::token_hash(&t);
    let stored = b.raw().get_opaque(&hash).await.unwrap().unwrap();
    assert_eq!(stored.client_id, id);
    assert!(b.raw().get_opaque(&t).await.unwrap().is_none());

    let v = introspect(&b, &id, &secret, &t).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["scope"], "read");
    let r = b
        .http
        .get(b.url("/auth-broker/token-info"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["format"], "opaque", "{info}");
    let r = post_form(
        &b,
        "/auth-broker/revoke",
        &id,
        &secret,
        &[("token", t.as_str())],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        introspect(&b, &id, &secret, &t).await,
        serde_json::json!({"active": false})
    );
}

async fn rotation_under_continuous_load_fails_nothing(backend: Backend) {
    use jsonwebtoken::jwk::JwkSet;
    let config = Config {
        key_poll_interval: Duration::from_millis(100),
        ..Config::default()
    };
    let b = TestBroker::start_config(backend, config).await;
    let (id, secret) = b.create_client("c", "", None).await;
    // A verifier as a resource server keeps one: cached JWKS, refetched on an unknown kid.
    let mut jwks: JwkSet = b.get_json("/.well-known/jwks.json").await;
    let (mut issued, mut fetches, mut kids) = (0, 0, std::collections::HashSet::new());
    let started = Instant::now();
    let mut rotated = false;
    while started.elapsed() < Duration::from_millis(1500) {
        if !rotated && started.elapsed() > Duration::from_millis(400) {
            b.admin()
                .rotate_key(&Actor::cli(), SigningAlg::Es256)
                .await
                .unwrap();
            rotated = true;
        }
        let t = b.token(&id, &secret).await;
        let kid = jsonwebtoken::decode_header(&t).unwrap().kid.unwrap();
        if jwks.find(&kid).is_none() {
            jwks = b.get_json("/.well-known/jwks.json").await;
            fetches += 1;
        }
        let key = jsonwebtoken::DecodingKey::from_jwk(
            jwks.find(&kid).expect("kid known after one refetch"),
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&[b.issuer.as_str()]);
        jsonwebtoken::decode::<Value>(&t, &key, &v).unwrap();
        let r = b
            .http
            .get(b.url("/auth-broker/token-info"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        kids.insert(kid);
        issued += 1;
    }
    assert_eq!(
        kids.len(),
        2,
        "tokens from both keys were issued and verified ({issued} tokens)"
    );
    assert!(
        fetches <= 1,
        "one JWKS refetch for the new kid, got {fetches}"
    );
}

async fn automatic_rotation_and_pruning_follow_the_clock(backend: Backend) {
    let clock = ManualClock::at_nanos(SystemClock.now_nanos());
    let config = Config {
        key_poll_interval: Duration::from_millis(50),
        key_rotation_interval: Some(Duration::from_secs(3600)),
        prune_interval: Duration::from_millis(50),
        token_ttl_secs: 600,
        ..Config::default()
    };
    let b = TestBroker::start_with(
        backend,
        Options {
            config,
            clock: Some(clock.clone()),
            ..Default::default()
        },
    )
    .await;
    let (id, secret) = b.create_client("c", "", None).await;
    let kid_of = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let first = kid_of(&b.token(&id, &secret).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(kid_of(&b.token(&id, &secret).await), first, "not due yet");

    clock.advance_secs(3601);
    let mut second = first.clone();
    for _ in 0..100 {
        second = kid_of(&b.token(&id, &secret).await);
        if second != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(second, first, "rotated once the key was an hour old");
    let jwks = |b: &TestBroker| {
        let url = b.url("/.well-known/jwks.json");
        let http = b.http.clone();
        async move {
            let v: Value = auth_broker_testkit::get_json(&http, &url).await;
            v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(
        jwks(&b).await.contains(&first),
        "the retired key stays published while its tokens live"
    );
    // Past the last old token's expiry plus leeway, the retired key is pruned.
    clock.advance_secs(600 + 61);
    let mut gone = false;
    for _ in 0..100 {
        if !b
            .admin()
            .keys()
            .await
            .unwrap()
            .iter()
            .any(|k| k.kid == first)
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the retired key was deleted from the store");
    assert!(!jwks(&b).await.contains(&first));
    assert!(jwks(&b).await.contains(&second));
}
