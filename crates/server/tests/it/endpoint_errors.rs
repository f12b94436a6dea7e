//! Every bad token request gets a precise RFC 6749 §5.2 error (INTERFACE §1).

use crate::{broker_with_client, expect_error, on_both_stores};
use auth_broker_proto::ClientSecret;
use auth_broker_server::Config;
use auth_broker_server::admin::Actor;
use auth_broker_testkit::{Backend, Options, TestBroker};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_stores!(
    malformed_requests_get_precise_errors,
    failed_authentication_is_identical_for_every_cause,
    failures_are_rate_limited_but_the_right_secret_never_is,
    client_ids_a_store_cannot_hold_are_unknown_clients,
);

const FORM: &str = "application/x-www-form-urlencoded";

fn basic(s: &str) -> String {
    format!("Basic {}", STANDARD.encode(s))
}

async fn malformed_requests_get_precise_errors(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let good = basic(&format!("{id}:{}", secret.expose_secret()));
    let send = |auth: Option<String>, ct: Option<&str>, body: String| {
        let mut rb = b.http.post(b.token_url()).body(body);
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        if let Some(c) = ct {
            rb = rb.header("content-type", c);
        }
        rb.send()
    };
    let gt = "grant_type=client_credentials";
    let raw = format!("Basic {id}:{}", secret.expose_secret());
    let both = format!(
        "{gt}&client_id={id}&client_secret={}",
        secret.expose_secret()
    );
    let json = r#"{"grant_type":"client_credentials"}"#;
    let (no_colon, empty_secret) = (basic(&id), basic(&format!("{id}:")));
    let g = Some(good.as_str());
    // (Authorization, Content-Type, body) -> (status, error, words the description must contain)
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            None,
            Some(FORM),
            gt,
            401,
            "invalid_client",
            "no client authentication",
        ),
        (
            Some("Bearer abc"),
            Some(FORM),
            gt,
            401,
            "invalid_client",
            "'Bearer' scheme",
        ),
        (
            Some("Basic !!!"),
            Some(FORM),
            gt,
            400,
            "invalid_request",
            "not valid base64",
        ),
        (
            Some(&raw),
            Some(FORM),
            gt,
            400,
            "invalid_request",
            "without base64",
        ),
        (
            Some(&no_colon),
            Some(FORM),
            gt,
            400,
            "invalid_request",
            "no ':'",
        ),
        (
            Some("Basic OnN4"),
            Some(FORM),
            gt,
            400,
            "invalid_request",
            "empty client_id",
        ),
        (
            Some(&empty_secret),
            Some(FORM),
            gt,
            400,
            "invalid_request",
            "empty client_secret",
        ),
        (
            g,
            Some(FORM),
            &both,
            400,
            "invalid_request",
            "both the Authorization header and the body",
        ),
        (
            g,
            Some(FORM),
            "grant_type=client_credentials&client_id=someone-else",
            400,
            "invalid_request",
            "differs",
        ),
        (g, None, gt, 400, "invalid_request", "no Content-Type"),
        (
            g,
            Some("text/plain"),
            gt,
            400,
            "invalid_request",
            "'text/plain'",
        ),
        (
            g,
            Some("application/json"),
            json,
            400,
            "invalid_request",
            "application/json",
        ),
        (g, Some(FORM), json, 400, "invalid_request", "JSON"),
        (
            g,
            Some(FORM),
            "scope=read",
            400,
            "invalid_request",
            "no grant_type",
        ),
        (g, Some(FORM), "", 400, "invalid_request", "no grant_type"),
        (
            g,
            Some(FORM),
            "grant_type=client_credentials&grant_type=client_credentials",
            400,
            "invalid_request",
            "more than once",
        ),
        (
            g,
            Some(FORM),
            "grant_type=password",
            400,
            "unsupported_grant_type",
            "'password'",
        ),
        (
            g,
            Some(FORM),
            "grant_type=client%zzcredentials",
            400,
            "invalid_request",
            "'%'",
        ),
    ];
    for (auth, ct, body, status, code, needle) in cases {
        let r = send(auth.map(str::to_owned), ct, body.to_owned())
            .await
            .unwrap();
        let d = expect_error(r, status, code).await;
        assert!(
            d.contains(needle),
            "{auth:?} {ct:?} {body:?}: expected '{needle}' in '{d}'"
        );
        assert!(
            !d.contains(secret.expose_secret()),
            "never echo a secret: {d}"
        );
    }
    let r = send(None, Some(FORM), gt.to_owned()).await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Basic realm="auth-broker""#
    );
    // Media type parameters and case are fine.
    let r = send(
        g.map(str::to_owned),
        Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
        gt.to_owned(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
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
        send(Some(good), Some(FORM), gt.to_owned())
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn failed_authentication_is_identical_for_every_cause(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let (disabled_id, disabled_secret) = b.create_client("off", "", None).await;
    b.admin()
        .set_enabled(&Actor::cli(), &disabled_id, false)
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
    // The public metrics do not tell the three apart either: one failed request
    // between two scrapes would otherwise say whether a client id exists.
    let public = crate::get_text(&b.http, &b.url("/metrics")).await;
    assert!(
        public.contains("auth_broker_auth_failures_total{reason=\"invalid_client\"}"),
        "{public}"
    );
    for reason in ["unknown_client", "wrong_secret", "disabled_client"] {
        assert!(!public.contains(reason), "{reason} on the public /metrics");
    }
    assert!(!public.contains("by_cause"), "{public}");
}

/// `serve --metrics-listen`: the operator's own listener shows the precise causes,
/// and only `/metrics`.
#[tokio::test]
async fn the_operator_metrics_listener_has_the_precise_causes() {
    let config = Config {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    };
    let b = TestBroker::start_config(Backend::Sqlite, config).await;
    let (id, secret) = b.create_client("m", "", None).await;
    assert_eq!(
        b.request_token("no-such-client", &secret).await.status(),
        401
    );
    assert_eq!(
        b.request_token(&id, &ClientSecret::new("wrong"))
            .await
            .status(),
        401
    );
    let private = b.metrics_addr.unwrap();
    let text = crate::get_text(&b.http, &format!("http://{private}/metrics")).await;
    for reason in ["unknown_client", "wrong_secret"] {
        assert!(
            text.contains(&format!(
                "auth_broker_auth_failures_by_cause_total{{reason=\"{reason}\"}}"
            )),
            "{text}"
        );
    }
    assert!(text.contains("auth_broker_http_requests_total"), "{text}");
    let r = b
        .http
        .get(format!("http://{private}/auth-broker/token-info"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the operator listener serves metrics only");
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

/// A client id with a NUL byte cannot exist (PostgreSQL's text cannot hold one; the
/// broker never makes one), in the Basic header or in the body: the same `401
/// invalid_client` as any unknown client, never a `500`, and counted by the failure
/// limit like any other failure.
async fn client_ids_a_store_cannot_hold_are_unknown_clients(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let reference = b
        .request_token("no-such-client", &secret)
        .await
        .bytes()
        .await
        .unwrap();
    let token_url = b.url("/auth-broker/request-token");
    let mut statuses = Vec::new();
    for i in 0..22 {
        let r = if i % 2 == 0 {
            b.http
                .post(&token_url)
                .header(
                    "authorization",
                    format!(
                        "Basic {}",
                        STANDARD.encode(format!("{id}\0x:{}", secret.expose_secret()))
                    ),
                )
                .header("content-type", FORM)
                .body("grant_type=client_credentials")
                .send()
                .await
                .unwrap()
        } else {
            b.http
                .post(&token_url)
                .header("content-type", FORM)
                .body(format!(
                    "grant_type=client_credentials&client_id=a%00{i}&client_secret=abs_x"
                ))
                .send()
                .await
                .unwrap()
        };
        let status = r.status().as_u16();
        if status == 401 {
            assert_eq!(r.bytes().await.unwrap(), reference, "request {i}");
        }
        statuses.push(status);
    }
    // One unknown id above, then 19 more failures fill the allowance of 20 for this
    // address; the rest are limited.
    assert_eq!(statuses[..19], [401; 19], "{statuses:?}");
    assert!(statuses[19..].iter().all(|s| *s == 429), "{statuses:?}");
}

/// Sends raw bytes and returns what the broker wrote back (until it closes or 2 s).
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 9112 §3.2: an HTTP/1.1 request without a `Host`, or with two, is a `400`;
/// HTTP/1.0 needs none.
#[tokio::test]
async fn requests_with_two_hosts_or_none_are_refused() {
    let b = TestBroker::start(Backend::Sqlite).await;
    for (head, status) in [
        (
            "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            "400",
        ),
        ("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", "400"),
        (
            "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "200",
        ),
        ("GET /healthz HTTP/1.0\r\n\r\n", "200"),
    ] {
        let answer = raw(b.addr, head).await;
        assert_eq!(
            answer.split_whitespace().nth(1),
            Some(status),
            "{head:?}: {answer}"
        );
        if status == "400" {
            assert!(
                answer.contains("invalid_request") && answer.contains("Host"),
                "{answer}"
            );
            assert!(
                answer.to_ascii_lowercase().contains("x-request-id: "),
                "{answer}"
            );
        }
    }
}

/// A caller's `X-Request-Id` is kept when it is short and of safe characters (so a
/// request can be followed through a gateway and the broker); anything else is
/// replaced by one of the broker's own, never written into the log or echoed.
#[tokio::test]
async fn a_request_id_is_kept_only_when_short_and_plain() {
    let b = TestBroker::start(Backend::Sqlite).await;
    let echoed = |id: String| {
        let b = &b;
        async move {
            let r = b
                .http
                .get(b.url("/healthz"))
                .header("x-request-id", id)
                .send()
                .await
                .unwrap();
            r.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    for good in [
        "abc-123",
        "7f8e0c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b",
        "req_01H.X:y/z+w=",
    ] {
        assert_eq!(echoed(good.to_owned()).await, good);
    }
    let ours = echoed(String::new()).await;
    for bad in [
        "x".repeat(129),
        "two words".to_owned(),
        "quote\"d".to_owned(),
        "semi;colon".to_owned(),
        "é-accent".to_owned(),
    ] {
        let got = echoed(bad.clone()).await;
        assert_ne!(got, bad, "{bad:?} was kept");
        // The broker's own form: the process prefix, a dash, a counter.
        assert_eq!(got.split('-').next(), ours.split('-').next(), "{got}");
    }
}
