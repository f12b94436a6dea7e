//! Key-bound tokens at the guard: DPoP (RFC 9449 §7) with proofs made by an
//! implementation independent of ours (`jsonwebtoken`, through the testkit), and the
//! certificate binding (RFC 8705 §3) from a trusted proxy's `Client-Cert` header.

use crate::common::{Answer, api, broker, call_with, decode};
use auth_broker_guard::Guard;
use auth_broker_testkit::TestBroker;
use auth_broker_testkit::keybound::ProofKey;
use axum::Router;

const API: &str = "https://api.example";

/// A DPoP token from `b` bound to `key`.
async fn dpop_token(b: &TestBroker, key: &ProofKey) -> String {
    let (id, secret) = b.create_client("dpop-caller", "invoices:read", None).await;
    key.token_from(b, &id, &secret).await
}

fn refused(a: &Answer, error: &str, needle: &str) {
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(a.body["error"], error, "{a:?}");
    assert!(a.description().contains(needle), "{needle:?} not in {a:?}");
    let c = a.challenge.as_deref().unwrap();
    if error == "invalid_dpop_proof" {
        assert!(
            c.starts_with(r#"DPoP algs="ES256 EdDSA RS256 PS256", error="invalid_dpop_proof""#),
            "{c}"
        );
    } else {
        assert!(c.starts_with("Bearer realm="), "{c}");
    }
}

#[tokio::test]
async fn a_dpop_token_passes_with_a_fresh_proof_of_the_request() {
    let b = broker().await;
    let key = ProofKey::new();
    let token = dpop_token(&b, &key).await;
    assert_eq!(decode(&token).1["cnf"]["jkt"], key.jkt());
    let guard = Guard::builder(&b.issuer)
        .public_url(API)
        .build()
        .await
        .unwrap();
    let app = api(guard.clone());
    let auth = format!("DPoP {token}");
    let url = format!("{API}/invoices");

    let proof = key.proof("GET", &url, Some(&token));
    let ok = call_with(
        &app,
        "/invoices?page=2",
        &[("authorization", auth.clone()), ("dpop", proof.clone())],
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body["scope"], "invoices:read");

    // The same proof again: used once (RFC 9449 §11.1).
    let again = call_with(
        &app,
        "/invoices",
        &[("authorization", auth.clone()), ("dpop", proof)],
    )
    .await;
    refused(&again, "invalid_dpop_proof", "used before");

    // As a bearer token: refused, saying how to send it.
    let bearer = call_with(
        &app,
        "/invoices",
        &[("authorization", format!("Bearer {token}"))],
    )
    .await;
    refused(&bearer, "invalid_token", "Authorization: DPoP");
    assert!(guard.validate(&token).await.is_err());

    // No proof, two proofs.
    let none = call_with(&app, "/invoices", &[("authorization", auth.clone())]).await;
    refused(&none, "invalid_dpop_proof", "no DPoP header");
    let two = call_with(
        &app,
        "/invoices",
        &[
            ("authorization", auth.clone()),
            ("dpop", key.proof("GET", &url, Some(&token))),
            ("dpop", key.proof("GET", &url, Some(&token))),
        ],
    )
    .await;
    refused(&two, "invalid_dpop_proof", "more than one DPoP header");

    // A proof of another request, without ath, by another key.
    let cases = [
        (key.proof("POST", &url, Some(&token)), "htm"),
        (
            key.proof("GET", &format!("{API}/other"), Some(&token)),
            "https://api.example/invoices",
        ),
        (key.proof("GET", &url, None), "ath"),
        (
            ProofKey::new().proof("GET", &url, Some(&token)),
            "another key",
        ),
    ];
    for (proof, needle) in cases {
        let a = call_with(
            &app,
            "/invoices",
            &[("authorization", auth.clone()), ("dpop", proof)],
        )
        .await;
        refused(&a, "invalid_dpop_proof", needle);
    }

    // Scopes are still the route's: a DPoP token without `admin` gets 403.
    let forbidden = call_with(
        &app,
        "/admin",
        &[
            ("authorization", auth.clone()),
            (
                "dpop",
                key.proof("GET", &format!("{API}/admin"), Some(&token)),
            ),
        ],
    )
    .await;
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
}

#[tokio::test]
async fn the_proof_url_is_the_public_one_or_https_and_the_host() {
    let b = broker().await;
    let key = ProofKey::new();
    let token = dpop_token(&b, &key).await;
    let auth = format!("DPoP {token}");

    // No public URL: https, the Host header, and the path the client sent, before the
    // router's nesting.
    let guard = Guard::builder(&b.issuer).build().await.unwrap();
    let app = Router::new().nest("/v1", api(guard));
    let good = key.proof("GET", "https://api.test:8443/v1/me", Some(&token));
    let a = call_with(
        &app,
        "/v1/me",
        &[
            ("host", "api.test:8443".into()),
            ("authorization", auth.clone()),
            ("dpop", good),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let plain = key.proof("GET", "http://api.test:8443/v1/me", Some(&token));
    let a = call_with(
        &app,
        "/v1/me",
        &[
            ("host", "api.test:8443".into()),
            ("authorization", auth.clone()),
            ("dpop", plain),
        ],
    )
    .await;
    refused(&a, "invalid_dpop_proof", "https://api.test:8443/v1/me");

    // An unbound token sent with the DPoP scheme.
    let bearer_token = crate::common::token(&b, "", None).await;
    let guard = Guard::builder(&b.issuer)
        .public_url(API)
        .build()
        .await
        .unwrap();
    let a = call_with(
        &api(guard),
        "/me",
        &[
            ("authorization", format!("DPoP {bearer_token}")),
            (
                "dpop",
                key.proof("GET", &format!("{API}/me"), Some(&bearer_token)),
            ),
        ],
    )
    .await;
    refused(&a, "invalid_token", "not bound to a key");
}
