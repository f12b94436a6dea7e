//! Key-bound clients and tokens (issue 17): `private_key_jwt` assertions, DPoP proofs
//! and nonces, mutual TLS. What the client sends is checked by the testkit's fake
//! server with the `jsonwebtoken` crate, independently of the client's own signing.

use super::*;
use auth_broker_testkit::keybound::{ClientKey, KeyBoundServer, Options, verify_proof};
use auth_broker_testkit::tls::TestCa;
use jsonwebtoken::Algorithm;
use std::collections::HashSet;

fn key_for(ck: &ClientKey) -> SigningKey {
    let key = SigningKey::from_pem(ck.pem.as_bytes()).unwrap();
    if ck.alg == Algorithm::PS256 {
        key.with_alg(JwsAlg::Ps256).unwrap()
    } else {
        key
    }
}

/// Authenticates as `id` at `fake` with `key` (private_key_jwt).
fn key_config(fake: &KeyBoundServer, id: &str, key: SigningKey) -> TokenConfig {
    TokenConfig::with_credential(
        fake.token_url(),
        id,
        Credential::PrivateKey(PrivateKeyJwt::new(key)),
    )
}

fn signed(m: &TokenManager) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(default_http_client().unwrap())
        .with(BearerMiddleware::new(m.clone()))
        .build()
}

fn jtis(claims: &[serde_json::Value]) -> HashSet<String> {
    claims
        .iter()
        .map(|c| c["jti"].as_str().unwrap().to_owned())
        .collect()
}

/// RFC 7523 §2.2, §3 for every algorithm: the assertion verifies with the public key
/// under jsonwebtoken; `iss` = `sub` = the client id, `aud` the token URL, `exp` 60 s
/// after `iat`, `kid` in the header, a new `jti` per token request; the form has
/// `client_assertion_type` and no `Authorization` header is sent.
#[tokio::test]
async fn private_key_jwt_assertions_verify_independently_for_every_alg() {
    for alg in [
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::PS256,
    ] {
        let ck = ClientKey::generate(alg);
        let key = key_for(&ck).with_kid("key-1");
        let fake = KeyBoundServer::start(Options {
            client: Some(("app/1".into(), ck)),
            ..Options::default()
        })
        .await;
        let cfg = key_config(&fake, "app/1", key);
        let m = manager_with(cfg, &ManualClock::new());
        for _ in 0..3 {
            let t = m.token().await.unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            m.invalidate(&t);
        }
        let seen = fake.seen();
        assert_eq!(seen.assertions.len(), 3, "{alg:?}: {:?}", seen.refusals);
        assert_eq!(
            jtis(&seen.assertions).len(),
            3,
            "{alg:?}: a jti per request"
        );
        for (c, h) in seen.assertions.iter().zip(&seen.assertion_headers) {
            assert_eq!(c["iss"], "app/1");
            assert_eq!(c["sub"], "app/1");
            assert_eq!(c["aud"], fake.token_url());
            assert_eq!(
                c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
                60,
                "{c}"
            );
            assert_eq!(h["kid"], "key-1");
            assert_eq!(h["alg"], format!("{alg:?}"));
        }
        let body = &seen.token_bodies[0];
        assert!(
            body.contains(
                "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            ),
            "{body}"
        );
        assert!(body.contains("client_id=app%2F1"), "{body}");
        assert!(!body.contains("client_secret"), "{body}");
    }
}

/// The wrong key: the server's `invalid_client` comes back at once, not retried.
#[tokio::test]
async fn an_assertion_signed_by_another_key_is_refused() {
    let fake = KeyBoundServer::start(Options {
        client: Some(("app".into(), ClientKey::generate(Algorithm::ES256))),
        ..Options::default()
    })
    .await;
    let other = key_for(&ClientKey::generate(Algorithm::ES256));
    let cfg = key_config(&fake, "app", other);
    let e = manager_with(cfg, &ManualClock::new())
        .token()
        .await
        .unwrap_err();
    assert_eq!(e.server_error().unwrap().error.as_str(), "invalid_client");
    assert_eq!(fake.seen().token_bodies.len(), 1);
}

/// RFC 9449 §5 and §7.1 through the reqwest middleware: the token request carries a
/// proof (POST, the token URL); the token comes back as DPoP and is bound to the key;
/// every API request carries `Authorization: DPoP` and a proof of its own (method, URL
/// without the query, `ath` of the token, a new `jti`), all verified by the fake.
#[tokio::test]
async fn dpop_proofs_go_with_the_token_request_and_every_api_request() {
    let fake = KeyBoundServer::start(Options::default()).await;
    let key = DpopKey::generate().unwrap();
    let cfg = TokenConfig::new(fake.token_url(), "app", ClientSecret::new("s")).dpop(key.clone());
    let m = manager_with(cfg, &ManualClock::new());
    let http = signed(&m);
    for (method, path) in [
        (reqwest::Method::GET, "invoices?page=2#top"),
        (reqwest::Method::POST, "invoices"),
        (reqwest::Method::DELETE, "invoices/7"),
    ] {
        let r = http
            .request(method.clone(), fake.api(path))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{method} {path}: {:?}",
            fake.seen().refusals
        );
    }
    let t = m.token().await.unwrap();
    assert_eq!(t.scheme(), TokenScheme::Dpop);
    assert_eq!(t.response().token_type, "DPoP");
    let seen = fake.seen();
    assert_eq!(seen.token_proofs.len(), 1);
    assert_eq!(seen.token_proofs[0]["htm"], "POST");
    assert_eq!(seen.token_proofs[0]["htu"], fake.token_url());
    assert_eq!(seen.api_proofs.len(), 3);
    assert_eq!(seen.api_proofs[0]["htm"], "GET");
    assert_eq!(seen.api_proofs[0]["htu"], fake.api("invoices"));
    assert_eq!(seen.api_proofs[2]["htm"], "DELETE");
    let all: Vec<_> = seen
        .token_proofs
        .iter()
        .chain(&seen.api_proofs)
        .cloned()
        .collect();
    assert_eq!(jtis(&all).len(), 4, "a new jti per request");
    assert!(seen.api_authorization.iter().all(|a| a == "DPoP tok-1"));
}

/// RFC 9449 §8 and §9: a token endpoint and an API that want a nonce. The token request
/// is retried once with the nonce (and a fresh proof); the API's `401 use_dpop_nonce`
/// is replayed once with the same token and a proof holding the nonce; the next API
/// request carries the remembered nonce at once.
#[tokio::test]
async fn nonces_are_fetched_once_and_remembered_per_origin() {
    let fake = KeyBoundServer::start(Options {
        token_nonce: Some("as-nonce".into()),
        api_nonce: Some("rs-nonce".into()),
        ..Options::default()
    })
    .await;
    let key = DpopKey::generate().unwrap();
    let cfg = TokenConfig::new(fake.token_url(), "app", ClientSecret::new("s")).dpop(key.clone());
    let m = manager_with(cfg, &ManualClock::new());
    let http = signed(&m);
    let r = http.get(fake.api("a")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", fake.seen().refusals);
    let seen = fake.seen();
    assert_eq!(seen.token_bodies.len(), 2, "one retry for the nonce");
    assert_eq!(seen.token_proofs.len(), 1);
    assert_eq!(seen.token_proofs[0]["nonce"], "as-nonce");
    assert_eq!(seen.api_authorization.len(), 2, "one replay for the nonce");
    assert_eq!(seen.api_proofs.len(), 1);
    assert_eq!(seen.api_proofs[0]["nonce"], "rs-nonce");
    assert_eq!(fake.issued(), 1, "the token was kept");
    // Remembered: the next request needs no replay.
    let r = http.post(fake.api("b")).body("y").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(fake.seen().api_authorization.len(), 3);
    assert_eq!(
        key.nonce(&reqwest::Url::parse(&fake.api("z")).unwrap())
            .as_deref(),
        Some("rs-nonce")
    );
}

/// A `401` for the token itself: the token is dropped, a new one fetched (with a new
/// proof), and the replay carries a fresh proof: a new `jti` and the new token's `ath`.
/// The fake refuses a `jti` it has seen, so a reused proof would fail.
#[tokio::test]
async fn a_replay_after_401_carries_a_fresh_proof_for_the_fresh_token() {
    let fake = KeyBoundServer::start(Options::default()).await;
    let cfg = TokenConfig::new(fake.token_url(), "app", ClientSecret::new("s"))
        .dpop(DpopKey::generate().unwrap());
    let m = manager_with(cfg, &ManualClock::new());
    let http = signed(&m);
    assert_eq!(http.get(fake.api("a")).send().await.unwrap().status(), 200);
    fake.refuse("tok-1");
    let r = http.put(fake.api("a")).body("again").send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", fake.seen().refusals);
    assert_eq!(r.text().await.unwrap(), "ok tok-2 again");
    let seen = fake.seen();
    assert_eq!(
        seen.api_authorization,
        ["DPoP tok-1", "DPoP tok-1", "DPoP tok-2"]
    );
    assert_eq!(seen.token_proofs.len(), 2);
    assert_eq!(seen.api_proofs.len(), 2, "the refused one is not recorded");
    assert_eq!(
        seen.api_proofs[1]["ath"],
        auth_broker_testkit::keybound::sha256_b64(b"tok-2")
    );
}

/// The tower layer: each send of the request gets its own proof, for the request's
/// absolute URI, checked here with the testkit's verifier.
#[tokio::test]
async fn the_tower_layer_signs_each_send_with_a_fresh_proof() {
    use tower::{Layer, ServiceExt};
    let fake = KeyBoundServer::start(Options::default()).await;
    let cfg = TokenConfig::new(fake.token_url(), "app", ClientSecret::new("s"))
        .dpop(DpopKey::generate().unwrap());
    let m = manager_with(cfg, &ManualClock::new());
    let proofs = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let p2 = proofs.clone();
    let inner = tower::service_fn(move |req: http::Request<String>| {
        let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
        let token = auth.strip_prefix("DPoP ").unwrap().to_owned();
        let proof = req.headers()["dpop"].to_str().unwrap().to_owned();
        let p = verify_proof(&proof, "PATCH", &req.uri().to_string(), Some(&token))
            .unwrap_or_else(|e| panic!("{e}"));
        p2.lock().unwrap().push(p.claims);
        let status = if token == "tok-1" { 401 } else { 200 };
        async move {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder().status(status).body(()).unwrap(),
            )
        }
    });
    let svc = BearerLayer::new(m).layer(inner);
    let req = http::Request::patch(fake.api("x?y=1"))
        .body("b".to_owned())
        .unwrap();
    let r = svc.oneshot(req).await.unwrap();
    assert_eq!(r.status(), 200);
    let proofs = proofs.lock().unwrap();
    assert_eq!(proofs.len(), 2);
    assert_eq!(jtis(&proofs).len(), 2);
    assert_eq!(proofs[0]["htu"], fake.api("x"));
    assert_ne!(proofs[0]["ath"], proofs[1]["ath"]);
}

/// A server that answers `token_type: bearer` to a proof: the token is used as Bearer
/// (RFC 6749 §5.1: the type decides), without a proof on API requests.
#[tokio::test]
async fn a_bearer_answer_to_a_proof_is_used_as_bearer() {
    let fake = KeyBoundServer::start(Options {
        dpop_token_type: "bearer",
        ..Options::default()
    })
    .await;
    let cfg = TokenConfig::new(fake.token_url(), "app", ClientSecret::new("s"))
        .dpop(DpopKey::generate().unwrap());
    let m = manager_with(cfg, &ManualClock::new());
    let r = signed(&m).get(fake.api("a")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", fake.seen().refusals);
    assert_eq!(m.token().await.unwrap().scheme(), TokenScheme::Bearer);
    assert_eq!(fake.seen().api_authorization, ["Bearer tok-1"]);
    assert!(fake.seen().api_proofs.is_empty());
}

/// Tokens are cached per DPoP key: a token bound to one key is useless with another.
#[tokio::test]
async fn tokens_are_cached_per_dpop_key() {
    let fake = KeyBoundServer::start(Options::default()).await;
    let set = TokenManagers::new();
    let base = TokenConfig::new(fake.token_url(), "app", ClientSecret::new("s"));
    let k1 = DpopKey::generate().unwrap();
    let a = set.get(base.clone().dpop(k1.clone())).unwrap();
    let b = set.get(base.clone().dpop(k1)).unwrap();
    let c = set
        .get(base.clone().dpop(DpopKey::generate().unwrap()))
        .unwrap();
    let d = set.get(base).unwrap();
    a.token().await.unwrap();
    b.token().await.unwrap();
    assert_eq!(fake.issued(), 1);
    c.token().await.unwrap();
    d.token().await.unwrap();
    assert_eq!(fake.issued(), 3);
    assert_eq!(d.token().await.unwrap().scheme(), TokenScheme::Bearer);
}

/// A fresh assertion for each attempt: the nonce retry carries a new one (the fake
/// refuses a `jti` it has seen).
#[tokio::test]
async fn the_nonce_retry_carries_a_fresh_assertion_too() {
    let ck = ClientKey::generate(Algorithm::ES256);
    let key = key_for(&ck);
    let fake = KeyBoundServer::start(Options {
        client: Some(("app".into(), ck)),
        token_nonce: Some("n".into()),
        ..Options::default()
    })
    .await;
    let cfg = key_config(&fake, "app", key).dpop(DpopKey::generate().unwrap());
    let t = manager_with(cfg, &ManualClock::new())
        .token()
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fake.seen().refusals));
    assert_eq!(t.scheme(), TokenScheme::Dpop);
    let seen = fake.seen();
    assert_eq!(seen.assertions.len(), 2);
    assert_eq!(jtis(&seen.assertions).len(), 2);
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// RFC 8705: a server that requires client certificates gets the client's from the
/// token request (`tls_client_auth`: `client_id` in the body, no secret) and from the
/// API requests; without one the failure says the server wants one.
#[tokio::test]
async fn mutual_tls_presents_the_certificate_to_the_token_endpoint_and_the_api() {
    let ca = Arc::new(TestCa::new("mtls test CA"));
    let fake = KeyBoundServer::start(Options {
        mtls: Some(ca.clone()),
        ..Options::default()
    })
    .await;
    let files = fake.tls.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "client.pem", &files.client.cert_pem);
    let key = write(dir.path(), "client-key.pem", &files.client.key_pem);
    let identity = ClientIdentity::from_pem_files(&cert, &key).unwrap();
    let trusting = || {
        reqwest::Client::builder()
            .tls_certs_merge([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
    };
    let cfg =
        TokenConfig::with_credential(fake.token_url(), "app", Credential::TlsClientCertificate)
            .tls_identity(identity.clone());
    let m = TokenManager::with_parts(
        cfg.clone(),
        token_http_client(identity.apply(trusting())).unwrap(),
        Arc::new(ManualClock::new()),
    );
    let http = reqwest_middleware::ClientBuilder::new(
        install_crypto_provider_then(identity.apply(trusting())).unwrap(),
    )
    .with(BearerMiddleware::new(m.clone()))
    .build();
    let r = http.get(fake.api("a")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", fake.seen().refusals);
    let seen = fake.seen();
    let leaf = files.client.der.to_vec();
    assert_eq!(seen.token_peer_certs, [Some(leaf.clone())]);
    assert_eq!(seen.api_peer_certs, [Some(leaf)]);
    assert_eq!(
        seen.token_bodies[0],
        "grant_type=client_credentials&client_id=app"
    );

    // No certificate: the server wants one, and the error says so.
    let bare = TokenManager::with_parts(
        cfg,
        token_http_client(trusting()).unwrap(),
        Arc::new(ManualClock::new()),
    );
    let e = bare.token().await.unwrap_err();
    assert_eq!(
        client_certificate_problem(&e),
        Some(ClientCertificateProblem::Required),
        "{e}"
    );
}

/// A key that is not the certificate's, and files that hold something else: errors
/// that name the files.
#[test]
fn client_certificate_files_are_checked() {
    let ca = TestCa::new("files CA");
    let (a, b) = (ca.leaf("a"), ca.leaf("b"));
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "a.pem", &a.cert_pem);
    let other_key = write(dir.path(), "b-key.pem", &b.key_pem);
    let e = ClientIdentity::from_pem_files(&cert, &other_key).unwrap_err();
    let text = auth_broker_client::error::causes(&e);
    assert!(
        text.contains("b-key.pem") && text.contains("a.pem"),
        "{text}"
    );
    assert!(text.contains("KeyMismatch"), "{text}");
    let e = ClientIdentity::from_pem_files(&other_key, &other_key).unwrap_err();
    assert!(e.to_string().contains("holds no certificate"), "{e}");
    let e = ClientIdentity::from_pem_files(&cert, &cert).unwrap_err();
    assert!(e.to_string().contains("holds no private key"), "{e}");
}
