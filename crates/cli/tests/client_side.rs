//! The client-side commands end to end: `token`, `call`, `proxy`, `doctor`, spawned as
//! the real binary against a real broker (testkit) and an upstream API written here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_testkit::flaky::{Behaviour, FlakyEndpoint};
use auth_broker_testkit::{Backend, TestBroker};
use axum::http::HeaderMap;
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

    // A key no setting has is bad usage too, named (a typo must not pass silently).
    write("right-secret", "scopes = \"read\"\n");
    let (code, _, err) = run(vec![], with_config(&["token"])).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown key 'scopes'"), "{err}");

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
    /// Starts the proxy; panics when it has not said where it listens within `limit`.
    fn start_within(env: Vec<(&'static str, String)>, upstream: &str, limit: Duration) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.envs(env)
            .env("AUTH_BROKER_LOG", "warn")
            .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", upstream])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let lines = common::line_channel(child.stdout.take().unwrap());
        let line = match lines.recv_timeout(limit) {
            Ok(line) => line,
            other => {
                let _ = child.kill();
                panic!("the proxy did not start listening within {limit:?}: {other:?}");
            }
        };
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .to_owned();
        Self { child, base }
    }

    /// [`Proxy::start_within`] off the async runtime's threads.
    async fn launch(env: Vec<(&'static str, String)>, upstream: String, limit: Duration) -> Self {
        tokio::task::spawn_blocking(move || Self::start_within(env, &upstream, limit))
            .await
            .unwrap()
    }

    /// [`Proxy::stop`] off the async runtime's threads.
    async fn shut(self) -> i32 {
        tokio::task::spawn_blocking(move || self.stop())
            .await
            .unwrap()
    }

    fn stop(mut self) -> i32 {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

/// A test that fails before `stop` leaves no proxy running.
impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_forwards_everything_signed_and_shuts_down_gracefully() {
    let b = TestBroker::start(Backend::Sqlite).await;
    let (id, secret) = b.create_client("proxied", "", None).await;
    let api = echo_api().await;
    let env = creds(&b, &id, secret.expose_secret());
    let p = Proxy::launch(env, format!("{api}/base"), Duration::from_secs(60)).await;
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
    let code = p.shut().await;
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
    let p = Proxy::launch(env, api.clone(), Duration::from_secs(60)).await;
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
    let code = p.shut().await;
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

// ---- Issue 13: what an integrator found ----

fn flaky_env(ep: &FlakyEndpoint) -> Vec<(&'static str, String)> {
    vec![
        ("AUTH_BROKER_TOKEN_URL", ep.url()),
        ("AUTH_BROKER_CLIENT_ID", "app".to_owned()),
        ("AUTH_BROKER_CLIENT_SECRET", "s3cret-value".to_owned()),
    ]
}

const GOOD: Behaviour = Behaviour::Token { expires_in: 3599 };

/// Sends `request` as written over a fresh connection and returns the whole answer
/// (the request should say `Connection: close`).
async fn raw_request(base: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A request as an upstream API saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: String,
}

type SeenLog = std::sync::Arc<std::sync::Mutex<Vec<Seen>>>;

/// An upstream API that records every request and answers `401` to `refuse` (an
/// `Authorization` value), else `200` with a 1234-byte body (so `HEAD` answers carry a
/// `Content-Length` of 1234).
async fn recording_api(refuse: &'static str) -> (String, SeenLog) {
    let seen = SeenLog::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let auth = parts
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            log.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                headers: parts.headers.clone(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            if auth == refuse || auth.is_empty() {
                (axum::http::StatusCode::UNAUTHORIZED, String::new())
            } else {
                (axum::http::StatusCode::OK, "x".repeat(1234))
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (base, seen)
}

/// A proxy to [`recording_api`] (at `path` under it) with tokens from a good flaky
/// endpoint.
async fn proxied(refuse: &'static str, path: &str) -> (FlakyEndpoint, Proxy, SeenLog) {
    let ep = FlakyEndpoint::start(GOOD).await;
    let (api, seen) = recording_api(refuse).await;
    let p = Proxy::launch(
        flaky_env(&ep),
        format!("{api}{path}"),
        Duration::from_secs(60),
    )
    .await;
    (ep, p, seen)
}

/// Issue 13.1: `expires_in` of 2^63 and more is cut to the longest lifetime believed,
/// with a warning; `token` prints the token and `proxy` starts and signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_expires_in_is_capped_with_a_warning_not_a_panic() {
    for expires_in in ["9223372036854775808", "18446744073709551615", "1e300"] {
        let ep = FlakyEndpoint::start(Behaviour::raw(
            200,
            "application/json",
            format!(
                r#"{{"access_token":"tok-huge","token_type":"bearer","expires_in":{expires_in}}}"#
            ),
        ))
        .await;
        let (code, out, err) = run(flaky_env(&ep), args(&["token"])).await;
        assert_eq!(code, 0, "{expires_in}: {err}");
        assert_eq!(out.trim(), "tok-huge");
        assert!(
            err.contains("longer than the longest"),
            "{expires_in}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let ep = FlakyEndpoint::start(Behaviour::raw(
        200,
        "application/json",
        r#"{"access_token":"tok-huge","token_type":"bearer","expires_in":9223372036854775808}"#,
    ))
    .await;
    let (api, seen) = recording_api("none").await;
    let env = flaky_env(&ep);
    let p = Proxy::launch(env, api, Duration::from_secs(20)).await;
    let r = reqwest::get(format!("{}/x", p.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        seen.lock().unwrap()[0].headers["authorization"],
        "Bearer tok-huge"
    );
    p.shut().await;
}

/// Issue 13.9: `token --json` prints every member of the response as sent; a BOM and a
/// string `expires_in` are read as common libraries read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_json_prints_every_member_and_reads_leniently() {
    let ep = FlakyEndpoint::start(Behaviour::raw(
        200,
        "application/json",
        "\u{feff}{\"access_token\":\"tok-a\",\"token_type\":\"Bearer\",\"expires_in\":\"3599\",\"scope\":\"read\",\"refresh_token\":\"r-1\",\"ext\":{\"tier\":2}}",
    ))
    .await;
    let (code, out, err) = run(flaky_env(&ep), args(&["token", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"access_token": "tok-a", "token_type": "Bearer", "expires_in": "3599",
            "scope": "read", "refresh_token": "r-1", "ext": {"tier": 2}})
    );
}

/// Issue 13.2: a `307` from the token URL to another origin is not followed: the
/// secret (here in a `client_secret_post` body) never gets there; the error names the
/// status and the `Location`, and `doctor` says to use the final URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_request_follows_no_redirect() {
    let elsewhere = FlakyEndpoint::start(GOOD).await;
    for status in [307, 301, 302, 308] {
        let ep = FlakyEndpoint::start(
            Behaviour::raw(status, "text/plain", "moved").with_header("location", &elsewhere.url()),
        )
        .await;
        let (code, out, err) = run(flaky_env(&ep), args(&["token", "--auth", "post"])).await;
        assert_eq!(code, 1, "{status}: {out}{err}");
        assert!(
            err.contains(&status.to_string()) && err.contains(&elsewhere.url()),
            "{status}: {err}"
        );
        let (code, out, _) = run(flaky_env(&ep), args(&["doctor"])).await;
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("FAIL  token request")
                && out.contains(&elsewhere.url())
                && out.contains("final URL"),
            "{out}"
        );
    }
    assert_eq!(elsewhere.requests(), 0, "nothing reached the other origin");
}

/// Issue 13.3: the proxy replays a bodyless request once with a fresh token after a
/// `401`, for every method, and keeps the client's framing: no `Transfer-Encoding`
/// invented for a bodyless request, a chunked body on a `GET` forwarded, `HEAD`
/// answers with their `Content-Length`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_replays_bodyless_requests_after_a_401_and_keeps_the_framing() {
    // The API refuses the first token, as when it was revoked or expired in flight.
    let (_ep, p, seen) = proxied("Bearer tok-1", "").await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/a", p.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "replayed with a fresh token");
    for method in ["DELETE", "OPTIONS", "POST", "PUT", "PATCH"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = http
            .request(m, format!("{}/m", p.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
    }
    let r = http.head(format!("{}/h", p.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        "1234",
        "HEAD keeps its Content-Length"
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].headers["authorization"], "Bearer tok-1");
        assert_eq!(seen[1].headers["authorization"], "Bearer tok-2");
        for s in seen.iter() {
            assert!(
                !s.headers.contains_key("transfer-encoding"),
                "{} {}: chunked invented for a bodyless request",
                s.method,
                s.uri
            );
        }
        let get = &seen[1];
        assert!(
            !get.headers.contains_key("content-length"),
            "a bodyless GET stays without Content-Length: {:?}",
            get.headers
        );
    }
    // A chunked body on a GET is forwarded, not dropped.
    let answer = raw_request(
        &p.base,
        "GET /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (last.uri.as_str(), last.body.as_str()),
        ("/chunked", "hello")
    );
    p.shut().await;
}

/// Issue 13.4: `..` (also as `%2e%2e`) cannot leave `--upstream`'s path prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_refuses_paths_that_leave_the_upstream_prefix() {
    let (_ep, p, seen) = proxied("none", "/v1").await;
    for path in [
        "/../../admin/secret",
        "/%2e%2e/%2E%2E/admin/secret",
        "/a/../../admin/secret",
        "/..",
        "/.%2e/admin",
    ] {
        let answer = raw_request(
            &p.base,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing was forwarded");
    let answer = raw_request(
        &p.base,
        "GET /a/../b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(seen.lock().unwrap()[0].uri, "/v1/b");
    p.shut().await;
}

/// Issue 13.6: without a usable token the proxy starts listening at once and answers
/// `503` + `Retry-After` promptly, against a hung endpoint (default token timeout) and
/// against one asking to come back in 60 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_answers_503_promptly_and_starts_at_once_without_a_token() {
    let (api, seen) = recording_api("none").await;
    for (what, behaviour) in [
        ("hung", Behaviour::Blackhole),
        (
            "Retry-After 60",
            Behaviour::raw(
                503,
                "application/json",
                r#"{"error":"temporarily_unavailable"}"#,
            )
            .with_header("retry-after", "60"),
        ),
    ] {
        let ep = FlakyEndpoint::start(behaviour).await;
        let env = flaky_env(&ep);
        let started = Instant::now();
        let p = Proxy::launch(env, api.clone(), Duration::from_secs(10)).await;
        eprintln!("{what}: listening after {:?}", started.elapsed());
        for _ in 0..2 {
            let started = Instant::now();
            let r = reqwest::get(format!("{}/x", p.base)).await.unwrap();
            let took = started.elapsed();
            assert_eq!(r.status(), 503, "{what}");
            assert!(r.headers().contains_key("retry-after"), "{what}");
            assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
            eprintln!("{what}: 503 after {took:?}");
        }
        p.shut().await;
    }
    assert!(seen.lock().unwrap().is_empty());
}

/// Issue 13.10: headers named in `Connection` are hop-by-hop (RFC 9110 §7.6.1) and
/// not forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_drops_headers_named_in_connection() {
    let (_ep, p, seen) = proxied("none", "").await;
    let answer = raw_request(
        &p.base,
        "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close, X-Hop-A\r\nConnection: x-hop-b\r\nX-Hop-A: 1\r\nX-Hop-B: 2\r\nX-Kept: 3\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let s = seen.lock().unwrap()[0].clone();
    assert!(
        !s.headers.contains_key("x-hop-a") && !s.headers.contains_key("x-hop-b"),
        "{:?}",
        s.headers
    );
    assert_eq!(s.headers["x-kept"], "3");
    p.shut().await;
}

/// Every line of `logs` as the JSON object it must be, each with the members every
/// line has.
fn json_log_lines(logs: &str) -> Vec<serde_json::Value> {
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for v in &lines {
        for k in ["timestamp", "level", "target", "message"] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
    }
    lines
}

/// Issue 13.10: `--log-format json` (or `AUTH_BROKER_LOG_FORMAT=json`) writes one JSON
/// object per line; text logs have no colour when stderr is not a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_on_request_and_colourless_off_a_terminal() {
    let ep = FlakyEndpoint::start(GOOD).await;
    let mut env = flaky_env(&ep);
    env.push(("AUTH_BROKER_LOG", "debug".to_owned()));
    let (code, _, err) = run(env.clone(), args(&["token"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("fetched a new access token"), "{err}");
    assert!(!err.contains('\x1b'), "no colour into a pipe: {err:?}");

    // On a terminal (script(1) gives the command one): colour, unless NO_COLOR is set.
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-c", &format!("{BIN} token"), "/dev/null"])
            .envs(env.clone());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let tty = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{tty}");
        assert!(tty.contains("fetched a new access token"), "{tty}");
        assert_eq!(
            tty.contains("\x1b["),
            coloured,
            "NO_COLOR={no_color:?}: {tty:?}"
        );
    }

    for how in [
        (args(&["--log-format", "json", "token"]), None),
        (args(&["token"]), Some("json")),
    ] {
        let mut env = env.clone();
        if let Some(f) = how.1 {
            env.push(("AUTH_BROKER_LOG_FORMAT", f.to_owned()));
        }
        let (code, _, err) = run(env, how.0).await;
        assert_eq!(code, 0, "{err}");
        let n = json_log_lines(&err).len();
        assert!(n > 0 && err.contains("fetched a new access token"), "{err}");
        assert!(!err.contains("s3cret-value"), "{err}");
    }
}

/// Runs `auth-broker` with `stdin` fed in, like [`run`].
async fn run_with_stdin(
    envs: Vec<(&'static str, String)>,
    args: Vec<String>,
    stdin: &'static [u8],
) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("AUTH_BROKER_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .envs(envs)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// Issue 13.7: `call` takes `-d`, `-d @file`, `-d @-` and `--data-binary` as curl does,
/// and `-i`, `-o FILE`, `-s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_takes_data_include_output_and_silent_as_curl_does() {
    let ep = FlakyEndpoint::start(GOOD).await;
    let api = echo_api().await;
    let env = flaky_env(&ep);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.txt");
    std::fs::write(&file, "line1\r\nline2\n").unwrap();
    let at_file = format!("@{}", file.display());
    let url = format!("{api}/d");
    for (argv, stdin, body) in [
        (vec!["-d", "a=1", "-d", "b=2"], &b""[..], "a=1&b=2"),
        (vec!["-d", &at_file], b"", "line1line2"),
        (vec!["--data-binary", &at_file], b"", "line1\r\nline2\n"),
        (vec!["-d", "@-"], b"from\nstdin", "fromstdin"),
        (vec!["--data-binary", "@-"], b"from\nstdin", "from\nstdin"),
        (vec!["-d", "x=1", "--data-binary", "y=2"], b"", "x=1&y=2"),
    ] {
        let mut a = vec!["call"];
        a.extend(argv.iter().copied());
        a.push(&url);
        let (code, out, err) = run_with_stdin(env.clone(), args(&a), stdin).await;
        assert_eq!(code, 0, "{argv:?}: {err}");
        assert!(out.starts_with("POST /d "), "{argv:?}: {out}");
        assert!(out.ends_with(&format!("body={body}")), "{argv:?}: {out:?}");
    }
    // -i: the status line and headers first.
    let (code, out, err) = run(env.clone(), args(&["call", "-i", &url])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\ncontent-type: text/plain"), "{out}");
    assert!(out.contains("\r\n\r\nGET /d "), "{out}");
    // -o: the body to a file, nothing on stdout.
    let saved = dir.path().join("out.txt");
    let (code, out, err) = run(
        env.clone(),
        args(&["call", "-o", saved.to_str().unwrap(), &url]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        std::fs::read_to_string(&saved)
            .unwrap()
            .starts_with("GET /d ")
    );
    // -s: an HTTP error, or no token, exits 1 without a word on stderr.
    let missing = FlakyEndpoint::start(Behaviour::raw(404, "text/plain", "no such thing")).await;
    let (code, _, err) = run(env.clone(), args(&["call", "-s", &missing.url()])).await;
    assert_eq!(code, 1);
    assert!(err.is_empty(), "{err}");
    let down = FlakyEndpoint::start(Behaviour::Down).await;
    let (code, _, err) = run(flaky_env(&down), args(&["call", "-s", &url])).await;
    assert_eq!(code, 1);
    assert!(err.is_empty(), "{err}");
    let (code, _, err) = run(env, args(&["call", &missing.url()])).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
}

/// Issue 13.7: `call` writes the body as it arrives (server-sent events, downloads),
/// names a transport error's cause once, and prints the 401 hint once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_streams_and_says_each_failure_once() {
    let ep = FlakyEndpoint::start(GOOD).await;
    // An event stream: the first event, then nothing until the test has seen it.
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let wait = std::sync::Arc::new(tokio::sync::Mutex::new(Some(wait)));
    let app = axum::Router::new()
        .route(
            "/events",
            axum::routing::get(move || {
                let wait = wait.clone();
                async move {
                    let rx = wait.lock().await.take().unwrap();
                    let events = futures_util::stream::once(async {
                        Ok::<_, std::io::Error>("data: first\n\n".to_owned())
                    })
                    .chain(futures_util::stream::once(async move {
                        let _ = rx.await;
                        Ok("data: second\n\n".to_owned())
                    }));
                    (
                        [("content-type", "text/event-stream")],
                        axum::body::Body::from_stream(events),
                    )
                }
            }),
        )
        .route(
            "/refuse",
            axum::routing::get(|| async { axum::http::StatusCode::UNAUTHORIZED }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    use futures_util::StreamExt;

    let mut child = Command::new(BIN)
        .envs(flaky_env(&ep))
        .args(["call", &format!("{api}/events")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let rx = common::line_channel(child.stdout.take().unwrap());
    let first = tokio::task::spawn_blocking(move || {
        let got = rx.recv_timeout(Duration::from_secs(20));
        (got, rx)
    })
    .await
    .unwrap();
    let (got, rx) = first;
    if got.is_err() {
        let _ = child.kill();
    }
    assert_eq!(
        got.unwrap(),
        "data: first",
        "the first event before the stream ends"
    );
    go.send(()).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.contains(&"data: second".to_owned()), "{rest:?}");

    // Nothing listens: the cause, once.
    let (code, _, err) = run(flaky_env(&ep), args(&["call", "http://127.0.0.1:1/x"])).await;
    assert_eq!(code, 1);
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
    assert!(
        !err.contains("error sending request: error sending request"),
        "{err}"
    );
    // The token endpoint refuses connections: its cause, once.
    let down = FlakyEndpoint::start(Behaviour::Down).await;
    let (code, _, err) = run(flaky_env(&down), args(&["call", &format!("{api}/refuse")])).await;
    assert_eq!(code, 1);
    let error = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert_eq!(error.matches("Connection refused").count(), 1, "{err}");
    // A 401 after the replay: the hint, once.
    let (code, _, err) = run(flaky_env(&ep), args(&["call", &format!("{api}/refuse")])).await;
    assert_eq!(code, 1);
    assert_eq!(err.matches("auth-broker doctor").count(), 1, "{err}");
}

/// Issue 13.8: `doctor` names the right cause every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_right_cause_every_time() {
    let json = "application/json";
    let token = |extra: &str| {
        format!(r#"{{"access_token":"opaque-tok","token_type":"bearer","expires_in":3599{extra}}}"#)
    };
    // (what, the endpoint, said, never said, exit code)
    type Case = (
        &'static str,
        Behaviour,
        Vec<&'static str>,
        Vec<&'static str>,
        i32,
    );
    let cases: Vec<Case> = vec![
        (
            "hung",
            Behaviour::Blackhole,
            vec!["FAIL  endpoint", "did not answer within 1s"],
            vec!["TLS"],
            1,
        ),
        (
            "wants JSON",
            Behaviour::raw(
                400,
                json,
                r#"{"error":"invalid_request","error_description":"expected a JSON body"}"#,
            ),
            vec!["FAIL  token request", "wants a JSON body"],
            vec!["Send Content-Type"],
            1,
        ),
        (
            "a teapot",
            Behaviour::raw(418, "text/html", "<p>short and stout</p>"),
            vec!["418", "text/html", "<p>short and stout</p>"],
            vec!["see the server's error: \n"],
            1,
        ),
        (
            "mac",
            Behaviour::raw(
                200,
                json,
                r#"{"access_token":"t","token_type":"mac","expires_in":60}"#,
            ),
            vec!["token_type is 'mac'"],
            vec!["login page"],
            1,
        ),
        (
            "string expires_in",
            Behaviour::raw(200, json, token("").replace("3599", "\"3599\"")),
            vec!["warn  token response: expires_in is a string"],
            vec!["FAIL"],
            0,
        ),
        (
            "BOM",
            Behaviour::raw(200, json, format!("\u{feff}{}", token(""))),
            vec!["warn  token response: the body starts with a UTF-8 byte order mark"],
            vec!["FAIL"],
            0,
        ),
        (
            "too short to cache",
            Behaviour::raw(200, json, token("").replace("3599", "0")),
            vec!["warn  expires_in", "too short to cache"],
            vec!["FAIL"],
            0,
        ),
        (
            "429 with a date",
            Behaviour::raw(429, json, r#"{"error":"slow_down"}"#)
                .with_header("retry-after", "Wed, 21 Oct 2099 07:28:00 GMT"),
            vec!["Retry-After: Wed, 21 Oct 2099 07:28:00 GMT"],
            vec![],
            1,
        ),
    ];
    for (what, behaviour, says, never, exit) in cases {
        let ep = FlakyEndpoint::start(behaviour).await;
        let started = Instant::now();
        let (code, out, err) =
            run(flaky_env(&ep), args(&["doctor", "--token-timeout", "1s"])).await;
        assert_eq!(code, exit, "{what}: {out}{err}");
        for s in says {
            assert!(out.contains(s), "{what}: '{s}' in\n{out}");
        }
        for s in never {
            assert!(!out.contains(s), "{what}: not '{s}' in\n{out}");
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{what}");
    }
    // A refused token request: the server's description once, then cause and next step.
    let ep = FlakyEndpoint::start(Behaviour::raw(
        401,
        json,
        r#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
    ))
    .await;
    let (code, out, _) = run(flaky_env(&ep), args(&["doctor"])).await;
    assert_eq!(code, 1);
    assert_eq!(
        out.matches("client authentication failed").count(),
        1,
        "{out}"
    );
    assert!(out.contains("wrong credentials"), "{out}");
}

/// Issue 13.10: `serve` too writes one JSON object per line with `--log-format json`,
/// the request's span (its `id` the request id) included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_json_lines_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("AUTH_BROKER_DATABASE_URL")
        .env("AUTH_BROKER_LOG", "debug")
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = common::line_channel(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut { stderr }, &mut s).unwrap();
        s
    });
    let base = tokio::task::spawn_blocking(move || {
        let first = lines.recv_timeout(Duration::from_secs(30)).unwrap();
        // The banner ends with the token endpoint, once serving.
        while !lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
            .contains("token endpoint:")
        {}
        first
            .strip_prefix("auth-broker listening on ")
            .unwrap()
            .to_owned()
    })
    .await
    .unwrap();
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let logs = logs.join().unwrap();
    let with_id = json_log_lines(&logs)
        .iter()
        .filter(|v| v["span"]["id"] == id.as_str())
        .count();
    assert!(with_id > 0, "a line with the request id {id}:\n{logs}");
}

/// Issue 13.3: `call` replays a bodyless request after a `401` with a fresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_replays_a_bodyless_request_after_a_401() {
    let ep = FlakyEndpoint::start(GOOD).await;
    let (api, seen) = recording_api("Bearer tok-1").await;
    for method in ["GET", "DELETE", "HEAD"] {
        let (code, _, err) = run(
            flaky_env(&ep),
            args(&["call", "-X", method, &format!("{api}/r")]),
        )
        .await;
        assert_eq!(code, 0, "{method}: {err}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].headers["authorization"], "Bearer tok-1");
    assert_eq!(seen[1].headers["authorization"], "Bearer tok-2");
}

/// Issue 13.3, under load: 4-second tokens that the API stops taking a little early
/// (its clock ahead, or the token revoked) come back `401` in flight now and then; the
/// proxy replays each of those once with a fresh token, so every caller gets `200`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_replays_under_load_when_tokens_expire_in_flight() {
    let ep = FlakyEndpoint::start(Behaviour::Token { expires_in: 4 }).await;
    let first_seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        Instant,
    >::new()));
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().fallback({
        let (first_seen, refused) = (first_seen.clone(), refused.clone());
        move |headers: HeaderMap| {
            let (first_seen, refused) = (first_seen.clone(), refused.clone());
            async move {
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let since = *first_seen
                    .lock()
                    .unwrap()
                    .entry(auth)
                    .or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(1500) {
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    axum::http::StatusCode::UNAUTHORIZED
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let p = Proxy::launch(flaky_env(&ep), api, Duration::from_secs(60)).await;
    let until = Instant::now() + Duration::from_secs(5);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{}/load", p.base);
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut statuses = Vec::new();
                while Instant::now() < until {
                    statuses.push(http.get(&url).send().await.unwrap().status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        let statuses = w.await.unwrap();
        total += statuses.len();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    let refused = refused.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "{total} requests, {refused} refused in flight and replayed, {} token requests",
        ep.requests()
    );
    assert!(refused > 0, "the API refused some tokens in flight");
    assert!(ep.requests() >= 2);
    p.shut().await;
}

// ---- Issue 17.4: key-bound clients (private_key_jwt, DPoP, mutual TLS) ----

use auth_broker_testkit::keybound::{ClientKey, KeyBoundServer, Options as FakeOptions};

fn fake_env(fake: &KeyBoundServer) -> Vec<(&'static str, String)> {
    vec![
        ("AUTH_BROKER_TOKEN_URL", fake.token_url()),
        ("AUTH_BROKER_CLIENT_ID", "cli-app".to_owned()),
    ]
}

/// `env` with a client secret (the fake takes any).
fn with_secret(mut env: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    env.push(("AUTH_BROKER_CLIENT_SECRET", "s".into()));
    env
}

/// `token --private-key FILE --key-id KID`: the assertion the fake verifies with the
/// public key (jsonwebtoken) names the client and the token URL and carries the kid; the
/// bare token is printed. The key comes from the settings file too; a secret beside it,
/// half a client certificate, or an unreadable key file are refused clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_a_private_key_sends_a_verified_assertion() {
    let ck = ClientKey::generate(jsonwebtoken::Algorithm::ES256);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client-key.pem");
    std::fs::write(&key, &ck.pem).unwrap();
    let key = key.display().to_string();
    let fake = KeyBoundServer::start(FakeOptions {
        client: Some(("cli-app".into(), ck)),
        ..FakeOptions::default()
    })
    .await;
    let (code, out, err) = run(
        fake_env(&fake),
        args(&["token", "--private-key", &key, "--key-id", "k-2026"]),
    )
    .await;
    assert_eq!(code, 0, "{err} {:?}", fake.seen().refusals);
    assert_eq!(out.trim(), "tok-1");
    let seen = fake.seen();
    assert_eq!(seen.assertions[0]["sub"], "cli-app");
    assert_eq!(seen.assertions[0]["aud"], fake.token_url());
    assert_eq!(seen.assertion_headers[0]["kid"], "k-2026");
    assert_eq!(seen.assertion_headers[0]["alg"], "ES256");

    // From the settings file.
    let file = dir.path().join("auth-broker.toml");
    std::fs::write(&file, format!("private_key = {key:?}\n")).unwrap();
    let file = file.display().to_string();
    let (code, out, err) = run(fake_env(&fake), args(&["token", "--config", &file])).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "tok-2");

    // Contradictions are bad usage, named.
    let env = with_secret(fake_env(&fake));
    let (code, _, err) = run(env, args(&["token", "--private-key", &key])).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--private-key and --client-secret are mutually exclusive"),
        "{err}"
    );
    let (code, _, err) = run(fake_env(&fake), args(&["token", "--tls-client-cert", &key])).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--tls-client-cert and --tls-client-key go together"),
        "{err}"
    );
    let (code, _, err) = run(fake_env(&fake), args(&["token"])).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--private-key FILE"),
        "the alternatives are named: {err}"
    );
    // A file that holds no key: exit 1, naming the file and what it holds.
    let (code, _, err) = run(fake_env(&fake), args(&["token", "--private-key", &file])).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&file) && err.contains("no private key"),
        "{err}"
    );
}

/// `token --dpop --json`: the token request carries a proof (retried once with the
/// token endpoint's nonce), the whole response is printed with `token_type: DPoP`, and a
/// note says the key dies with the command. `AUTH_BROKER_DPOP=1` does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_dpop_json_prints_the_bound_token() {
    let fake = KeyBoundServer::start(FakeOptions {
        token_nonce: Some("as-n1".into()),
        ..FakeOptions::default()
    })
    .await;
    let mut env = with_secret(fake_env(&fake));
    let (code, out, err) = run(env.clone(), args(&["token", "--dpop", "--json"])).await;
    assert_eq!(code, 0, "{err} {:?}", fake.seen().refusals);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["token_type"], "DPoP");
    assert!(
        err.contains("bound to a DPoP key made for this run"),
        "{err}"
    );
    let seen = fake.seen();
    assert_eq!(seen.token_bodies.len(), 2, "one retry for the nonce");
    assert_eq!(seen.token_proofs[0]["nonce"], "as-n1");
    assert_eq!(seen.token_proofs[0]["htm"], "POST");

    env.push(("AUTH_BROKER_DPOP", "1".into()));
    let (code, out, err) = run(env, args(&["token", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"DPoP\""), "{out}");
}

/// `call --dpop`: `Authorization: DPoP` and a proof for the request (the fake verifies
/// htm, htu without the query, ath, the key of the token); the API's `401
/// use_dpop_nonce` is answered by one replay with the nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_dpop_signs_with_a_proof_and_replays_once_for_the_nonce() {
    let fake = KeyBoundServer::start(FakeOptions {
        api_nonce: Some("rs-n1".into()),
        ..FakeOptions::default()
    })
    .await;
    let env = with_secret(fake_env(&fake));
    let (code, out, err) = run(
        env,
        args(&[
            "call",
            "--dpop",
            "-X",
            "POST",
            "-d",
            "n=1",
            &fake.api("orders?x=1"),
        ]),
    )
    .await;
    assert_eq!(code, 0, "{err} {:?}", fake.seen().refusals);
    assert_eq!(out, "ok tok-1 n=1");
    let seen = fake.seen();
    assert_eq!(seen.api_authorization, ["DPoP tok-1", "DPoP tok-1"]);
    assert_eq!(seen.api_proofs.len(), 1);
    assert_eq!(seen.api_proofs[0]["nonce"], "rs-n1");
    assert_eq!(seen.api_proofs[0]["htu"], fake.api("orders"));
    assert_eq!(seen.api_proofs[0]["htm"], "POST");
}

/// `proxy --dpop`: each forwarded request gets its own proof for the upstream URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_dpop_signs_every_forwarded_request() {
    let fake = KeyBoundServer::start(FakeOptions::default()).await;
    let mut env = with_secret(fake_env(&fake));
    env.push(("AUTH_BROKER_DPOP", "1".into()));
    let proxy = Proxy::launch(env, fake.api("v1"), Duration::from_secs(30)).await;
    for path in ["/a?q=1", "/b"] {
        let r = reqwest::get(format!("{}{path}", proxy.base)).await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", fake.seen().refusals);
    }
    let seen = fake.seen();
    assert_eq!(seen.api_proofs.len(), 2);
    assert_eq!(seen.api_proofs[0]["htu"], fake.api("v1/a"));
    assert_ne!(seen.api_proofs[0]["jti"], seen.api_proofs[1]["jti"]);
    proxy.shut().await;
}

/// `doctor --dpop` against a token endpoint and an API that want nonces: it says so,
/// retries as the client does, and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_against_nonce_requiring_servers_and_says_so() {
    let fake = KeyBoundServer::start(FakeOptions {
        token_nonce: Some("as-n".into()),
        api_nonce: Some("rs-n".into()),
        ..FakeOptions::default()
    })
    .await;
    let env = with_secret(fake_env(&fake));
    let (code, out, err) = run(env, args(&["doctor", "--dpop", "--api", &fake.api("x")])).await;
    assert_eq!(code, 0, "{out}{err}");
    for says in [
        "ok    DPoP: ES256 key made for this run",
        "ok    DPoP nonce: the token endpoint requires a nonce",
        "ok    DPoP: token_type DPoP",
        "ok    API call: the server requires a nonce in DPoP proofs",
        "ok    API call: GET",
        "DPoP: header {\"alg\":\"ES256\",\"typ\":\"dpop+jwt\"",
    ] {
        assert!(out.contains(says), "'{says}' in\n{out}");
    }
}

/// `doctor` names each failure of key-bound clients in words, prints the server's
/// description once, and compares the clocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_explains_key_bound_failures_and_clock_skew() {
    let json = "application/json";
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(
        &key,
        ClientKey::generate(jsonwebtoken::Algorithm::ES256).pem,
    )
    .unwrap();
    let key = key.display().to_string();
    let ahead = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
    let refusal = |status: u16, error: &str, desc: &str| {
        Behaviour::raw(
            status,
            json,
            format!(r#"{{"error":"{error}","error_description":"{desc}"}}"#),
        )
    };
    // (what, the endpoint, --dpop, said)
    let cases: Vec<(&str, Behaviour, bool, Vec<&str>)> = vec![
        (
            "expired on a skewed server",
            refusal(401, "invalid_client", "client assertion expired").with_header("date", &ahead),
            false,
            vec!["had expired", "s ahead of this machine's", "warn  clock"],
        ),
        (
            "aud",
            refusal(401, "invalid_client", "the assertion aud is wrong"),
            false,
            vec!["aud does not match", "It was 'http://"],
        ),
        (
            "unknown kid",
            refusal(401, "invalid_client", "no key with kid 'x' for this client"),
            false,
            vec!["could not verify the assertion", "Public JWK: {"],
        ),
        (
            "jti",
            refusal(401, "invalid_client", "jti reused"),
            false,
            vec!["jti was used before"],
        ),
        (
            "htu",
            refusal(400, "invalid_dpop_proof", "htu does not match the request"),
            true,
            vec!["htu/htm do not match", "htm POST and htu http://"],
        ),
        (
            "nonce forever",
            refusal(400, "use_dpop_nonce", "nonce please").with_header("dpop-nonce", "n1"),
            true,
            vec!["requires a nonce in DPoP proofs", "nonce required"],
        ),
    ];
    for (what, behaviour, dpop, says) in cases {
        let ep = FlakyEndpoint::start(behaviour).await;
        let mut env = vec![
            ("AUTH_BROKER_TOKEN_URL", ep.url()),
            ("AUTH_BROKER_CLIENT_ID", "app".to_owned()),
            ("AUTH_BROKER_PRIVATE_KEY", key.clone()),
        ];
        if dpop {
            env.push(("AUTH_BROKER_DPOP", "true".into()));
        }
        let (code, out, err) = run(env, args(&["doctor"])).await;
        assert_eq!(code, 1, "{what}: {out}{err}");
        for s in says {
            assert!(out.contains(s), "{what}: '{s}' in\n{out}");
        }
        let description = out
            .lines()
            .find(|l| l.starts_with("FAIL  token request"))
            .and_then(|l| l.split_once(": ").map(|(_, d)| d.to_owned()))
            .unwrap_or_default();
        assert!(
            out.matches(description.as_str()).count() == 1 && !description.is_empty(),
            "{what}: the server's description once:\n{out}"
        );
    }
}

/// `doctor` on a server that wants a client certificate: the TLS step says so and what
/// to pass; with the certificate, tls_client_auth gets a token and the step says it was
/// presented. A bound token answered as bearer and refused by the API is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_explains_mutual_tls_and_a_bound_token_sent_as_bearer() {
    let ca = std::sync::Arc::new(auth_broker_testkit::tls::TestCa::new("doctor CA"));
    let fake = KeyBoundServer::start(FakeOptions {
        mtls: Some(ca.clone()),
        ..FakeOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let ca_file = path("ca.pem", &ca.pem);
    let files = fake.tls.as_ref().unwrap();
    let cert = path("client.pem", &files.client.cert_pem);
    let key = path("client-key.pem", &files.client.key_pem);
    let mut env = fake_env(&fake);
    env.push(("AUTH_BROKER_CA_FILE", ca_file));
    // A secret but no certificate.
    let (code, out, _) = run(with_secret(env.clone()), args(&["doctor"])).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  TLS: the server requires a client certificate"),
        "{out}"
    );
    assert!(
        out.contains("pass --tls-client-cert FILE --tls-client-key FILE"),
        "{out}"
    );

    let (code, out, err) = run(
        env.clone(),
        args(&[
            "doctor",
            "--tls-client-cert",
            &cert,
            "--tls-client-key",
            &key,
            "--api",
            &fake.api("x"),
        ]),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("client certificate presented"), "{out}");
    assert!(out.contains("ok    credential: tls_client_auth"), "{out}");
    assert_eq!(fake.seen().token_peer_certs.len(), 1);

    // A server that binds the token to the proof's key but answers token_type bearer.
    let fake = KeyBoundServer::start(FakeOptions {
        dpop_token_type: "bearer",
        bind_bearer: true,
        ..FakeOptions::default()
    })
    .await;
    let env = with_secret(fake_env(&fake));
    let (code, out, _) = run(env, args(&["doctor", "--dpop", "--api", &fake.api("x")])).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "warn  DPoP: a DPoP proof was sent but the token endpoint answered token_type 'bearer'"
        ),
        "{out}"
    );
    assert!(
        out.contains("a DPoP-bound token refused as Bearer"),
        "{out}"
    );
}
