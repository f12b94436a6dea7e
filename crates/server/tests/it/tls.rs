//! TLS termination: tokens over https, certificate reload without dropping
//! connections, clear start-up errors, a bounded handshake.

use auth_broker_server::tls::TlsFiles;
use auth_broker_server::{Config, Server};
use auth_broker_testkit::tls::{RawTls, TestCa, TlsDir};
use auth_broker_testkit::{Backend, FreshStore, TestBroker};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

fn tls_config(files: &TlsFiles) -> Config {
    Config {
        tls: Some(files.clone()),
        ..Config::default()
    }
}

/// A reqwest client trusting the system roots plus `ca_pem`.
fn trusting(ca_pem: &str) -> reqwest::Client {
    auth_broker_client::install_crypto_provider_then(
        reqwest::Client::builder()
            .tls_certs_merge([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()]),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_tokens_over_https_to_clients_trusting_the_ca() {
    let t = TlsDir::new();
    let b = TestBroker::start_config(Backend::Sqlite, tls_config(&t.files)).await;
    assert!(b.base.starts_with("https://127.0.0.1:"), "{}", b.base);
    assert_eq!(b.issuer, b.base, "the default issuer follows the scheme");
    let (id, secret) = b.create_client("app", "read", None).await;

    let http = trusting(&t.ca.pem);
    let meta: serde_json::Value =
        auth_broker_testkit::get_json(&http, &b.url("/.well-known/oauth-authorization-server"))
            .await;
    assert_eq!(meta["token_endpoint"], b.token_url());
    assert!(b.token_url().starts_with("https://"));

    let r = http
        .post(b.token_url())
        .basic_auth(&id, Some(secret.expose_secret()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "bearer");

    // The client crate's token manager, over the same trusted connection.
    let manager = auth_broker_client::TokenManager::with_parts(
        auth_broker_client::TokenConfig::new(b.token_url(), &id, secret.clone()),
        http,
        std::sync::Arc::new(auth_broker_client::SystemClock),
    );
    assert!(manager.token().await.is_ok());

    // A client with only the system roots refuses the test CA's certificate, and
    // the failure is recognisable as exactly that.
    let plain = auth_broker_client::default_http_client().unwrap();
    let err = plain.get(b.url("/healthz")).send().await.unwrap_err();
    assert_eq!(
        auth_broker_client::certificate_problem(&err),
        Some(auth_broker_client::CertificateProblem::Untrusted),
        "{err:?}"
    );
    // So does a client trusting another CA.
    let other = trusting(&TestCa::new("another CA").pem);
    let err = other.get(b.url("/healthz")).send().await.unwrap_err();
    assert_eq!(
        auth_broker_client::certificate_problem(&err),
        Some(auth_broker_client::CertificateProblem::Untrusted)
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(
        reqwest::Client::new()
            .get(format!("http://{}/healthz", b.addr))
            .send()
            .await
            .is_err()
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_the_new_certificate_to_new_connections_and_keeps_old_ones() {
    let t = TlsDir::new();
    let b = TestBroker::start_config(Backend::Sqlite, tls_config(&t.files)).await;
    let handle = b.tls.clone().unwrap();
    let before = handle.current().fingerprint;

    let mut old = RawTls::connect(b.addr, &t.ca.der).await.unwrap();
    assert_eq!(old.alpn().as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(old.peer_cert(), t.leaf.der);
    assert_eq!(old.get("/healthz").await.unwrap().0, 200);

    // Renew: a new certificate and key in the same files, then reload.
    let renewed = t.ca.leaf("second");
    renewed.write(&t.files);
    let loaded = handle.reload().unwrap();
    assert_ne!(loaded.fingerprint, before);
    assert_eq!(loaded.chain_len, 1);

    let mut new = RawTls::connect(b.addr, &t.ca.der).await.unwrap();
    assert_eq!(
        new.peer_cert(),
        renewed.der,
        "a new connection sees the new certificate"
    );
    assert_eq!(new.get("/healthz").await.unwrap().0, 200);
    // The connection made before the reload is the same one and still works.
    assert_eq!(old.peer_cert(), t.leaf.der);
    assert_eq!(old.get("/healthz").await.unwrap().0, 200);
    assert_eq!(old.get("/readyz").await.unwrap().0, 200);

    // Broken reloads fail with a reason and keep the certificate in use.
    std::fs::write(&t.files.cert, "not a certificate\n").unwrap();
    let e = handle.reload().unwrap_err().to_string();
    assert!(
        e.contains("holds no certificate") && e.contains("cert.pem"),
        "{e}"
    );
    t.ca.leaf("third").write(&TlsFiles {
        cert: t.files.cert.clone(),
        key: t.dir.path().join("unused-key.pem"),
    });
    let e = handle.reload().unwrap_err().to_string();
    assert!(e.contains("does not belong to the certificate"), "{e}");
    std::fs::write(&t.files.key, "").unwrap();
    let e = handle.reload().unwrap_err().to_string();
    assert!(e.contains("holds no private key"), "{e}");
    std::fs::remove_file(&t.files.key).unwrap();
    let e = handle.reload().unwrap_err().to_string();
    assert!(e.contains("cannot read the TLS key file"), "{e}");

    assert_eq!(handle.current().fingerprint, loaded.fingerprint);
    let mut after = RawTls::connect(b.addr, &t.ca.der).await.unwrap();
    assert_eq!(
        after.peer_cert(),
        renewed.der,
        "a failed reload keeps the old certificate"
    );
    assert_eq!(after.get("/healthz").await.unwrap().0, 200);
    assert_eq!(old.get("/healthz").await.unwrap().0, 200);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_stop_the_start_with_a_clear_error() {
    let t = TlsDir::new();
    let fresh = FreshStore::new(Backend::Sqlite).await;
    let start = |files: TlsFiles| {
        let store = fresh.open();
        async move {
            let mut config = tls_config(&files);
            config.listen = "127.0.0.1:0".parse().unwrap();
            Server::bind_default_clock(config, store.await)
                .await
                .map(|_| ())
                .unwrap_err()
                .to_string()
        }
    };
    let missing = TlsFiles {
        cert: t.dir.path().join("nope.pem"),
        key: t.files.key.clone(),
    };
    let e = start(missing).await;
    assert!(
        e.contains("cannot read the TLS certificate file") && e.contains("nope.pem"),
        "{e}"
    );

    let empty = t.dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let e = start(TlsFiles {
        cert: empty.clone(),
        key: t.files.key.clone(),
    })
    .await;
    assert!(e.contains("holds no certificate"), "{e}");
    let e = start(TlsFiles {
        cert: t.files.cert.clone(),
        key: empty,
    })
    .await;
    assert!(e.contains("holds no private key"), "{e}");
    // The certificate file given as the key, and a key of another pair.
    let e = start(TlsFiles {
        cert: t.files.cert.clone(),
        key: t.files.cert.clone(),
    })
    .await;
    assert!(e.contains("holds no private key"), "{e}");
    let other = t.ca.leaf("other");
    let other_key = t.dir.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let e = start(TlsFiles {
        cert: t.files.cert.clone(),
        key: other_key,
    })
    .await;
    assert!(e.contains("does not belong to the certificate"), "{e}");
}

/// Clients that open a connection and never finish the handshake neither block
/// other clients nor keep their connection past the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_delays_only_itself_and_is_cut_off() {
    let t = TlsDir::new();
    let mut config = tls_config(&t.files);
    config.header_timeout = Duration::from_secs(1);
    let b = TestBroker::start_config(Backend::Sqlite, config).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tokio::net::TcpStream::connect(b.addr).await.unwrap());
    }
    let mut ok = RawTls::connect(b.addr, &t.ca.der).await.unwrap();
    assert_eq!(ok.get("/healthz").await.unwrap().0, 200);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "a working client waited for silent ones: {:?}",
        started.elapsed()
    );
    for mut s in silent {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the server closes a connection whose handshake does not come")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "cut off too early: {waited:?}"
    );
    b.stop().await;
}
