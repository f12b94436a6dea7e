//! Per-client settings at the token endpoint (INTERFACE §5), on both stores: several
//! audiences, secret expiry, and clients stored before the settings existed.

use crate::{expect_error, on_both_stores};
use auth_broker_proto::ClientSecret;
use auth_broker_server::admin::Actor;
use auth_broker_server::clock::{Clock, ManualClock};
use auth_broker_server::testing::{Raw, open_at_version};
use auth_broker_testkit::{Backend, FreshStore, Options, TestBroker};
use serde_json::{Value, json};
use std::sync::Arc;

on_both_stores!(
    several_audiences_pick_one_by_audience_or_resource,
    an_expired_secret_is_refused_and_rotation_renews_it,
    clients_from_before_the_settings_keep_working,
);

async fn several_audiences_pick_one_by_audience_or_resource(backend: Backend) {
    let b = TestBroker::start(backend).await;
    let (id, secret) = b.create_client("multi", "", None).await;
    b.admin()
        .update_client(
            &Actor::cli(),
            &id,
            &json!({"audience": ["https://a.example", "https://b.example"]}),
            None,
        )
        .await
        .unwrap();
    let ask = |params: Vec<(&'static str, &'static str)>| {
        let b = &b;
        let (id, secret) = (id.clone(), secret.clone());
        async move {
            let mut form = vec![("grant_type", "client_credentials")];
            form.extend(params);
            b.http
                .post(b.token_url())
                .basic_auth(&id, Some(secret.expose_secret()))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let aud = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        crate::jwt::claims_unverified(v["access_token"].as_str().unwrap())["aud"].clone()
    };
    assert_eq!(
        aud(ask(vec![]).await).await,
        "https://a.example",
        "the first is the default"
    );
    assert_eq!(
        aud(ask(vec![("audience", "https://b.example")]).await).await,
        "https://b.example"
    );
    assert_eq!(
        aud(ask(vec![("resource", "https://b.example")]).await).await,
        "https://b.example"
    );
    assert_eq!(
        aud(ask(vec![
            ("audience", "https://b.example"),
            ("resource", "https://b.example")
        ])
        .await)
        .await,
        "https://b.example"
    );
    for bad in [
        vec![("resource", "https://c.example")],
        vec![
            ("audience", "https://a.example"),
            ("resource", "https://b.example"),
        ],
    ] {
        expect_error(ask(bad).await, 400, "invalid_target").await;
    }
}

async fn an_expired_secret_is_refused_and_rotation_renews_it(backend: Backend) {
    let clock = ManualClock::at_nanos(1_800_000_000 * 1_000_000_000);
    let b = TestBroker::start_with(
        backend,
        Options {
            clock: Some(clock.clone()),
            ..Default::default()
        },
    )
    .await;
    let (id, secret) = b.create_client("expiring", "", None).await;
    let now = clock.now_secs();
    // A secret issued now that lives 90 days.
    Raw(&b.store)
        .change_client(&id, |c| {
            c.secret_issued_at = now;
            c.secret_expires_at = now + 90 * 86_400;
        })
        .await
        .unwrap();
    assert_eq!(b.request_token(&id, &secret).await.status(), 200);
    clock.advance_secs(90 * 86_400);
    let r = b.request_token(&id, &secret).await;
    assert_eq!(
        r.status(),
        401,
        "expired: the same answer as a wrong secret"
    );
    // A rotation gives the new secret the same lifetime, from now.
    let admin = auth_broker_server::admin::Admin::new(b.store.clone(), Arc::new(clock.clone()));
    let rotated = admin.rotate_secret(&Actor::cli(), &id, 0).await.unwrap();
    assert_eq!(rotated.expires_at, clock.now_secs() + 90 * 86_400);
    assert_eq!(b.request_token(&id, &rotated.secret).await.status(), 200);
    // A time already past expires the secret now (a way to cut one off)...
    admin
        .update_client(
            &Actor::cli(),
            &id,
            &json!({"client_secret_expires_at": 5}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(b.request_token(&id, &rotated.secret).await.status(), 401);
    // ...and a negative one is no time at all.
    let e = admin
        .update_client(
            &Actor::cli(),
            &id,
            &json!({"client_secret_expires_at": -1}),
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("client_secret_expires_at"), "{e}");
}

/// A store made by the previous release (schema version 3, a client with one
/// audience) is upgraded on open and every existing client works unchanged.
async fn clients_from_before_the_settings_keep_working(backend: Backend) {
    let fresh = FreshStore::new(backend).await;
    let old = open_at_version(&fresh.url, 3).await.unwrap();
    let hash = auth_broker_server::testing::hash_secret(&ClientSecret::new("legacy-secret"));
    Raw(&old)
        .execute_batch(&format!(
            "INSERT INTO clients (id, name, secret_hash, scopes, audience, enabled, created_at, updated_at) \
             VALUES ('legacy', 'legacy app', '{hash}', 'read write', 'https://api.example', TRUE, 100, 100)"
        ))
        .await
        .unwrap();
    drop(old);
    let b = TestBroker::start_with(
        backend,
        Options {
            store: Some(Arc::new(fresh)),
            ..Default::default()
        },
    )
    .await;
    let r = b
        .request_token("legacy", &ClientSecret::new("legacy-secret"))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scope"], "read write");
    assert_eq!(v["expires_in"], 3599);
    let claims = crate::jwt::claims_unverified(v["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://api.example");
    let c = b.admin().client("legacy").await.unwrap();
    assert_eq!(c.settings.audience, ["https://api.example"]);
    assert_eq!(c.version, 1);
    assert!(c.settings.enabled);
}
