//! The client-side commands end to end: `token`, `call`, `proxy`, `doctor`, spawned as
//! the real binary against a real broker (testkit) and an upstream API written here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_testkit::flaky::{Behaviour, FlakyEndpoint};
use auth_broker_testkit::{Backend, TestBroker};
use axum::http::HeaderMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{BIN, run};

fn creds(b: &TestBroker, id: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AUTH_BROKER_TOKEN_URL", b.token_url()),
        ("AUTH_BROKER_CLIENT_ID", id.to_owned()),
        ("AUTH_BROKER_CLIENT_SECRET", secret.to_owned()),
    ]
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// An upstream API that echoes what it got, and refuses requests without a bearer token.
async fn echo_api() -> String {
    async fn echo(req: axum::extract::Request) -> (axum::http::StatusCode, String) {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let h: &HeaderMap = &parts.headers;
        let auth = h
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        // JWTs from the broker, or the `tok-N` tokens of the testkit's flaky endpoint.
        let status = if auth.starts_with("Bearer ey") || auth.starts_with("Bearer tok-") {
            200
        } else {
            401
        };
        let x = h
            .get("x-custom")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            format!(
                "{} {} auth={} x-custom={} body={}",
                parts.method,
                parts.uri,
                auth.split('.').next().unwrap_or(""),
                x,
                String::from_utf8_lossy(&body)
            ),
        )
    }
    let app = axum::Router::new().fallback(echo);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_the_bare_token_or_json_with_an_awkward_secret() {
    let b = TestBroker::start(Backend::Sqlite).await;
    let secret = "a/b+c=d:e%f";
    b.insert_client("cli-client", secret, "read write").await;
    let (code, out, err) = run(creds(&b, "cli-client", secret), args(&["token"])).await;
    assert_eq!(code, 0, "{err}");
    let t = out.trim();
    assert_eq!(t.split('.').count(), 3, "a bare JWT: {out}");
    let r = b
        .http
        .get(b.url("/auth-broker/token-info"))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (code, out, err) = run(
        creds(&b, "cli-client", secret),
        args(&["token", "--json", "--scope", "read", "--auth", "post"]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["scope"], "read");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["token_type"], "bearer");

    // Wrong secret: exit 1 with the server's error, and never the secret.
    let (code, _, err) = run(creds(&b, "cli-client", "wrong-secret"), args(&["token"])).await;
    assert_eq!(code, 1);
    assert!(err.contains("invalid_client"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
    // Missing settings are bad usage.
    let (code, _, err) = run(vec![], args(&["token"])).await;
    assert_eq!(code, 2, "{err}");
}

/// INTERFACE §3: flags, then `AUTH_BROKER_*`, then the settings file, for the client
/// commands as for `serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_read_the_settings_file_after_flags_and_environment() {
    let b = TestBroker::start(Backend::Sqlite).await;
    b.insert_client("file-client", "right-secret", "read write")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth-broker.toml");
    let write = |secret: &str, extra: &str| {
        std::fs::write(
            &file,
            format!(
                "token_url = \"{}\"\nclient_id = \"file-client\"\nclient_secret = \"{secret}\"\n{extra}",
                b.token_url()
            ),
        )
        .unwrap();
    };
    let config = file.to_str().unwrap().to_owned();
    let with_config = |rest: &[&str]| {
        let mut a = vec!["--config".to_owned(), config.clone()];
        a.extend(rest.iter().map(|s| (*s).to_owned()));
        a
    };

    // Everything from the file, including how to authenticate and the scope.
    write(
        "right-secret",
        "client_auth = \"post\"\nscope = \"read\"\ntoken_timeout = \"5s\"\n",
    );
    let (code, out, err) = run(vec![], with_config(&["token", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["scope"], "read", "the file's scope was sent");

    // The environment wins over the file, and a flag over both.
    write("wrong-secret", "");
    let (code, _, err) = run(vec![], with_config(&["token"])).await;
    assert_eq!(code, 1, "the file's wrong secret was used: {err}");
    let env = vec![("AUTH_BROKER_CLIENT_SECRET", "right-secret".to_owned())];
    let (code, _, err) = run(env.clone(), with_config(&["token"])).await;
    assert_eq!(code, 0, "the environment's secret wins: {err}");
    let (code, _, err) = run(
        env,
        with_config(&["token", "--client-secret", "flag-wrong"]),
    )
    .await;
    assert_eq!(code, 1, "the flag's secret wins: {err}");

    // A bad value in the file is bad usage, and says where it came from.
    write("right-secret", "token_timeout = \"soon\"\n");
    let (code, _, err) = run(vec![], with_config(&["token"])).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("token_timeout") && err.contains("settings file"),
        "{err}"
    );

    // Nothing anywhere: each missing setting and its three sources are named.
    std::fs::write(&file, "").unwrap();
    let (code, _, err) = run(vec![], with_config(&["doctor"])).await;
    assert_eq!(code, 2, "{err}");
    for k in [
        "--token-url",
        "AUTH_BROKER_CLIENT_ID",
        "client_secret in auth-broker.toml",
    ] {
        assert!(err.contains(k), "{k} in {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_signs_like_curl_and_fails_on_http_errors() {
    let b = TestBroker::start(Backend::Sqlite).await;
    let (id, secret) = b.create_client("caller", "", None).await;
    let api = echo_api().await;
    let env = creds(&b, &id, secret.expose_secret());
    let (code, out, err) = run(
        env.clone(),
        args(&[
            "call",
            "-X",
            "put",
            "-H",
            "X-Custom: yes",
            "-H",
            "Authorization: Basic nope",
            "-d",
            "hello",
            &format!("{api}/things/1?x=2"),
        ]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("PUT /things/1?x=2 auth=Bearer eyJ"),
        "{out}"
    );
    assert!(
        out.ends_with(" x-custom=yes body=hello"),
        "incoming Authorization replaced: {out}"
    );
    // The token endpoint itself as the "API": 405 is an HTTP error -> exit 1, status on stderr.
    let (code, _, err) = run(env.clone(), args(&["call", &b.token_url()])).await;
    assert_eq!(code, 1);
    assert!(err.contains("405"), "{err}");
    let (code, _, err) = run(env, args(&["call", "-H", "no colon", &api])).await;
    assert_eq!(code, 2, "{err}");
}

/// A running `auth-broker proxy`.
struct Proxy {
    child: std::process::Child,
    base: String,
}

impl Proxy {
    fn start(env: Vec<(&'static str, String)>, upstream: &str) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.envs(env)
            .env("AUTH_BROKER_LOG", "warn")
            .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", upstream])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .to_owned();
        Self { child, base }
    }

    fn stop(mut self) -> i32 {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_forwards_everything_signed_and_shuts_down_gracefully() {
    let b = TestBroker::start(Backend::Sqlite).await;
    let (id, secret) = b.create_client("proxied", "", None).await;
    let api = echo_api().await;
    let env = creds(&b, &id, secret.expose_secret());
    let p = tokio::task::spawn_blocking({
        let api = api.clone();
        move || Proxy::start(env, &format!("{api}/base"))
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let r = http
        .patch(format!("{}/a/b?q=1&r=two", p.base))
        .header("authorization", "Bearer stolen")
        .header("x-custom", "kept")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = r.text().await.unwrap();
    assert!(
        out.starts_with("PATCH /base/a/b?q=1&r=two auth=Bearer eyJ"),
        "{out}"
    );
    assert!(out.ends_with("x-custom=kept body=payload"), "{out}");
    // A streamed (chunked) body.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>("chunk1 "), Ok("chunk2")]);
    let r = http
        .post(format!("{}/s", p.base))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().ends_with("body=chunk1 chunk2"));
    // The broker goes away: the cached token keeps being used.
    b.stop().await;
    let r = http.get(format!("{}/after", p.base)).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "served from the cached token during a token endpoint outage"
    );
    let code = tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    assert_eq!(code, 0, "graceful shutdown on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_on_a_good_setup_and_explains_failures() {
    let b = TestBroker::start(Backend::Sqlite).await;
    let secret = "x/y+z=w:v%u";
    b.insert_client("doc", secret, "").await;
    let api = echo_api().await;
    let (code, out, err) = run(
        creds(&b, "doc", secret),
        args(&["doctor", "--api", &format!("{api}/check")]),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    for step in [
        "warn  token URL",
        "ok    DNS",
        "ok    TCP",
        "ok    endpoint",
        "ok    token request",
        "ok    token: JWT",
        "ok    token-info",
        "ok    API call",
    ] {
        assert!(out.contains(step), "missing '{step}' in:\n{out}");
    }
    assert!(
        !out.contains(secret) && !out.contains("x%2Fy"),
        "the secret is never printed"
    );

    // Wrong secret: the token request fails with the server's error and the cause.
    let (code, out, _) = run(creds(&b, "doc", "not-it"), args(&["doctor"])).await;
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  token request") && out.contains("invalid_client"),
        "{out}"
    );
    assert!(out.contains("wrong credentials"), "{out}");

    // The API refuses the header the way an API with another scheme would.
    let (code, out, _) = run(
        creds(&b, "doc", secret),
        args(&[
            "doctor",
            "--api",
            &format!("{}/auth-broker/request-token", b.base),
        ]),
    )
    .await;
    assert_eq!(code, 0, "a 405 from the API is not an auth failure: {out}");

    // Nothing listens: TCP fails.
    let env = vec![
        (
            "AUTH_BROKER_TOKEN_URL",
            "http://127.0.0.1:1/auth-broker/request-token".to_owned(),
        ),
        ("AUTH_BROKER_CLIENT_ID", "x".to_owned()),
        ("AUTH_BROKER_CLIENT_SECRET", "y".to_owned()),
    ];
    let (code, out, _) = run(env, args(&["doctor"])).await;
    assert_eq!(code, 1);
    assert!(out.contains("FAIL  TCP"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_explains_a_401_from_the_api() {
    let b = TestBroker::start(Backend::Sqlite).await;
    b.insert_client("doc2", "s3cret", "").await;
    // An API that refuses every bearer token.
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer realm=\"api\"")],
            "no",
        )
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/x", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let (code, out, _) = run(
        creds(&b, "doc2", "s3cret"),
        args(&["doctor", "--api", &api]),
    )
    .await;
    assert_eq!(code, 1);
    assert!(out.contains("FAIL  API call"), "{out}");
    assert!(out.contains("the broker accepts the token"), "{out}");
}

/// The proxy against a token endpoint that is down, slow beyond the timeout, or
/// answering garbage: with no usable token each request gets a prompt, clear error
/// (`503` + `Retry-After` when it may pass, `502` when the answer makes no sense) and
/// is not forwarded; with a cached token requests keep flowing; when the endpoint is
/// back the proxy recovers without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_rides_out_a_token_endpoint_that_is_down_slow_or_broken() {
    let api = echo_api().await;
    // Down from the start: the proxy starts anyway (a transient failure).
    let ep = FlakyEndpoint::start(Behaviour::Down).await;
    let env = vec![
        ("AUTH_BROKER_TOKEN_URL", ep.url()),
        ("AUTH_BROKER_CLIENT_ID", "proxied".to_owned()),
        ("AUTH_BROKER_CLIENT_SECRET", "s3cret".to_owned()),
        ("AUTH_BROKER_TOKEN_TIMEOUT", "300ms".to_owned()),
    ];
    let p = tokio::task::spawn_blocking({
        let api = api.clone();
        move || Proxy::start(env, &api)
    })
    .await
    .unwrap();
    // The client's own timeout is long: the proxy must answer well before it.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let get = |path: &str| http.get(format!("{}{path}", p.base)).send();
    let expect = async |what: &str, status: u16, says: &str| {
        let started = Instant::now();
        let r = get("/thing").await.unwrap();
        let took = started.elapsed();
        assert_eq!(r.status(), status, "{what}");
        if status == 503 {
            assert!(r.headers().contains_key("retry-after"), "{what}");
        }
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{what}: {body}");
        assert!(took < Duration::from_secs(6), "{what}: took {took:?}");
        eprintln!("proxy, {what}: {status} in {took:?}");
        body
    };

    expect("down, no token", 503, "cannot reach the token endpoint").await;
    // Tokens that are never usable twice: every request needs the endpoint.
    let short_lived = Behaviour::Token { expires_in: 0 };
    ep.set(short_lived.clone()).await;
    expect("back up", 200, "auth=Bearer tok-").await;
    for (what, slow) in [
        ("never answers", Behaviour::Blackhole),
        (
            "answers after 3 s",
            Behaviour::Late {
                after: Duration::from_secs(3),
                then: Box::new(short_lived.clone()),
            },
        ),
        ("stalls mid-body", Behaviour::StallMidBody),
    ] {
        ep.set(slow).await;
        expect(what, 503, "did not answer within 300ms").await;
    }
    for (what, garbage, status, says) in [
        (
            "HTML 200",
            Behaviour::raw(200, "text/html", "<html>portal</html>"),
            502,
            "not an RFC 6749 token response",
        ),
        (
            "truncated JSON",
            Behaviour::raw(200, "application/json", r#"{"access_token":"x"#),
            502,
            "EOF while parsing",
        ),
        (
            "200 without access_token",
            Behaviour::raw(200, "application/json", r#"{"token_type":"bearer"}"#),
            502,
            "missing field `access_token`",
        ),
        (
            "500",
            Behaviour::raw(500, "text/html", "<h1>oops</h1>"),
            503,
            "answered 500 with an unexpected body: <h1>oops</h1>",
        ),
        (
            "non-UTF-8",
            Behaviour::raw(200, "application/json", b"\xff\xfe\x00".to_vec()),
            502,
            "not an RFC 6749 token response",
        ),
    ] {
        ep.set(garbage).await;
        expect(what, status, says).await;
    }
    ep.set(short_lived).await;
    expect("recovered", 200, "auth=Bearer tok-").await;

    // A cached token that is still valid carries requests through every fault.
    ep.set(Behaviour::Token { expires_in: 3600 }).await;
    expect("long-lived token", 200, "auth=Bearer tok-").await;
    for (what, fault) in [
        ("cached, endpoint down", Behaviour::Down),
        ("cached, endpoint silent", Behaviour::Blackhole),
        (
            "cached, endpoint answers garbage",
            Behaviour::raw(200, "text/html", "<html/>"),
        ),
    ] {
        ep.set(fault).await;
        expect(what, 200, "auth=Bearer tok-").await;
    }
    let code = tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    assert_eq!(code, 0);

    // Refused credentials are not an outage: the proxy does not start.
    ep.set(Behaviour::raw(
        401,
        "application/json",
        r#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
    ))
    .await;
    let env = vec![
        ("AUTH_BROKER_TOKEN_URL", ep.url()),
        ("AUTH_BROKER_CLIENT_ID", "proxied".to_owned()),
        ("AUTH_BROKER_CLIENT_SECRET", "wrong".to_owned()),
    ];
    let (code, _, err) = run(
        env,
        args(&["proxy", "--listen", "127.0.0.1:0", "--upstream", &api]),
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("invalid_client") && err.contains("auth-broker doctor"),
        "{err}"
    );
}
