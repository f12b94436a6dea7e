//! The client-side commands end to end: `token`, `call`, `proxy`, `doctor`, spawned as
//! the real binary against a real broker (testkit) and an upstream API written here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_testkit::{Backend, TestBroker};
use axum::http::HeaderMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_auth-broker");

/// Runs the binary off the async runtime's threads.
async fn run(envs: Vec<(&'static str, String)>, args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(BIN);
        for k in [
            "AUTH_BROKER_TOKEN_URL",
            "AUTH_BROKER_CLIENT_ID",
            "AUTH_BROKER_CLIENT_SECRET",
            "AUTH_BROKER_SCOPE",
            "AUTH_BROKER_LOG",
        ] {
            cmd.env_remove(k);
        }
        let out = cmd.envs(envs).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

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
        let status = if auth.starts_with("Bearer ey") {
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
