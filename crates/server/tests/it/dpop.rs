//! DPoP on the broker (RFC 9449, INTERFACE §8) over HTTP on both stores: proofs made
//! with `jsonwebtoken` (not the broker's code) get `token_type: DPoP` tokens bound by
//! `cnf.jkt`; token-info takes them as `Authorization: DPoP` with a proof, and refuses
//! them as Bearer, with another key's proof, or with a replayed proof; a client that
//! requires DPoP gets no bearer token; the guard refuses bound tokens.

use crate::on_both_stores;
use auth_broker_testkit::keybound::ProofKey;
use auth_broker_testkit::{Backend, TestBroker};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

on_both_stores!(
    a_proof_gets_a_token_bound_to_its_key,
    a_client_that_requires_dpop_gets_no_bearer_token,
    bad_proofs_at_the_token_endpoint,
    server_nonces_when_enabled,
);

async fn token_request(
    b: &TestBroker,
    id: &str,
    secret: &auth_broker_proto::ClientSecret,
    proofs: &[&str],
) -> (u16, Value) {
    let mut r = b
        .http
        .post(b.token_url())
        .basic_auth(id, Some(secret.expose_secret()))
        .form(&[("grant_type", "client_credentials")]);
    for p in proofs {
        r = r.header("DPoP", *p);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// token-info with `authorization` and the proofs: status, description, challenge.
async fn token_info(b: &TestBroker, authorization: &str, proofs: &[&str]) -> (u16, String, String) {
    let mut r = b
        .http
        .get(b.url("/auth-broker/token-info"))
        .header("authorization", authorization);
    for p in proofs {
        r = r.header("DPoP", *p);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let v: Value = r.json().await.unwrap();
    let d = v["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, d, challenge)
}

async fn a_proof_gets_a_token_bound_to_its_key(backend: Backend) {
    let b = TestBroker::start(backend).await;
    let (id, secret) = b.create_client("bound", "read", None).await;
    let key = ProofKey::new();
    let (s, v) = token_request(
        &b,
        &id,
        &secret,
        &[&key.proof("POST", &b.token_url(), None)],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    let token = v["access_token"].as_str().unwrap().to_owned();
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["cnf"]["jkt"], key.jkt().as_str(), "{payload}");

    let info = b.url("/auth-broker/token-info");
    let dpop = format!("DPoP {token}");
    // With a proof of this request by the token's key: accepted.
    let good = key.proof("GET", &info, Some(&token));
    let (s, d, _) = token_info(&b, &dpop, &[&good]).await;
    assert_eq!(s, 200, "{d}");
    // The same proof again: a replay.
    let (s, d, challenge) = token_info(&b, &dpop, &[&good]).await;
    assert_eq!(s, 401);
    assert!(d.contains("was used before"), "{d}");
    assert!(
        challenge.starts_with(r#"DPoP algs="ES256 EdDSA RS256 PS256", error="invalid_dpop_proof""#),
        "{challenge}"
    );
    // As a bearer token: refused, saying why.
    let (s, d, challenge) = token_info(&b, &format!("Bearer {token}"), &[]).await;
    assert_eq!(s, 401);
    assert!(d.contains("bound to a key (DPoP, cnf.jkt)"), "{d}");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // Every other fault, each in words.
    let other = ProofKey::new();
    let rows = [
        (
            other.proof("GET", &info, Some(&token)),
            "bound to another key",
        ),
        (key.proof("GET", &info, None), "no ath"),
        (
            key.proof("GET", &info, Some("another token")),
            "not the SHA-256 of this access token",
        ),
        (
            key.proof("POST", &info, Some(&token)),
            "for method 'POST' (htm), but the request is a GET",
        ),
        (
            key.proof("GET", &b.token_url(), Some(&token)),
            "(htu), but the request went to",
        ),
    ];
    for (proof, needle) in rows {
        let (s, d, _) = token_info(&b, &dpop, &[&proof]).await;
        assert_eq!(s, 401, "{needle}");
        assert!(d.contains(needle), "{needle}: {d}");
    }
    let (s, d, _) = token_info(&b, &dpop, &[]).await;
    assert_eq!(s, 401);
    assert!(d.contains("no DPoP header"), "{d}");
    // An unbound token with the DPoP scheme: refused, use Bearer.
    let plain = b.token(&id, &secret).await;
    let (s, d, _) = token_info(
        &b,
        &format!("DPoP {plain}"),
        &[&key.proof("GET", &info, Some(&plain))],
    )
    .await;
    assert_eq!(s, 401);
    assert!(d.contains("not bound to a key"), "{d}");
    // Introspection tells a resource server the binding (RFC 9449 §6.2).
    let r = b
        .http
        .post(b.url("/auth-broker/introspect"))
        .basic_auth(&id, Some(secret.expose_secret()))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["cnf"]["jkt"], key.jkt().as_str(), "{v}");
    // The guard (here the admin API's) does not take proofs yet: it refuses.
    let (admin, admin_secret) = b.create_client("ops", "admin:read", None).await;
    let (_, v) = token_request(
        &b,
        &admin,
        &admin_secret,
        &[&key.proof("POST", &b.token_url(), None)],
    )
    .await;
    let bound_admin = v["access_token"].as_str().unwrap();
    let r = b
        .http
        .get(b.url("/admin/v1/clients"))
        .bearer_auth(bound_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("takes Bearer tokens only"),
        "{v}"
    );
    // Metadata says which proofs are taken (RFC 9449 §5.1).
    let meta: Value = b.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
}

async fn a_client_that_requires_dpop_gets_no_bearer_token(backend: Backend) {
    let b = TestBroker::start(backend).await;
    let (id, secret) = b.create_client("strict", "", None).await;
    b.admin()
        .update_client(
            &auth_broker_server::admin::Actor::cli(),
            &id,
            &json!({"dpop_bound_access_tokens": true}),
            None,
        )
        .await
        .unwrap();
    let (s, v) = token_request(&b, &id, &secret, &[]).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "invalid_dpop_proof");
    // With a proof: a DPoP token (token_from checks its type).
    ProofKey::new().token_from(&b, &id, &secret).await;
}

async fn bad_proofs_at_the_token_endpoint(backend: Backend) {
    let b = TestBroker::start(backend).await;
    let (id, secret) = b.create_client("c", "", None).await;
    let key = ProofKey::new();
    let url = b.token_url();
    let used = key.proof("POST", &url, None);
    assert_eq!(token_request(&b, &id, &secret, &[&used]).await.0, 200);
    let rows: Vec<(Vec<String>, &str)> = vec![
        (vec![used.clone()], "was used before"),
        (
            vec![key.proof("POST", "https://elsewhere.example/token", None)],
            "(htu), but the request went to",
        ),
        (vec![key.proof("GET", &url, None)], "for method 'GET' (htm)"),
        (
            vec![key.proof("POST", &url, None), key.proof("POST", &url, None)],
            "more than one DPoP header",
        ),
        (vec!["not-a-jwt".into()], "not a compact JWT"),
    ];
    for (proofs, needle) in rows {
        let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (s, v) = token_request(&b, &id, &secret, &refs).await;
        assert_eq!(s, 400, "{needle}: {v}");
        assert_eq!(v["error"], "invalid_dpop_proof", "{v}");
        assert!(
            v["error_description"].as_str().unwrap().contains(needle),
            "{needle}: {v}"
        );
    }
}

/// RFC 9449 §8: with `serve --dpop-nonce` a proof must carry a nonce of the broker's;
/// without one, or with a forged one, `400 use_dpop_nonce` hands out a fresh nonce, and
/// a proof with it gets the token (and the next nonce).
async fn server_nonces_when_enabled(backend: Backend) {
    let b = TestBroker::start_with(
        backend,
        auth_broker_testkit::Options {
            config: auth_broker_server::Config {
                dpop_nonce: true,
                ..auth_broker_server::Config::default()
            },
            ..auth_broker_testkit::Options::default()
        },
    )
    .await;
    let (id, secret) = b.create_client("c", "", None).await;
    let key = ProofKey::new();
    let url = b.token_url();
    let send = |proof: Option<String>| {
        let mut r = b
            .http
            .post(b.token_url())
            .basic_auth(&id, Some(secret.expose_secret()))
            .form(&[("grant_type", "client_credentials")]);
        if let Some(p) = proof {
            r = r.header("DPoP", p);
        }
        let r = r.send();
        async move {
            let r = r.await.unwrap();
            let nonce = r
                .headers()
                .get("dpop-nonce")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, nonce, v)
        }
    };
    // Without a nonce, then with one the broker never gave out.
    let mut nonce = None;
    for (proof, needle) in [
        (key.proof("POST", &url, None), "DPoP-Nonce"),
        (
            key.proof_with_nonce("POST", &url, None, Some("forged")),
            "not one this broker gave out",
        ),
    ] {
        let (s, given, v) = send(Some(proof)).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("use_dpop_nonce")),
            "{v}"
        );
        let d = v["error_description"].as_str().unwrap();
        assert!(d.contains(needle), "{needle}: {v}");
        nonce = Some(given.expect("a DPoP-Nonce header"));
    }
    let nonce = nonce.unwrap();

    let (s, next, v) = send(Some(key.proof_with_nonce("POST", &url, None, Some(&nonce)))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    assert!(
        next.is_some(),
        "a successful DPoP answer carries the next nonce"
    );

    // Bearer requests are untouched.
    let (s, nonce, v) = send(None).await;
    assert_eq!(s, 200, "{v}");
    assert!(nonce.is_none());
}
