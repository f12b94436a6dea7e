//! `private_key_jwt` client authentication (RFC 7523 §2.2, INTERFACE §8) over HTTP on
//! both stores: assertions made with `jsonwebtoken` (not the broker's own code), every
//! algorithm, each fault its own `invalid_client` description, single use of `jti`,
//! the failure limit, and keys at a `jwks_uri` fetched, cached and refetched.

use crate::on_both_stores;
use auth_broker_proto::admin::{AuthMethod, ClientSettings};
use auth_broker_server::Config;
use auth_broker_server::admin::Actor;
use auth_broker_testkit::keybound::ClientKey;
use auth_broker_testkit::{Backend, TestBroker};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

on_both_stores!(
    every_algorithm_gets_a_token_once_per_assertion,
    each_fault_is_its_own_invalid_client,
    refusals_count_toward_the_failure_limit,
    one_assertion_sent_at_once_is_used_once,
    keys_at_a_jwks_uri_are_cached_and_refetched_for_a_new_kid,
    the_admin_api_registers_key_clients,
);

const TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A client key and its public JWK (with `kid`), as a client would publish it.
fn key_and_jwk(alg: Algorithm, kid: &str) -> (EncodingKey, Value) {
    let key = ClientKey::generate(alg);
    let pkcs8 = pem_der(&key.pem);
    let encoding = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_der(&pkcs8),
        Algorithm::EdDSA => EncodingKey::from_ed_der(&pkcs8),
        _ => EncodingKey::from_rsa_der(pkcs1_of(&pkcs8)),
    };
    let mut jwk = match alg {
        // jsonwebtoken makes no Ed25519 JWK: RFC 8037 §2 by hand.
        Algorithm::EdDSA => {
            use aws_lc_rs::signature::KeyPair;
            use base64::Engine;
            let pair =
                aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).unwrap();
            let x =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            json!({"kty": "OKP", "crv": "Ed25519", "x": x})
        }
        _ => serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap(),
    };
    jwk["kid"] = json!(kid);
    (encoding, jwk)
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo (RFC 5208 §5), which
/// jsonwebtoken's RSA signer wants: SEQUENCE { INTEGER, AlgorithmIdentifier,
/// OCTET STRING { RSAPrivateKey } }.
fn pkcs1_of(der: &[u8]) -> &[u8] {
    /// (tag, content) of the DER element at the start of `d`, and what follows it.
    fn element(d: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, head) = match d[1] {
            n if n < 0x80 => (usize::from(n), 2),
            n => {
                let k = usize::from(n & 0x7f);
                (
                    d[2..2 + k].iter().fold(0, |a, b| a << 8 | usize::from(*b)),
                    2 + k,
                )
            }
        };
        (d[0], &d[head..head + len], &d[head + len..])
    }
    let (_, info, _) = element(der);
    let (_, _, rest) = element(info); // version
    let (_, _, rest) = element(rest); // algorithm
    let (tag, key, _) = element(rest);
    assert_eq!(tag, 0x04, "an OCTET STRING");
    key
}

fn assertion(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn claims(client: &str, aud: &str) -> Value {
    claims_at(client, aud, now())
}

fn claims_at(client: &str, aud: &str, now: i64) -> Value {
    json!({
        "iss": client, "sub": client, "aud": aud,
        "iat": now, "exp": now + 60,
        "jti": format!("{}", rand_id()),
    })
}

fn rand_id() -> u128 {
    static N: AtomicUsize = AtomicUsize::new(0);
    (u128::from(now() as u64) << 64) | N.fetch_add(1, Ordering::Relaxed) as u128
}

async fn register(b: &TestBroker, name: &str, keys: Keys) -> String {
    let (jwks, jwks_uri) = match keys {
        Keys::Inline(jwks) => (Some(json!({ "keys": jwks })), None),
        Keys::Uri(uri) => (None, Some(uri)),
    };
    let settings = ClientSettings {
        client_name: name.into(),
        scope: "read".into(),
        enabled: true,
        token_endpoint_auth_method: AuthMethod::PrivateKeyJwt,
        jwks,
        jwks_uri,
        ..ClientSettings::default()
    };
    let (client, _) = b
        .admin()
        .create_client(&Actor::cli(), settings)
        .await
        .unwrap();
    client.client_id
}

enum Keys {
    Inline(Vec<Value>),
    Uri(String),
}

async fn post(b: &TestBroker, form: &[(&str, &str)]) -> (u16, Value) {
    let r = b.http.post(b.token_url()).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn with_assertion(b: &TestBroker, token: &str) -> (u16, Value) {
    post(
        b,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", TYPE),
            ("client_assertion", token),
        ],
    )
    .await
}

async fn every_algorithm_gets_a_token_once_per_assertion(backend: Backend) {
    let b = TestBroker::start(backend).await;
    for alg in [
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::PS256,
    ] {
        let (key, jwk) = key_and_jwk(alg, "k1");
        let id = register(&b, &format!("{alg:?}"), Keys::Inline(vec![jwk])).await;
        // aud: the token endpoint URL, or the issuer (RFC 7523 §3 item 3); kid or none.
        for (aud, kid) in [(b.token_url(), Some("k1")), (b.issuer.clone(), None)] {
            let token = assertion(&key, alg, kid, &claims(&id, &aud));
            let (status, body) = with_assertion(&b, &token).await;
            assert_eq!(status, 200, "{alg:?} aud {aud}: {body}");
            assert_eq!(body["token_type"], "bearer");
            assert_eq!(body["scope"], "read");
            let info = b
                .token_info(
                    Some(&format!(
                        "Bearer {}",
                        body["access_token"].as_str().unwrap()
                    )),
                    "",
                )
                .await;
            assert_eq!(info.status, 200, "{alg:?}");
            assert_eq!(info.body["claims"]["client_id"], id.as_str());
            // The same assertion again: refused, its jti was used (RFC 7523 §3 item 7).
            let (status, body) = with_assertion(&b, &token).await;
            assert_eq!(status, 401, "{alg:?} replay: {body}");
            assert_eq!(body["error"], "invalid_client");
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("was used before"),
                "{body}"
            );
        }
        // client_id in the body too, the same: fine (RFC 7521 §4.2).
        let token = assertion(&key, alg, Some("k1"), &claims(&id, &b.token_url()));
        let (status, body) = post(
            &b,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_assertion_type", TYPE),
                ("client_assertion", &token),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // Metadata says so (RFC 8414 §2).
    let meta: Value = b.get_json("/.well-known/oauth-authorization-server").await;
    for field in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert!(
            meta[field]
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt")),
            "{field}: {meta}"
        );
    }
    assert_eq!(
        meta["token_endpoint_auth_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
}

async fn each_fault_is_its_own_invalid_client(backend: Backend) {
    let b = TestBroker::start(backend).await;
    let (key, jwk) = key_and_jwk(Algorithm::ES256, "k1");
    let (other, _) = key_and_jwk(Algorithm::ES256, "k1");
    let id = register(&b, "signer", Keys::Inline(vec![jwk])).await;
    let (secret_client, secret) = b.create_client("secretive", "read", None).await;
    let url = b.token_url();
    let with = |name: &str, value: Value| {
        let mut c = claims(&id, &url);
        c[name] = value;
        assertion(&key, Algorithm::ES256, Some("k1"), &c)
    };
    let good = || assertion(&key, Algorithm::ES256, Some("k1"), &claims(&id, &url));
    let now = now();
    // (what, the form's assertion parameters, status, error, a piece of the description)
    let rows: Vec<(&str, String, &str, u16, &str, &str)> = vec![
        (
            "expired",
            with("exp", json!(now - 120)),
            TYPE,
            401,
            "invalid_client",
            "expired 120 s ago",
        ),
        (
            "too far ahead",
            with("exp", json!(now + 3600)),
            TYPE,
            401,
            "invalid_client",
            "at most 300 s",
        ),
        (
            "wrong aud",
            with("aud", json!("https://elsewhere.example")),
            TYPE,
            401,
            "invalid_client",
            "does not name this broker; use its token endpoint URL",
        ),
        (
            "sub differs",
            with("sub", json!("x")),
            TYPE,
            401,
            "invalid_client",
            "differs from its iss",
        ),
        (
            "no jti",
            {
                let mut c = claims(&id, &url);
                c.as_object_mut().unwrap().remove("jti");
                assertion(&key, Algorithm::ES256, Some("k1"), &c)
            },
            TYPE,
            401,
            "invalid_client",
            "no jti claim",
        ),
        (
            "other key",
            assertion(&other, Algorithm::ES256, Some("k1"), &claims(&id, &url)),
            TYPE,
            401,
            "invalid_client",
            "signature does not verify",
        ),
        (
            "unknown kid",
            assertion(&key, Algorithm::ES256, Some("k7"), &claims(&id, &url)),
            TYPE,
            401,
            "invalid_client",
            "key 'k7', which is not among the client's registered keys ('k1')",
        ),
        (
            "unknown client",
            assertion(&key, Algorithm::ES256, Some("k1"), &claims("nobody", &url)),
            TYPE,
            401,
            "invalid_client",
            "'nobody' is not a client that authenticates with private_key_jwt",
        ),
        (
            "a secret client's id",
            assertion(
                &key,
                Algorithm::ES256,
                Some("k1"),
                &claims(&secret_client, &url),
            ),
            TYPE,
            401,
            "invalid_client",
            "is not a client that authenticates with private_key_jwt",
        ),
        (
            "HS256",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims(&id, &url),
                &EncodingKey::from_secret(b"k"),
            )
            .unwrap(),
            TYPE,
            401,
            "invalid_client",
            "alg 'HS256'",
        ),
        (
            "not a JWT",
            "abc".into(),
            TYPE,
            401,
            "invalid_client",
            "not a compact JWT",
        ),
        (
            "wrong type",
            good(),
            "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            401,
            "invalid_client",
            "is not supported; send client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, token, typ, status, error, needle) in rows {
        let (s, body) = post(
            &b,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", typ),
                ("client_assertion", &token),
            ],
        )
        .await;
        let d = body["error_description"].as_str().unwrap_or_default();
        if s != status || body["error"] != error || !d.contains(needle) {
            wrong.push(format!("{what}: {s} {body}"));
        }
    }
    // The request's own faults: no type, no assertion, two methods, another client_id.
    let g = good();
    type Row<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str, &'a str);
    let form_rows: Vec<Row> = vec![
        (
            "no type",
            vec![("client_assertion", &g)],
            400,
            "invalid_request",
            "no client_assertion_type",
        ),
        (
            "no assertion",
            vec![("client_assertion_type", TYPE)],
            400,
            "invalid_request",
            "no client_assertion",
        ),
        (
            "and a secret",
            vec![
                ("client_assertion_type", TYPE),
                ("client_assertion", &g),
                ("client_secret", "s"),
            ],
            400,
            "invalid_request",
            "authenticates twice",
        ),
        (
            "another client_id",
            vec![
                ("client_id", "someone"),
                ("client_assertion_type", TYPE),
                ("client_assertion", &g),
            ],
            401,
            "invalid_client",
            "client_id 'someone' differs",
        ),
    ];
    for (what, mut form, status, error, needle) in form_rows {
        form.push(("grant_type", "client_credentials"));
        let (s, body) = post(&b, &form).await;
        let d = body["error_description"].as_str().unwrap_or_default();
        if s != status || body["error"] != error || !d.contains(needle) {
            wrong.push(format!("{what}: {s} {body}"));
        }
    }
    // Basic and an assertion together: one method per request (RFC 6749 §2.3).
    let r = b
        .http
        .post(b.token_url())
        .basic_auth(&secret_client, Some(secret.expose_secret()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", TYPE),
            ("client_assertion", &good()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The private_key_jwt client with any secret: the answer of a wrong secret.
    let r = b
        .request_token(&id, &auth_broker_proto::ClientSecret::new("abs_guess"))
        .await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert!(
        wrong.is_empty(),
        "{} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // A disabled client hears so, with a valid assertion only.
    b.admin()
        .set_enabled(&Actor::cli(), &id, false)
        .await
        .unwrap();
    let (s, body) = with_assertion(&b, &good()).await;
    assert_eq!(s, 401);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("the client is disabled"),
        "{body}"
    );
    // The same assertion works at introspection (any of the broker's endpoints).
    b.admin()
        .set_enabled(&Actor::cli(), &id, true)
        .await
        .unwrap();
    let intro = b.url("/auth-broker/introspect");
    let mut c = claims(&id, &intro);
    c["jti"] = json!("introspection-1");
    let token = assertion(&key, Algorithm::ES256, Some("k1"), &c);
    let r = b
        .http
        .post(&intro)
        .form(&[
            ("token", "x"),
            ("client_assertion_type", TYPE),
            ("client_assertion", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["active"], false);
}

/// Twenty requests at once with one assertion: exactly one gets a token, whether the
/// `jti`s land in one group commit or several.
async fn one_assertion_sent_at_once_is_used_once(backend: Backend) {
    // Replays are failures: a limit above what the test sends keeps them all 401s.
    let config = Config {
        auth_failures_per_minute: std::num::NonZeroU32::new(1000).unwrap(),
        ..Config::default()
    };
    let b = TestBroker::start_config(backend, config).await;
    let (key, jwk) = key_and_jwk(Algorithm::ES256, "k1");
    let id = register(&b, "racer", Keys::Inline(vec![jwk])).await;
    for round in 0..3 {
        let token = assertion(
            &key,
            Algorithm::ES256,
            Some("k1"),
            &claims(&id, &b.token_url()),
        );
        let answers =
            futures_util::future::join_all((0..20).map(|_| with_assertion(&b, &token))).await;
        let ok = answers.iter().filter(|(s, _)| *s == 200).count();
        let replayed = answers
            .iter()
            .filter(|(s, v)| {
                *s == 401
                    && v["error_description"]
                        .as_str()
                        .unwrap_or("")
                        .contains("was used before")
            })
            .count();
        assert_eq!((ok, replayed), (1, 19), "round {round}: {answers:?}");
    }
    // Different assertions at once all succeed (each its own jti in a shared commit).
    let tokens: Vec<String> = (0..20)
        .map(|_| {
            assertion(
                &key,
                Algorithm::ES256,
                Some("k1"),
                &claims(&id, &b.token_url()),
            )
        })
        .collect();
    let answers =
        futures_util::future::join_all(tokens.iter().map(|t| with_assertion(&b, t))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
}

async fn refusals_count_toward_the_failure_limit(backend: Backend) {
    let config = Config {
        auth_failures_per_minute: std::num::NonZeroU32::new(3).unwrap(),
        ..Config::default()
    };
    let b = TestBroker::start_config(backend, config).await;
    let (key, jwk) = key_and_jwk(Algorithm::ES256, "k1");
    let (other, _) = key_and_jwk(Algorithm::ES256, "k1");
    let id = register(&b, "limited", Keys::Inline(vec![jwk])).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let forged = assertion(
            &other,
            Algorithm::ES256,
            Some("k1"),
            &claims(&id, &b.token_url()),
        );
        statuses.push(with_assertion(&b, &forged).await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The holder of the key is never limited.
    let good = assertion(
        &key,
        Algorithm::ES256,
        Some("k1"),
        &claims(&id, &b.token_url()),
    );
    assert_eq!(with_assertion(&b, &good).await.0, 200);
}

/// A client's key server: serves `keys` at `/jwks`, counts requests, fails on demand.
struct KeyServer {
    url: String,
    keys: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl KeyServer {
    async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let keys = Arc::new(Mutex::new(json!({ "keys": keys })));
        let hits = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (k, h, f) = (keys.clone(), hits.clone(), failing.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (k, h, f) = (k.clone(), h.clone(), f.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if f.load(Ordering::SeqCst) {
                        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                    }
                    let body = k.lock().unwrap().to_string();
                    (axum::http::StatusCode::OK, body)
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            keys,
            hits,
            failing,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn keys_at_a_jwks_uri_are_cached_and_refetched_for_a_new_kid(backend: Backend) {
    let clock = auth_broker_jwt::ManualClock::at(now());
    let b = TestBroker::start_at(backend, clock.clone()).await;
    let (key1, jwk1) = key_and_jwk(Algorithm::ES256, "k1");
    let server = KeyServer::start(vec![jwk1.clone()]).await;
    let id = register(&b, "published", Keys::Uri(server.url.clone())).await;
    let get = |key: &EncodingKey, kid: &str| {
        use auth_broker_jwt::Clock;
        let c = claims_at(&id, &b.token_url(), clock.now_secs());
        assertion(key, Algorithm::ES256, Some(kid), &c)
    };
    for _ in 0..3 {
        let (s, body) = with_assertion(&b, &get(&key1, "k1")).await;
        assert_eq!(s, 200, "{body}");
    }
    assert_eq!(server.hits(), 1, "one fetch for three requests");
    // The client rotates: its new key is published. Within 15 s of the last fetch
    // the broker does not fetch again; after that, a new kid is fetched at once
    // (well before the set's 5 minutes are up).
    let (key2, jwk2) = key_and_jwk(Algorithm::ES256, "k2");
    *server.keys.lock().unwrap() = json!({ "keys": [jwk1, jwk2] });
    let (s, body) = with_assertion(&b, &get(&key2, "k2")).await;
    assert_eq!(s, 401, "{body}");
    assert_eq!(server.hits(), 1);
    clock.advance_secs(15);
    let (s, body) = with_assertion(&b, &get(&key2, "k2")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(server.hits(), 2);
    // Made-up kids do not make the broker hammer the client's server.
    for i in 0..10 {
        let (s, body) = with_assertion(&b, &get(&key2, &format!("forged-{i}"))).await;
        assert_eq!(s, 401, "{body}");
    }
    assert_eq!(server.hits(), 2, "refetches at most every 15 s per URL");
    // After 5 minutes the set is fetched again; the client's server is down, so
    // the last good set stays in use, and the next try waits 15 s.
    server.failing.store(true, Ordering::SeqCst);
    clock.advance_secs(300);
    for _ in 0..3 {
        let (s, body) = with_assertion(&b, &get(&key1, "k1")).await;
        assert_eq!(s, 200, "{body}");
    }
    assert_eq!(server.hits(), 3);
    clock.advance_secs(15);
    server.failing.store(false, Ordering::SeqCst);
    let (s, body) = with_assertion(&b, &get(&key2, "k2")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(server.hits(), 4);
}

/// Registering over the admin API: no secret for a `private_key_jwt` client, only
/// public JWK members, `jwks_uri` replacing `jwks` in a patch, and a DPoP-only client
/// refused plain tokens rather than given unbound ones.
async fn the_admin_api_registers_key_clients(backend: Backend) {
    let b = TestBroker::start(backend).await;
    let (admin, admin_secret) = b.create_client("ops", "admin:write", None).await;
    let admin = b.token(&admin, &admin_secret).await;
    let (key, jwk) = key_and_jwk(Algorithm::ES256, "k1");
    let send = |method: reqwest::Method, path: &str, body: Value| {
        let media = if method == reqwest::Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        b.http
            .request(method, b.url(path))
            .bearer_auth(&admin)
            .header("content-type", media)
            .body(body.to_string())
            .send()
    };
    let r = send(
        reqwest::Method::POST,
        "/admin/v1/clients",
        json!({"client_name": "signer", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert!(created.get("client_secret").is_none(), "{created}");
    assert_eq!(created["jwks"]["keys"][0]["kid"], "k1");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let token = assertion(
        &key,
        Algorithm::ES256,
        Some("k1"),
        &claims(&id, &b.token_url()),
    );
    assert_eq!(with_assertion(&b, &token).await.0, 200);
    // It has no secret to rotate.
    let r = send(
        reqwest::Method::POST,
        &format!("/admin/v1/clients/{id}/secret"),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("has no secret"),
        "{problem}"
    );

    // A private key, a member no JWK has, a member of the wrong type: each named.
    let mut private = jwk.clone();
    private["d"] = json!("c2VjcmV0");
    private["colour"] = json!("red");
    private["x"] = json!(5);
    let r = send(
        reqwest::Method::POST,
        "/admin/v1/clients",
        json!({"client_name": "leaky", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(
        crate::problem_fields(&problem),
        ["jwks.keys[0].colour", "jwks.keys[0].d", "jwks.keys[0].x"],
        "{problem}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("register the public key only"), "{detail}");

    // Both key sources at once: refused; a patch with one replaces the other.
    let r = send(
        reqwest::Method::POST,
        "/admin/v1/clients",
        json!({"client_name": "both", "jwks": {"keys": [jwk]}, "jwks_uri": "https://keys.example/jwks"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(
        reqwest::Method::PATCH,
        &format!("/admin/v1/clients/{id}"),
        json!({"jwks_uri": "https://keys.example/jwks"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["jwks"], Value::Null, "{patched}");
    assert_eq!(patched["jwks_uri"], "https://keys.example/jwks");

    // dpop_bound_access_tokens is kept and honoured: no bearer token for this client.
    let (plain, plain_secret) = b.create_client("bound", "", None).await;
    let r = send(
        reqwest::Method::PATCH,
        &format!("/admin/v1/clients/{plain}"),
        json!({"dpop_bound_access_tokens": true}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = b.request_token(&plain, &plain_secret).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("dpop_bound_access_tokens"),
        "{v}"
    );
}
