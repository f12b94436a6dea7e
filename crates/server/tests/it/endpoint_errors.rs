//! Every bad token request gets a precise RFC 6749 §5.2 error (INTERFACE §1).

use crate::{broker_with_client, expect_error, on_both_stores};
use auth_broker_proto::ClientSecret;
use auth_broker_server::Config;
use auth_broker_testkit::{Backend, Options, TestBroker};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_stores!(
    malformed_requests_get_precise_errors,
    failed_authentication_is_identical_for_every_cause,
    failures_are_rate_limited_but_the_right_secret_never_is,
);

const FORM: &str = "application/x-www-form-urlencoded";

fn basic(s: &str) -> String {
    format!("Basic {}", STANDARD.encode(s))
}

async fn malformed_requests_get_precise_errors(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let good = basic(&format!("{id}:{}", secret.expose_secret()));
    let send = |auth: Option<String>, ct: Option<&'static str>, body: String| {
        let mut rb = b.http.post(b.token_url()).body(body);
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        if let Some(c) = ct {
            rb = rb.header("content-type", c);
        }
        rb.send()
    };
    let gt = || "grant_type=client_credentials".to_owned();

    // No Authorization at all.
    let r = send(None, Some(FORM), gt()).await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Basic realm="auth-broker""#
    );
    let d = expect_error(r, 401, "invalid_client").await;
    assert!(d.contains("no client authentication"), "{d}");
    // Not Basic.
    let r = send(Some("Bearer abc".into()), Some(FORM), gt())
        .await
        .unwrap();
    let d = expect_error(r, 401, "invalid_client").await;
    assert!(d.contains("'Bearer' scheme"), "{d}");
    // Base64 that does not decode; id:secret sent raw.
    let d = expect_error(
        send(Some("Basic !!!".into()), Some(FORM), gt())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("not valid base64"), "{d}");
    let raw = format!("Basic {id}:{}", secret.expose_secret());
    let d = expect_error(
        send(Some(raw), Some(FORM), gt()).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("without base64"), "{d}");
    assert!(!d.contains(secret.expose_secret()), "never echo a secret");
    // No colon, empty id, empty secret.
    let d = expect_error(
        send(Some(basic(&id)), Some(FORM), gt()).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("no ':'"), "{d}");
    let d = expect_error(
        send(Some(basic(":x")), Some(FORM), gt()).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("empty client_id"), "{d}");
    let d = expect_error(
        send(Some(basic(&format!("{id}:"))), Some(FORM), gt())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("empty client_secret"), "{d}");
    // Credentials in both header and body.
    let both = format!(
        "grant_type=client_credentials&client_id={id}&client_secret={}",
        secret.expose_secret()
    );
    let d = expect_error(
        send(Some(good.clone()), Some(FORM), both).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(
        d.contains("both the Authorization header and the body"),
        "{d}"
    );
    let other_id = "grant_type=client_credentials&client_id=someone-else".to_owned();
    let d = expect_error(
        send(Some(good.clone()), Some(FORM), other_id)
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("differs"), "{d}");
    // Content types.
    let d = expect_error(
        send(Some(good.clone()), None, gt()).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("no Content-Type"), "{d}");
    let d = expect_error(
        send(Some(good.clone()), Some("text/plain"), gt())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("'text/plain'"), "names the type received: {d}");
    let json = r#"{"grant_type":"client_credentials"}"#.to_owned();
    let d = expect_error(
        send(Some(good.clone()), Some("application/json"), json.clone())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("JSON") && d.contains("application/json"), "{d}");
    let d = expect_error(
        send(Some(good.clone()), Some(FORM), json).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("JSON"), "{d}");
    // Media type parameters and case are fine.
    let r = send(
        Some(good.clone()),
        Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
        gt(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // grant_type: missing, repeated, unknown; malformed form encoding.
    let d = expect_error(
        send(Some(good.clone()), Some(FORM), "scope=read".into())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("no grant_type"), "{d}");
    let d = expect_error(
        send(Some(good.clone()), Some(FORM), String::new())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("no grant_type"), "{d}");
    let rep = "grant_type=client_credentials&grant_type=client_credentials".to_owned();
    let d = expect_error(
        send(Some(good.clone()), Some(FORM), rep).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("more than once"), "{d}");
    let d = expect_error(
        send(Some(good.clone()), Some(FORM), "grant_type=password".into())
            .await
            .unwrap(),
        400,
        "unsupported_grant_type",
    )
    .await;
    assert!(d.contains("'password'"), "{d}");
    let d = expect_error(
        send(
            Some(good.clone()),
            Some(FORM),
            "grant_type=client%zzcredentials".into(),
        )
        .await
        .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(d.contains("'%'"), "{d}");
    // Methods.
    let r = b.http.get(b.token_url()).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    expect_error(r, 405, "invalid_request").await;
    let r = b.http.put(b.token_url()).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // Too large, declared and chunked.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    expect_error(
        send(Some(good.clone()), Some(FORM), big.clone())
            .await
            .unwrap(),
        413,
        "invalid_request",
    )
    .await;
    let mut conn = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let mut req = format!(
        "POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nAuthorization: {good}\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in big.as_bytes().chunks(8192) {
        req.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    req.push_str("0\r\n\r\n");
    // The broker may answer and close before reading it all; a reset here is fine.
    let _ = conn.write_all(req.as_bytes()).await;
    let mut out = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut out))
        .await
        .unwrap()
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&out[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "chunked: {head}");
    // Unknown paths.
    let r = b.http.get(b.url("/nope")).send().await.unwrap();
    expect_error(r, 404, "invalid_request").await;
    // After all that, the client still works.
    assert_eq!(
        send(Some(good), Some(FORM), gt()).await.unwrap().status(),
        200
    );
}

async fn failed_authentication_is_identical_for_every_cause(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let (disabled_id, disabled_secret) = b.create_client("off", "", None).await;
    b.store
        .set_client_enabled(&disabled_id, false, 0)
        .await
        .unwrap();
    let answers = [
        b.request_token("no-such-client", &secret).await,
        b.request_token(&id, &ClientSecret::new("wrong")).await,
        b.request_token(&disabled_id, &disabled_secret).await,
    ];
    let mut bodies = Vec::new();
    for r in answers {
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Basic realm="auth-broker""#
        );
        assert_eq!(r.headers()["cache-control"], "no-store");
        bodies.push(r.bytes().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1], "unknown client and wrong secret");
    assert_eq!(bodies[1], bodies[2], "wrong secret and disabled client");
    let text = String::from_utf8_lossy(&bodies[0]);
    assert!(text.contains("invalid_client"), "{text}");
    // The metrics count each reason separately.
    let m = b
        .http
        .get(b.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in ["unknown_client", "wrong_secret", "disabled_client"] {
        assert!(
            m.contains(&format!("reason=\"{reason}\"")),
            "metric for {reason}"
        );
    }
}

async fn failures_are_rate_limited_but_the_right_secret_never_is(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let wrong = ClientSecret::new("wrong");
    for i in 0..20 {
        assert_eq!(
            b.request_token(&id, &wrong).await.status(),
            401,
            "failure {i}"
        );
    }
    let r = b.request_token(&id, &wrong).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    expect_error(r, 429, "invalid_client").await;
    // Same client id, same address, right secret: served, every time.
    for _ in 0..5 {
        assert_eq!(b.request_token(&id, &secret).await.status(), 200);
    }
    // Another client from the same (limited) address with the right secret: served.
    let (id2, s2) = b.create_client("other", "", None).await;
    assert_eq!(b.request_token(&id2, &s2).await.status(), 200);
}

#[tokio::test]
async fn a_stuck_sender_times_out_and_shutdown_drains_in_flight_requests() {
    let config = Config {
        body_timeout: Duration::from_millis(500),
        header_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let b = TestBroker::start_with(
        Backend::Sqlite,
        Options {
            config,
            ..Default::default()
        },
    )
    .await;
    let (id, secret) = b.create_client("c", "", None).await;

    // Headers promise 29 bytes; only 10 arrive.
    let mut s = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let req = format!(
        "POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {FORM}\r\nContent-Length: 29\r\n\r\ngrant_type",
        basic(&format!("{id}:{}", secret.expose_secret()))
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");

    // Headers that never finish: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    s.write_all(b"POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || head.starts_with("HTTP/1.1 408"), "{head}");

    // An in-flight request finishes even though shutdown starts in its middle.
    let mut s = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let head = format!(
        "POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {FORM}\r\nContent-Length: 29\r\nConnection: close\r\n\r\ngrant_type",
        basic(&format!("{id}:{}", secret.expose_secret()))
    );
    s.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stop = tokio::spawn(b.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"=client_credentials").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .unwrap()
        .unwrap();
}
