//! Several brokers on one PostgreSQL database, and live key rotation.

use crate::on_both_stores;
use auth_broker_proto::ClientSecret;
use auth_broker_server::Config;
use auth_broker_server::SigningAlg;
use auth_broker_server::admin::Actor;
use auth_broker_testkit::{Backend, FreshStore, Options, TestBroker};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

on_both_stores!(a_rotation_reaches_the_running_broker);

async fn verify(b: &TestBroker, token: &str, issuer: &str) -> Result<(), String> {
    let jwks: JwkSet = b.get_json("/.well-known/jwks.json").await;
    let kid = kid_of(token);
    let jwk = jwks
        .find(&kid)
        .ok_or(format!("kid {kid} not in {}'s JWKS", b.base))?;
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[issuer]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The `kid` in a token's header.
fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Asks `b` for tokens every `poll` until one is signed with `new_kid`; until then each
/// must be signed with `old_kid`, and the switch must come `within`. Returns how long it
/// took.
async fn until_signed_with(
    b: &TestBroker,
    (id, secret): (&str, &ClientSecret),
    old_kid: &str,
    new_kid: &str,
    within: Duration,
    poll: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let kid = kid_of(&b.token(id, secret).await);
        if kid == new_kid {
            return started.elapsed();
        }
        assert_eq!(kid, old_kid);
        assert!(
            started.elapsed() < within,
            "{} still signs with the old key after {within:?}",
            b.base
        );
        tokio::time::sleep(poll).await;
    }
}

/// Two brokers with `config` on one fresh PostgreSQL database, started together.
async fn two_replicas(config: Config) -> (TestBroker, TestBroker) {
    let fresh = Arc::new(FreshStore::new(Backend::Postgres).await);
    let opts = || Options {
        config: config.clone(),
        store: Some(fresh.clone()),
        ..Default::default()
    };
    tokio::join!(
        TestBroker::start_with(Backend::Postgres, opts()),
        TestBroker::start_with(Backend::Postgres, opts())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_on_one_postgres_verify_each_others_tokens() {
    let issuer = "https://auth.example.com";
    let (a, b) = two_replicas(Config {
        issuer: Some(issuer.into()),
        ..Config::default()
    })
    .await;
    let (id, secret) = a.create_client("shared", "", None).await;
    let ta = a.token(&id, &secret).await;
    let tb = b.token(&id, &secret).await;
    for (token, by) in [(&ta, "a"), (&tb, "b")] {
        verify(&a, token, issuer)
            .await
            .unwrap_or_else(|e| panic!("token by {by} against a: {e}"));
        verify(&b, token, issuer)
            .await
            .unwrap_or_else(|e| panic!("token by {by} against b: {e}"));
    }
    // A client disabled through one is refused by the other at once.
    b.admin()
        .set_enabled(&Actor::cli(), &id, false)
        .await
        .unwrap();
    assert_eq!(a.request_token(&id, &secret).await.status(), 401);
}

async fn a_rotation_reaches_the_running_broker(backend: Backend) {
    let config = Config {
        key_poll_interval: Duration::from_millis(200),
        ..Config::default()
    };
    let b = TestBroker::start_config(backend, config).await;
    let (id, secret) = b.create_client("c", "", None).await;
    let before = b.token(&id, &secret).await;
    let old_kid = kid_of(&before);
    let rotated = b
        .admin()
        .rotate_key(&Actor::cli(), SigningAlg::Es256)
        .await
        .unwrap();
    until_signed_with(
        &b,
        (&id, &secret),
        &old_kid,
        &rotated.kid,
        Duration::from_secs(5),
        Duration::from_millis(50),
    )
    .await;
    // The token signed before the rotation still verifies: the retired key stays published.
    verify(&b, &before, &b.issuer.clone()).await.unwrap();
}

/// On PostgreSQL a rotation made by one replica is heard by the others
/// (`NOTIFY auth_broker_keys`, migration 7): they sign with the new key at once, with a
/// key poll far too slow to explain it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_on_one_replica_is_signed_with_by_the_others_at_once() {
    let (a, b) = two_replicas(Config {
        key_poll_interval: Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    let (id, secret) = a.create_client("c", "", None).await;
    let old_kid = kid_of(&b.token(&id, &secret).await);
    // Both listen before the rotation (the listener connects in the background).
    let listening = Instant::now() + Duration::from_secs(10);
    let live = |b: &TestBroker| {
        let stats = auth_broker_server::testing::Raw(&b.served).client_cache_stats();
        stats.is_some_and(|s| s.on)
    };
    while !(live(&a) && live(&b)) {
        assert!(
            Instant::now() < listening,
            "the change listeners never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rotated = a
        .admin()
        .rotate_key(&Actor::cli(), SigningAlg::Es256)
        .await
        .unwrap();
    assert_ne!(rotated.kid, old_kid);
    let took = until_signed_with(
        &b,
        (&id, &secret),
        &old_kid,
        &rotated.kid,
        Duration::from_secs(2),
        Duration::from_millis(5),
    )
    .await;
    eprintln!("the other replica switched after {took:?}");
}

/// A retired key stays in the JWKS until the last token it can have signed has
/// expired, reckoned from what is stored (the longest lifetime of any broker that
/// signed with it), never from the pruning broker's own `--token-ttl`: here a broker
/// with 60 s tokens prunes while another broker's one-hour token from the retired key
/// is still valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_keys_outlive_the_longest_token_of_any_replica() {
    let fresh = Arc::new(FreshStore::new(Backend::Postgres).await);
    let issuer = "https://auth.example.com";
    let clock = auth_broker_server::clock::ManualClock::at_nanos(1_800_000_000_000_000_000);
    let opts = |ttl: i64| Options {
        config: Config {
            issuer: Some(issuer.into()),
            token_ttl_secs: ttl,
            key_poll_interval: Duration::from_millis(100),
            prune_interval: Duration::ZERO,
            ..Config::default()
        },
        store: Some(fresh.clone()),
        clock: Some(clock.clone()),
    };
    let long = TestBroker::start_with(Backend::Postgres, opts(3600)).await;
    let short = TestBroker::start_with(Backend::Postgres, opts(60)).await;
    let (id, secret) = long.create_client("c", "", None).await;
    let token = long.token(&id, &secret).await;
    let kid = kid_of(&token);
    auth_broker_server::admin::Admin::new(long.store.clone(), Arc::new(clock.clone()))
        .rotate_key(&Actor::cli(), SigningAlg::Es256)
        .await
        .unwrap();
    // Far past the short broker's lifetime and leeway, well within the long one's.
    clock.advance_secs(600);
    // Both prune on every tick; give them a few.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let kids = |b: &TestBroker| {
        let admin = b.admin();
        async move {
            admin
                .keys()
                .await
                .unwrap()
                .into_iter()
                .map(|k| k.kid)
                .collect::<Vec<_>>()
        }
    };
    assert!(
        kids(&short).await.contains(&kid),
        "the retired key was pruned"
    );
    let jwks: JwkSet = short.get_json("/.well-known/jwks.json").await;
    assert!(jwks.find(&kid).is_some(), "the JWKS lost the retired key");
    // Once the one-hour token has expired (plus the leeway), it goes.
    clock.advance_secs(3600);
    let deadline = Instant::now() + Duration::from_secs(10);
    while kids(&short).await.contains(&kid) {
        assert!(
            Instant::now() < deadline,
            "the retired key was never pruned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
