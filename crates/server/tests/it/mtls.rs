//! Mutual TLS (RFC 8705, INTERFACE §8) over real TLS on both stores: with `serve
//! --tls-client-ca` clients may present a certificate; `tls_client_auth` clients
//! authenticate with one the CA issued for their registered subject DN,
//! `self_signed_tls_client_auth` clients with one registered in their JWK Set; every
//! token asked for over mutual TLS carries `cnf.x5t#S256`, which token-info and the
//! guard hold to the connection's certificate. Clients without certificates connect as
//! before.

use crate::on_both_stores;
use auth_broker_guard::{Guard, GuardLayer};
use auth_broker_proto::admin::{AuthMethod, ClientSettings};
use auth_broker_server::Config;
use auth_broker_server::admin::Actor;
use auth_broker_testkit::keybound::ProofKey;
use auth_broker_testkit::tls::{Leaf, TestCa, TlsDir};
use auth_broker_testkit::{Backend, Options, TestBroker};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tower::ServiceExt;

on_both_stores!(
    tls_client_auth_by_the_ca_and_the_subject,
    self_signed_certificates_registered_in_the_jwks,
    tokens_asked_for_over_mutual_tls_are_bound_to_the_certificate,
);

struct Mtls {
    b: TestBroker,
    /// The server's TLS files (and the CA clients trust it by).
    t: TlsDir,
    /// The CA of tls_client_auth clients.
    clients: TestCa,
}

async fn start(backend: Backend) -> Mtls {
    let t = TlsDir::new();
    let clients = TestCa::new("client CA");
    let ca_file = t.dir.path().join("client-ca.pem");
    clients.write(&ca_file);
    let config = Config {
        tls: Some(t.files.clone()),
        tls_client_ca: Some(ca_file),
        ..Config::default()
    };
    let b = TestBroker::start_with(
        backend,
        Options {
            config,
            ..Options::default()
        },
    )
    .await;
    Mtls { b, t, clients }
}

impl Mtls {
    /// An HTTP client trusting the broker, presenting `cert` when given.
    fn http(&self, cert: Option<&Leaf>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .tls_certs_merge([reqwest::Certificate::from_pem(self.t.ca.pem.as_bytes()).unwrap()]);
        if let Some(leaf) = cert {
            let pem = format!("{}{}", leaf.cert_pem, leaf.key_pem);
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        auth_broker_client::install_crypto_provider_then(builder).unwrap()
    }

    async fn register(&self, settings: ClientSettings) -> String {
        let (client, _) = self
            .b
            .admin()
            .create_client(&Actor::cli(), settings)
            .await
            .unwrap();
        client.client_id
    }

    /// A token request with `form` over a connection presenting `cert`.
    async fn token(&self, cert: Option<&Leaf>, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http(cert)
            .post(self.b.token_url())
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

fn x5t(leaf: &Leaf) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        leaf.der.as_ref(),
    ))
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn refused(answer: &(u16, Value), needle: &str) {
    assert_eq!(answer.0, 401, "{needle}: {}", answer.1);
    assert_eq!(answer.1["error"], "invalid_client", "{}", answer.1);
    let d = answer.1["error_description"].as_str().unwrap();
    assert!(d.contains(needle), "{needle:?} not in {d:?}");
}

async fn tls_client_auth_by_the_ca_and_the_subject(backend: Backend) {
    let m = start(backend).await;
    let meta: Value = auth_broker_testkit::get_json(
        &m.http(None),
        &m.b.url("/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], true);
    let methods = meta["token_endpoint_auth_methods_supported"].to_string();
    assert!(
        methods.contains("\"tls_client_auth\"") && methods.contains("self_signed_tls_client_auth"),
        "{methods}"
    );

    let id = m
        .register(ClientSettings {
            client_name: "orders".into(),
            scope: "read".into(),
            enabled: true,
            token_endpoint_auth_method: AuthMethod::TlsClientAuth,
            tls_client_auth_subject_dn: Some("cn=Orders-Service".into()),
            ..ClientSettings::default()
        })
        .await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
    ];
    let good = m.clients.leaf("orders-service");
    let (s, v) = m.token(Some(&good), &form).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "bearer", "mTLS-bound tokens stay Bearer");
    let c = claims(v["access_token"].as_str().unwrap());
    assert_eq!(c["client_id"], id.as_str());
    assert_eq!(c["cnf"]["x5t#S256"], x5t(&good), "{c}");

    refused(&m.token(None, &form).await, "nor a TLS client certificate");
    let stranger = TestCa::new("another CA").leaf("orders-service");
    refused(
        &m.token(Some(&stranger), &form).await,
        "not one the broker's client CA issued",
    );
    refused(
        &m.token(Some(&m.clients.leaf("billing")), &form).await,
        "subject is 'CN=billing'",
    );
    let unknown = [
        ("grant_type", "client_credentials"),
        ("client_id", "nobody"),
    ];
    refused(&m.token(Some(&good), &unknown).await, "no client 'nobody'");

    // A secret client's id with a certificate is not tls_client_auth.
    let (secret_id, _) = m.b.create_client("secretive", "", None).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", secret_id.as_str()),
    ];
    refused(
        &m.token(Some(&good), &form).await,
        "authenticates with a TLS",
    );

    // A tls_client_auth client registered without its DN yet is told what to set.
    let no_dn = m
        .register(ClientSettings {
            client_name: "no-dn".into(),
            enabled: true,
            token_endpoint_auth_method: AuthMethod::TlsClientAuth,
            ..ClientSettings::default()
        })
        .await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", no_dn.as_str()),
    ];
    refused(
        &m.token(Some(&good), &form).await,
        "no tls_client_auth_subject_dn registered",
    );
}

async fn self_signed_certificates_registered_in_the_jwks(backend: Backend) {
    let m = start(backend).await;
    // Any certificate the client chooses (here one from a CA the broker does not
    // know): what counts is that it is the one registered.
    let own = TestCa::new("self").leaf("edge-device");
    let mut jwk = serde_json::to_value(&ProofKey::new().jwk).unwrap();
    jwk["x5c"] = json!([STANDARD.encode(own.der.as_ref())]);
    let id = m
        .register(ClientSettings {
            client_name: "device".into(),
            enabled: true,
            token_endpoint_auth_method: AuthMethod::SelfSignedTlsClientAuth,
            jwks: Some(json!({ "keys": [jwk] })),
            ..ClientSettings::default()
        })
        .await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
    ];
    let (s, v) = m.token(Some(&own), &form).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        claims(v["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
        x5t(&own)
    );
    let other = TestCa::new("self").leaf("edge-device");
    refused(
        &m.token(Some(&other), &form).await,
        "not among the 1 certificate(s) in the client's JWK Set",
    );
}

async fn tokens_asked_for_over_mutual_tls_are_bound_to_the_certificate(backend: Backend) {
    let m = start(backend).await;
    let (id, secret) = m.b.create_client("web", "read", None).await;
    let basic = |cert: Option<&Leaf>| {
        m.http(cert)
            .post(m.b.token_url())
            .basic_auth(&id, Some(secret.expose_secret()))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    // Without a certificate: connects as ever, an unbound token.
    let v: Value = basic(None).await.unwrap().json().await.unwrap();
    assert!(
        claims(v["access_token"].as_str().unwrap())["cnf"].is_null(),
        "{v}"
    );

    let cert = m.clients.leaf("web");
    let v: Value = basic(Some(&cert)).await.unwrap().json().await.unwrap();
    let token = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&token)["cnf"]["x5t#S256"], x5t(&cert));

    // token-info holds the token to the connection's certificate.
    let info = |c: Option<&Leaf>| {
        m.http(c)
            .get(m.b.url("/auth-broker/token-info"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(info(Some(&cert)).await.unwrap().status(), 200);
    for (c, needle) in [
        (None, "came without one"),
        (
            Some(m.clients.leaf("thief")),
            "another TLS client certificate",
        ),
    ] {
        let r = info(c.as_ref()).await.unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error_description"].as_str().unwrap().contains(needle),
            "{needle}: {v}"
        );
    }

    // The guard, behind a proxy that terminates TLS and forwards the certificate
    // (RFC 9440 Client-Cert), when told to trust that header; never otherwise.
    let build = |trust: bool| {
        let mut g = Guard::builder(&m.b.issuer).http_client(m.http(None));
        if trust {
            g = g.trust_client_cert_header(http::HeaderName::from_static("client-cert"));
        }
        g.build()
    };
    let api = |guard: Guard| {
        axum::Router::new()
            .route("/orders", axum::routing::get(|| async { "ok" }))
            .route_layer(GuardLayer::new(guard))
    };
    let call = |app: axum::Router, cert: Option<&Leaf>| {
        let mut req =
            http::Request::get("/orders").header("authorization", format!("Bearer {token}"));
        if let Some(c) = cert {
            req = req.header(
                "client-cert",
                format!(":{}:", STANDARD.encode(c.der.as_ref())),
            );
        }
        app.oneshot(req.body(axum::body::Body::empty()).unwrap())
    };
    let trusting = api(build(true).await.unwrap());
    assert_eq!(
        call(trusting.clone(), Some(&cert)).await.unwrap().status(),
        200
    );
    let thief = m.clients.leaf("thief");
    assert_eq!(
        call(trusting.clone(), Some(&thief)).await.unwrap().status(),
        401
    );
    assert_eq!(call(trusting, None).await.unwrap().status(), 401);
    let untrusting = api(build(false).await.unwrap());
    assert_eq!(
        call(untrusting, Some(&cert)).await.unwrap().status(),
        401,
        "the header is ignored unless trusted"
    );
}
