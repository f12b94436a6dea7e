//! The JWKS cache: rotation without a failed request, a forged-`kid` flood that
//! cannot hammer the broker, and the last good key set kept while the broker is down.

use crate::common::*;
use auth_broker_guard::{Fault, Guard, GuardError};
use auth_broker_server::SigningAlg;
use auth_broker_server::admin::Actor;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_while_validating_continuously_fails_no_request() {
    let b = broker().await;
    let (id, secret) = b.create_client("caller", "invoices:read", None).await;
    let guard = Guard::builder(&b.issuer).build().await.unwrap();
    let app = api(guard.clone());

    let stop = Instant::now() + Duration::from_secs(4);
    let worker = {
        let (b_http, url) = (b.http.clone(), b.token_url());
        let (id, secret) = (id.clone(), secret.clone());
        tokio::spawn(async move {
            let (mut ok, mut failures, mut kids) = (0, Vec::new(), HashSet::new());
            while Instant::now() < stop {
                let r = b_http
                    .post(&url)
                    .basic_auth(&id, Some(secret.expose_secret()))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let v: serde_json::Value = r.json().await.unwrap();
                let t = v["access_token"].as_str().unwrap().to_owned();
                kids.insert(decode(&t).0["kid"].as_str().unwrap().to_owned());
                let a = call(&app, "/invoices", Some(&bearer(&t))).await;
                if a.status == 200 {
                    ok += 1;
                } else {
                    failures.push(a);
                }
            }
            (ok, failures, kids)
        })
    };
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        b.admin()
            .rotate_key(&Actor::cli(), SigningAlg::Es256)
            .await
            .unwrap();
    }
    let (ok, failures, kids) = worker.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(kids.len(), 3, "the broker signed with three keys in turn");
    assert!(ok > 50, "only {ok} validations");
    // One fetch at start and one per new key; no more.
    let fetches = guard.stats().jwks_fetches;
    assert!((3..=4).contains(&fetches), "{fetches} JWKS fetches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_kids_costs_the_broker_at_most_a_couple_of_fetches() {
    let b = broker().await;
    let proxy = CountingProxy::start(b.base.clone()).await;
    let guard = Guard::builder(&b.issuer)
        .discovery_base(&proxy.base)
        .build()
        .await
        .unwrap();
    let app = api(guard.clone());
    let t = token(&b, "", None).await;
    let (header, _) = decode(&t);

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let mut h = header.clone();
        h["kid"] = json!(format!("forged-{i}"));
        let forged = forge(&t, Some(&h), None);
        let app = app.clone();
        tasks.spawn(async move { call(&app, "/me", Some(&bearer(&forged))).await });
    }
    while let Some(a) = tasks.join_next().await {
        a.unwrap()
            .assert_invalid_token("which the issuer's JWKS does not have");
    }
    let jwks = proxy.count("/.well-known/jwks.json");
    assert!(
        jwks <= 3,
        "{jwks} JWKS fetches for 1000 forged kids (1 of them at start)"
    );
    assert_eq!(guard.stats().jwks_fetches as usize, jwks);
    // Forged requests wait at most about one refetch interval (2 s).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The genuine token is unaffected.
    assert_eq!(call(&app, "/me", Some(&bearer(&t))).await.status, 200);
}

#[tokio::test]
async fn the_last_good_jwks_is_kept_while_the_broker_is_down() {
    let b = broker().await;
    let guard = Guard::builder(&b.issuer)
        .jwks_refetch_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let app = api(guard.clone());
    let first = token(&b, "invoices:read", None).await;
    let unseen = token(&b, "invoices:read", None).await;
    let (header, _) = decode(&first);
    assert_eq!(
        call(&app, "/invoices", Some(&bearer(&first))).await.status,
        200
    );

    b.stop().await;

    // A token never seen before still verifies against the kept keys.
    assert_eq!(
        call(&app, "/invoices", Some(&bearer(&unseen))).await.status,
        200
    );
    // An unknown kid cannot be looked up: 503, not a wrong 401, and nothing lost.
    let mut h = header;
    h["kid"] = json!("new-or-forged");
    let forged = forge(&first, Some(&h), None);
    let a = call(&app, "/me", Some(&bearer(&forged))).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.body["error"], "temporarily_unavailable");
    assert!(a.description().contains("cannot be fetched now"), "{a:?}");
    assert!(matches!(
        guard.validate(&forged).await,
        Err(GuardError::Unavailable(_))
    ));
    assert!(guard.stats().jwks_fetches >= 2);
    assert_eq!(
        call(&app, "/invoices", Some(&bearer(&first))).await.status,
        200
    );
    let fresh = Guard::builder("http://127.0.0.1:1").build().await;
    assert!(fresh.is_err());
    // And the kept keys still refuse what they should.
    assert!(matches!(
        guard
            .validate(&forge(&unseen, None, Some(&json!({"iss": "x"}))))
            .await,
        Err(GuardError::Token(Fault::Signature))
    ));
}
