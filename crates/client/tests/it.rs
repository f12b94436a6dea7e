//! The token manager and signing against a token endpoint written here (short-lived
//! tokens, counted calls, failures on demand) and against the real broker. Time is a
//! `ManualClock`: nothing here sleeps to test timing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_client::*;
use auth_broker_proto::ClientSecret;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
enum Mode {
    Ok {
        expires_in: Option<u64>,
    },
    Fail {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
}

#[derive(Debug)]
struct Shared {
    calls: AtomicUsize,
    mode: Mutex<Mode>,
    /// When set, token requests wait for a permit (to hold a request in flight).
    gate: Option<tokio::sync::Semaphore>,
    last_auth: Mutex<Option<String>>,
    last_body: Mutex<String>,
    /// API: tokens numbered below this are refused with 401.
    api_min_token: AtomicUsize,
    api_calls: AtomicUsize,
}

struct Endpoint {
    base: String,
    s: Arc<Shared>,
}

impl Endpoint {
    async fn start(mode: Mode, gated: bool) -> Self {
        let s = Arc::new(Shared {
            calls: AtomicUsize::new(0),
            mode: Mutex::new(mode),
            gate: gated.then(|| tokio::sync::Semaphore::new(0)),
            last_auth: Mutex::new(None),
            last_body: Mutex::new(String::new()),
            api_min_token: AtomicUsize::new(0),
            api_calls: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route("/api", axum::routing::any(api))
            .with_state(s.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, s }
    }
    fn url(&self) -> String {
        format!("{}/token", self.base)
    }
    fn calls(&self) -> usize {
        self.s.calls.load(Ordering::SeqCst)
    }
    fn set(&self, m: Mode) {
        *self.s.mode.lock().unwrap() = m;
    }
    /// An endpoint answering every token request with this failure.
    async fn failing(mode: Mode) -> Self {
        Self::start(mode, false).await
    }
    /// An endpoint answering tokens of `expires_in` seconds.
    async fn ok(expires_in: u64) -> Self {
        Self::start(ok(expires_in), false).await
    }
    /// The same, each token request held until the test adds a permit to the gate.
    async fn gated(expires_in: u64) -> Self {
        Self::start(ok(expires_in), true).await
    }
    fn release(&self, n: usize) {
        self.s.gate.as_ref().unwrap().add_permits(n);
    }
}

/// Tokens of `expires_in` seconds.
fn ok(expires_in: u64) -> Mode {
    Mode::Ok {
        expires_in: Some(expires_in),
    }
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
    *s.last_auth.lock().unwrap() = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    *s.last_body.lock().unwrap() = body;
    if let Some(g) = &s.gate {
        g.acquire().await.unwrap().forget();
    }
    let mode = s.mode.lock().unwrap().clone();
    match mode {
        Mode::Ok { expires_in } => {
            let mut v =
                serde_json::json!({"access_token": format!("tok-{n}"), "token_type": "Bearer"});
            if let Some(e) = expires_in {
                v["expires_in"] = e.into();
            }
            axum::Json(v).into_response()
        }
        Mode::Fail {
            status,
            body,
            retry_after,
        } => {
            let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
            if let Some(ra) = retry_after {
                r.headers_mut()
                    .insert("retry-after", ra.to_string().parse().unwrap());
            }
            r
        }
    }
}

async fn api(State(s): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    s.api_calls.fetch_add(1, Ordering::SeqCst);
    let n: usize = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer tok-"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if n == 0 || n < s.api_min_token.load(Ordering::SeqCst) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    format!("ok {n} {body}").into_response()
}

fn manager(url: &str, clock: &ManualClock) -> TokenManager {
    manager_with(
        TokenConfig::new(url, "client", ClientSecret::new("secret")),
        clock,
    )
}

fn manager_with(config: TokenConfig, clock: &ManualClock) -> TokenManager {
    TokenManager::with_parts(
        config,
        default_http_client().unwrap(),
        Arc::new(clock.clone()),
    )
}

/// `n` callers ask `m` for a token while the gated endpoint holds the one request they
/// cause; once all of them wait, the request is let through. Their tokens.
async fn callers_while_a_request_is_held(ep: &Endpoint, m: &TokenManager, n: usize) -> Vec<String> {
    let before = ep.calls();
    // Each task counts itself in the same poll that starts `token()`, which joins the
    // request in flight before its first await: once all have counted, all wait on
    // it. (Yielding a fixed number of times instead lets a task that has not run yet
    // on a loaded machine arrive after the answer, and ask again.)
    let started = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let m = m.clone();
            let started = started.clone();
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                m.token().await.map(|t| tok(&t).to_owned())
            })
        })
        .collect();
    eventually("the token request", || ep.calls() == before + 1).await;
    eventually("every caller", || started.load(Ordering::SeqCst) == n).await;
    ep.release(n);
    let mut tokens = Vec::with_capacity(n);
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap());
    }
    tokens
}

fn tok(t: &Token) -> &str {
    t.access_token().expose_secret()
}

/// Waits (really, briefly) until a condition the code under test sets in the background.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn fail(status: u16, body: &str, retry_after: Option<u64>) -> Mode {
    Mode::Fail {
        status,
        body: body.into(),
        retry_after,
    }
}

#[tokio::test]
async fn cached_then_refreshed_ahead_in_the_background() {
    let ep = Endpoint::ok(3599).await;
    let clock = ManualClock::new();
    let m = manager(&ep.url(), &clock);
    let t1 = m.token().await.unwrap();
    assert_eq!(tok(&t1), "tok-1");
    assert_eq!(t1.usable_until() - t1.received(), secs(3539));
    let refresh = t1.refresh_at() - t1.received();
    assert!(
        refresh >= Duration::from_millis(1_799_500) && refresh <= secs(2160),
        "{refresh:?}"
    );
    clock.advance(secs(1799));
    assert_eq!(tok(&m.token().await.unwrap()), "tok-1");
    assert_eq!(ep.calls(), 1, "no request before the refresh point");
    clock.advance(secs(400)); // 2199 s: past the refresh point, token still usable
    let t = m.token().await.unwrap();
    assert_eq!(
        tok(&t),
        "tok-1",
        "the cached token is served while refreshing"
    );
    eventually("the background refresh", || {
        m.cached().is_some_and(|t| tok(&t) == "tok-2")
    })
    .await;
    assert_eq!(ep.calls(), 2);
    assert_eq!(tok(&m.token().await.unwrap()), "tok-2");
}

#[tokio::test]
async fn a_short_token_is_never_handed_out_in_its_last_margin() {
    let ep = Endpoint::ok(4).await;
    let clock = ManualClock::new();
    let m = manager(&ep.url(), &clock);
    let t1 = m.token().await.unwrap();
    assert_eq!(
        t1.usable_until() - t1.received(),
        Duration::from_millis(3600)
    );
    // 3.6 s in: inside the last 0.4 s, so a caller waits for a new token.
    clock.advance(Duration::from_millis(3600));
    let t2 = m.token().await.unwrap();
    assert_ne!(tok(&t2), "tok-1");
}

#[tokio::test]
async fn missing_expires_in_gets_the_documented_default() {
    let ep = Endpoint::start(Mode::Ok { expires_in: None }, false).await;
    let clock = ManualClock::new();
    let t = manager(&ep.url(), &clock).token().await.unwrap();
    assert_eq!(t.expires_at() - t.received(), DEFAULT_LIFETIME);
    assert_eq!(t.usable_until() - t.received(), secs(270));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_at_expiry_make_one_request() {
    let ep = Endpoint::gated(60).await;
    let clock = ManualClock::new();
    let m = manager(&ep.url(), &clock);
    ep.release(1);
    m.token().await.unwrap();
    clock.advance(secs(60)); // expired
    for t in callers_while_a_request_is_held(&ep, &m, 10_000).await {
        assert_eq!(t, "tok-2");
    }
    assert_eq!(ep.calls(), 2, "one request for 10,000 callers");
    assert_eq!(m.requests_sent(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_at_the_refresh_point_get_the_cached_token_and_one_refresh() {
    let ep = Endpoint::ok(100).await;
    let clock = ManualClock::new();
    let m = manager(&ep.url(), &clock);
    m.token().await.unwrap();
    clock.advance(secs(80));
    let tasks: Vec<_> = (0..10_000)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.token().await.map(|t| tok(&t).to_owned()) })
        })
        .collect();
    for t in tasks {
        let t = t.await.unwrap().unwrap();
        assert!(t == "tok-1" || t == "tok-2", "{t}");
    }
    eventually("the background refresh", || {
        m.cached().is_some_and(|t| tok(&t) == "tok-2")
    })
    .await;
    assert_eq!(ep.calls(), 2);
}

#[tokio::test]
async fn an_outage_is_served_from_cache_with_backoff_then_recovers() {
    let ep = Endpoint::ok(3599).await;
    let clock = ManualClock::new();
    let m = manager(&ep.url(), &clock);
    m.token().await.unwrap();
    ep.set(fail(503, "down for maintenance", None));
    clock.advance(secs(2200));
    let retry = RetryPolicy::default();
    for i in 0..6 {
        assert_eq!(
            tok(&m.token().await.unwrap()),
            "tok-1",
            "served from cache during the outage"
        );
        clock.wait_for_sleeps(i + 1).await;
        let slept = clock.requested_sleeps()[i];
        assert!(
            slept <= retry.ceiling(i as u32),
            "full jitter: {slept:?} at attempt {i}"
        );
        assert_eq!(ep.calls(), 2 + i);
        clock.advance(retry.ceiling(i as u32));
    }
    ep.set(ok(3599));
    clock.advance(secs(60));
    eventually("recovery", || {
        m.cached().is_some_and(|t| tok(&t) != "tok-1")
    })
    .await;
    assert_eq!(ep.calls(), 8);
}

#[tokio::test]
async fn outage_past_the_usable_window_surfaces_the_error_after_bounded_retries() {
    let ep = Endpoint::failing(fail(503, "<html>Service Unavailable</html>", None)).await;
    let clock = ManualClock::new();
    let m = manager(&ep.url(), &clock);
    let c2 = clock.clone();
    let task = tokio::spawn(async move { m.token().await });
    for i in 0..2 {
        c2.wait_for_sleeps(i + 1).await;
        c2.advance(secs(60));
    }
    let e = task.await.unwrap().unwrap_err();
    assert_eq!(ep.calls(), 3, "max_attempts requests, then the error");
    assert_eq!(e.status(), Some(503));
    assert!(
        e.to_string().contains("<html>Service Unavailable</html>"),
        "raw body kept: {e}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_on_429_and_503() {
    for status in [429, 503] {
        let ep = Endpoint::failing(fail(status, r#"{"error":"slow_down"}"#, Some(7))).await;
        let clock = ManualClock::new();
        let m = manager(&ep.url(), &clock);
        let c2 = clock.clone();
        let task = tokio::spawn(async move { m.token().await });
        c2.wait_for_sleeps(1).await;
        assert!(
            c2.requested_sleeps()[0] >= secs(7),
            "{:?}",
            c2.requested_sleeps()
        );
        ep.set(ok(60));
        c2.advance(Duration::from_millis(6999));
        tokio::task::yield_now().await;
        assert_eq!(ep.calls(), 1, "no retry before Retry-After");
        c2.advance(secs(30));
        assert_eq!(tok(&task.await.unwrap().unwrap()), "tok-2");
    }
}

#[tokio::test]
async fn invalid_client_is_not_retried_and_surfaces_the_server_error() {
    let body = r#"{"error":"invalid_client","error_description":"client authentication failed"}"#;
    let ep = Endpoint::failing(fail(401, body, None)).await;
    let clock = ManualClock::new();
    let m = manager(&ep.url(), &clock);
    for _ in 0..3 {
        let e = m.token().await.unwrap_err();
        let se = e.server_error().unwrap();
        assert_eq!(se.error.as_str(), "invalid_client");
        assert_eq!(
            se.error_description.as_deref(),
            Some("client authentication failed")
        );
        assert!(!e.is_transient());
    }
    assert_eq!(ep.calls(), 3, "one request per call, no retry loop");
    assert!(clock.requested_sleeps().is_empty());

    ep.set(fail(400, "<html>nope</html>", None));
    let e = m.token().await.unwrap_err();
    assert!(e.to_string().contains("<html>nope</html>"), "{e}");
}

#[tokio::test]
async fn garbage_200_is_an_error_with_the_body() {
    let ep = Endpoint::failing(fail(200, "this is not json", None)).await;
    let e = manager(&ep.url(), &ManualClock::new())
        .token()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("this is not json"), "{e}");
}

#[tokio::test]
async fn client_authentication_methods_send_what_they_say() {
    use base64::Engine;
    let ep = Endpoint::ok(60).await;
    let secret = "a/b+c=d:e%f";
    let clock = ManualClock::new();
    let cfg = || {
        TokenConfig::new(ep.url(), "my id", ClientSecret::new(secret))
            .scope("a b")
            .audience("api")
    };
    let decoded = |ep: &Endpoint| {
        let h = ep.s.last_auth.lock().unwrap().clone().unwrap();
        let b = base64::engine::general_purpose::STANDARD
            .decode(h.strip_prefix("Basic ").unwrap())
            .unwrap();
        String::from_utf8(b).unwrap()
    };
    manager_with(cfg(), &clock).token().await.unwrap();
    assert_eq!(
        decoded(&ep),
        "my+id:a%2Fb%2Bc%3Dd%3Ae%25f",
        "RFC 6749 §2.3.1 form-encoding"
    );
    assert_eq!(
        *ep.s.last_body.lock().unwrap(),
        "grant_type=client_credentials&scope=a+b&audience=api"
    );
    manager_with(cfg().auth(ClientAuth::BasicRaw), &clock)
        .token()
        .await
        .unwrap();
    assert_eq!(decoded(&ep), "my id:a/b+c=d:e%f");
    manager_with(cfg().auth(ClientAuth::Post), &clock)
        .token()
        .await
        .unwrap();
    assert!(ep.s.last_auth.lock().unwrap().is_none());
    assert!(
        ep.s.last_body
            .lock()
            .unwrap()
            .ends_with("&client_id=my+id&client_secret=a%2Fb%2Bc%3Dd%3Ae%25f")
    );
}

#[tokio::test]
async fn the_middleware_refreshes_once_and_replays_on_401() {
    let ep = Endpoint::ok(3599).await;
    let m = manager(&ep.url(), &ManualClock::new());
    let http = reqwest_middleware::ClientBuilder::new(default_http_client().unwrap())
        .with(BearerMiddleware::new(m.clone()))
        .build();
    let api = format!("{}/api", ep.base);
    let r = http.post(&api).body("hello").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok 1 hello");
    // The API now refuses tok-1 (e.g. revoked): one refresh, one replay.
    ep.s.api_min_token.store(2, Ordering::SeqCst);
    let r = http
        .post(&api)
        .header("authorization", "Basic stale")
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok 2 again");
    assert_eq!(ep.calls(), 2);
    assert_eq!(ep.s.api_calls.load(Ordering::SeqCst), 3);
    // Refused whatever the token: the second 401 comes back with the hint.
    ep.s.api_min_token.store(usize::MAX, Ordering::SeqCst);
    let r = http.get(&api).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let u = r.extensions().get::<Unauthorized>().copied().unwrap();
    assert!(u.replayed && u.hint.contains("auth-broker doctor"));
    assert_eq!(ep.calls(), 3, "exactly one refresh per 401");
}

#[tokio::test]
async fn the_tower_layer_refreshes_once_and_replays_on_401() {
    use tower::{Layer, ServiceExt};
    let ep = Endpoint::ok(3599).await;
    let m = manager(&ep.url(), &ManualClock::new());
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    let inner = tower::service_fn(move |req: http::Request<String>| {
        let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
        s2.lock().unwrap().push(format!("{auth} {}", req.body()));
        let status = if auth == "Bearer tok-1" { 401 } else { 200 };
        async move {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder().status(status).body(()).unwrap(),
            )
        }
    });
    let svc = BearerLayer::new(m).layer(inner);
    let r = svc
        .oneshot(http::Request::new("body".to_owned()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        *seen.lock().unwrap(),
        ["Bearer tok-1 body", "Bearer tok-2 body"]
    );
}

#[tokio::test]
async fn managers_share_one_token_per_key() {
    let ep = Endpoint::ok(3599).await;
    let set = TokenManagers::new();
    let cfg = TokenConfig::new(ep.url(), "client", ClientSecret::new("s"));
    let a = set.get(cfg.clone()).unwrap();
    let b = set.get(cfg.clone()).unwrap();
    let c = set.get(cfg.clone().scope("other")).unwrap();
    a.token().await.unwrap();
    b.token().await.unwrap();
    assert_eq!(ep.calls(), 1);
    c.token().await.unwrap();
    assert_eq!(ep.calls(), 2);
}

#[tokio::test]
async fn works_against_the_real_broker_with_an_awkward_secret() {
    use auth_broker_testkit::{Backend, TestBroker};
    let b = TestBroker::start(Backend::Sqlite).await;
    let secret = "p/q+r=s:t%u";
    b.insert_client("awkward", secret, "read write").await;
    for auth in [ClientAuth::Basic, ClientAuth::BasicRaw, ClientAuth::Post] {
        let cfg = TokenConfig::new(b.token_url(), "awkward", ClientSecret::new(secret))
            .scope("read")
            .auth(auth);
        let t = manager_with(cfg, &ManualClock::new())
            .token()
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        assert_eq!(t.response().scope.as_deref(), Some("read"));
        assert_eq!(t.response().expires_in, Some(3599));
    }
    let cfg = TokenConfig::new(b.token_url(), "awkward", ClientSecret::new("wrong"));
    let e = manager_with(cfg, &ManualClock::new())
        .token()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert_eq!(e.server_error().unwrap().error.as_str(), "invalid_client");
    assert!(e.server_error().unwrap().error_description.is_some());
}

// ---- Faults: a token endpoint that is down, slow or answering garbage ----

use auth_broker_testkit::flaky::{Behaviour, FlakyEndpoint};

/// A manager with a short request timeout, so the slow cases stay fast.
fn short_timeout_manager(url: &str, clock: &ManualClock) -> TokenManager {
    let mut cfg = TokenConfig::new(url, "client", ClientSecret::new("secret"));
    cfg.request_timeout = Duration::from_millis(300);
    manager_with(cfg, clock)
}

/// Calls `token()` while moving the manual clock along (so retry backoffs pass) and
/// returns its result and the real time it took.
async fn token_driving_the_clock(
    m: &TokenManager,
    clock: &ManualClock,
) -> (Result<Token, TokenError>, Duration) {
    let started = std::time::Instant::now();
    let task = tokio::spawn({
        let m = m.clone();
        async move { m.token().await }
    });
    while !task.is_finished() {
        assert!(
            started.elapsed() < secs(20),
            "token() hung with the endpoint down"
        );
        clock.advance(secs(60));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (task.await.unwrap(), started.elapsed())
}

const GOOD: Behaviour = Behaviour::Token { expires_in: 3599 };

/// A well-behaved flaky endpoint and a short-timeout manager that already holds its
/// first token, `tok-1`.
async fn flaky_with_a_token() -> (FlakyEndpoint, ManualClock, TokenManager) {
    let ep = FlakyEndpoint::start(GOOD).await;
    let clock = ManualClock::new();
    let m = short_timeout_manager(&ep.url(), &clock);
    assert_eq!(tok(&m.token().await.unwrap()), "tok-1");
    (ep, clock, m)
}

/// The endpoint is good again: the manager recovers by itself.
async fn recovers(what: &str, ep: &FlakyEndpoint, m: &TokenManager, clock: &ManualClock) {
    ep.set(GOOD).await;
    let (r, _) = token_driving_the_clock(m, clock).await;
    assert!(r.is_ok(), "{what}: recovers: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_is_down_is_ridden_out_then_recovers() {
    let (ep, clock, m) = flaky_with_a_token().await;

    // Down (connection refused) past the refresh point: the cached token keeps coming.
    ep.set(Behaviour::Down).await;
    clock.advance(secs(2200));
    for _ in 0..3 {
        assert_eq!(tok(&m.token().await.unwrap()), "tok-1");
    }
    clock.wait_for_sleeps(1).await; // the background refresh failed and backs off
    assert_eq!(tok(&m.token().await.unwrap()), "tok-1");

    // Past the usable window: a clear error, promptly.
    clock.advance(secs(1400));
    let (r, took) = token_driving_the_clock(&m, &clock).await;
    let e = r.unwrap_err();
    assert!(
        matches!(e, TokenError::Transport { .. }),
        "connection refused is a transport error: {e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("cannot reach the token endpoint")
            && text.contains(&ep.url())
            && text.matches("Connection refused").count() == 1,
        "{text}"
    );
    assert!(e.is_transient());
    assert!(took < secs(5), "no hang: {took:?}");

    // A manager that never had a token: the same clear error.
    let fresh = short_timeout_manager(&ep.url(), &clock);
    let (r, took) = token_driving_the_clock(&fresh, &clock).await;
    assert!(matches!(r, Err(TokenError::Transport { .. })), "{r:?}");
    assert!(took < secs(5), "no hang: {took:?}");

    // Back up: both recover by themselves.
    ep.set(GOOD).await;
    assert!(tok(&m.token().await.unwrap()).starts_with("tok-"));
    assert!(tok(&fresh.token().await.unwrap()).starts_with("tok-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_slower_than_the_timeout_costs_bounded_time() {
    for (what, slow) in [
        ("accepts and never answers", Behaviour::Blackhole),
        (
            "answers after 3 s",
            Behaviour::Late {
                after: secs(3),
                then: Box::new(GOOD),
            },
        ),
        ("stalls in the middle of the body", Behaviour::StallMidBody),
    ] {
        let (ep, clock, m) = flaky_with_a_token().await;
        ep.set(slow).await;

        // Past the refresh point: callers get the cached token at once while the
        // background refresh times out.
        clock.advance(secs(2200));
        let started = std::time::Instant::now();
        for _ in 0..3 {
            assert_eq!(tok(&m.token().await.unwrap()), "tok-1", "{what}");
        }
        assert!(started.elapsed() < secs(1), "{what}: served from cache");
        clock.wait_for_sleeps(1).await; // the background attempt timed out
        assert_eq!(ep.requests(), 2, "{what}");
        assert_eq!(tok(&m.cached().unwrap()), "tok-1", "{what}: cache kept");

        // No usable token: the caller's attempts each end at the timeout.
        clock.advance(secs(1400));
        let (r, took) = token_driving_the_clock(&m, &clock).await;
        let e = r.unwrap_err();
        assert!(
            matches!(e, TokenError::Timeout { after, .. } if after == Duration::from_millis(300)),
            "{what}: {e:?}"
        );
        assert!(
            e.to_string().contains("did not answer within 300ms"),
            "{what}: {e}"
        );
        assert!(took < secs(6), "{what}: bounded, took {took:?}");

        recovers(what, &ep, &m, &clock).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_token_endpoint_is_a_clear_error_and_the_cache_is_kept() {
    let json = "application/json";
    let cases: Vec<(&str, Behaviour, &str)> = vec![
        (
            "an HTML page with 200",
            Behaviour::raw(200, "text/html", "<html><body>Please log in</body></html>"),
            "not an RFC 6749 token response",
        ),
        (
            "truncated JSON",
            Behaviour::raw(200, json, r#"{"access_token":"live-secret-tok","token_ty"#),
            "EOF while parsing",
        ),
        (
            "200 without access_token",
            Behaviour::raw(200, json, r#"{"token_type":"bearer","expires_in":60}"#),
            "missing field `access_token`",
        ),
        (
            "an empty 200",
            Behaviour::raw(200, json, ""),
            "not an RFC 6749 token response",
        ),
        (
            "500 with an HTML page",
            Behaviour::raw(500, "text/html", "<h1>Internal Server Error</h1>"),
            "answered 500 with an unexpected body: <h1>Internal Server Error</h1>",
        ),
        (
            "non-UTF-8 bytes",
            Behaviour::raw(200, json, b"\xff\xfe\x00\x9f garbage".to_vec()),
            "not an RFC 6749 token response",
        ),
        (
            "non-UTF-8 bytes with 502",
            Behaviour::raw(502, "application/octet-stream", b"\xff\xfe\x00".to_vec()),
            "answered 502 with an unexpected body",
        ),
    ];
    for (what, garbage, says) in cases {
        let (ep, clock, m) = flaky_with_a_token().await;
        ep.set(garbage).await;
        clock.advance(secs(2200));
        assert_eq!(tok(&m.token().await.unwrap()), "tok-1", "{what}");
        eventually("the background refresh to meet the garbage", || {
            ep.requests() >= 2
        })
        .await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            tok(&m.token().await.unwrap()),
            "tok-1",
            "{what}: the cached token is kept"
        );

        clock.advance(secs(1400));
        let (r, took) = token_driving_the_clock(&m, &clock).await;
        let e = r.unwrap_err();
        let text = e.to_string();
        assert!(text.contains(says), "{what}: {text}");
        assert!(
            !text.contains("live-secret-tok"),
            "{what}: a token in a broken answer is not repeated: {text}"
        );
        assert!(took < secs(5), "{what}: {took:?}");

        recovers(what, &ep, &m, &clock).await;
    }
}

// ---- Issue 13: what an integrator found ----

/// Issue 13.1: any `expires_in` a server may send, however absurd, goes through the
/// whole token-manager path (answer read, schedule, cache, hand-out, the clock moving
/// on, the next hand-out) without a panic; lifetimes past the cap are cut to it.
#[test]
fn any_expires_in_goes_through_the_whole_manager_path() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ep = rt.block_on(Endpoint::failing(fail(200, "", None)));
    let expires_in = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (u64::MAX - 1000..=u64::MAX).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("\"{n}\"")),
        (0.0f64..1e300).prop_map(|f| format!("{f:e}")),
        (0.0f64..1e6).prop_map(|f| format!("{f}")),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("\"1e30\"".to_owned()),
    ];
    let advance = prop_oneof![0u64..10_000, any::<u32>().prop_map(u64::from)];
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(expires_in, advance), |(expires_in, advance)| {
            ep.set(fail(
                200,
                &format!(
                    r#"{{"access_token":"tok","token_type":"bearer","expires_in":{expires_in}}}"#
                ),
                None,
            ));
            rt.block_on(async {
                let clock = ManualClock::new();
                let m = manager(&ep.url(), &clock);
                let t = m
                    .token()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{expires_in}: {e}")))?;
                let lifetime = t.expires_at() - t.received();
                prop_assert!(lifetime <= RefreshPolicy::default().max_lifetime);
                prop_assert!(t.refresh_at() <= t.usable_until());
                prop_assert!(t.usable_until() <= t.expires_at());
                clock.advance(secs(advance));
                let again = m
                    .token()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{expires_in}: {e}")))?;
                prop_assert_eq!(tok(&again), "tok");
                Ok(())
            })
        })
        .unwrap();
}

/// Issue 13.2: the token request never follows a redirect, so neither the Basic header
/// nor a `client_secret_post` body reaches another origin; the error names the status
/// and the `Location`.
#[tokio::test]
async fn a_redirect_from_the_token_url_is_an_error_and_the_secret_stays_home() {
    let elsewhere = Endpoint::ok(3599).await;
    let target = elsewhere.url();
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", target)]).into_response() }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    for auth in [ClientAuth::Basic, ClientAuth::Post] {
        let cfg = TokenConfig::new(&url, "client", ClientSecret::new("s3cret")).auth(auth);
        let e = TokenManager::new(cfg).unwrap().token().await.unwrap_err();
        assert!(
            matches!(&e, TokenError::Redirect { status: 307, location: Some(l) } if *l == elsewhere.url()),
            "{auth:?}: {e:?}"
        );
        assert!(!e.is_transient());
        let text = e.to_string();
        assert!(
            text.contains("307") && text.contains(&elsewhere.url()),
            "{text}"
        );
    }
    // Managers shared by key use the same client.
    let e = TokenManagers::new()
        .get(TokenConfig::new(
            &url,
            "client",
            ClientSecret::new("s3cret"),
        ))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Redirect { .. }), "{e:?}");
    assert_eq!(elsewhere.calls(), 0, "nothing reached the other origin");
}

/// Issue 13.5: callers waiting at the same moment share one token request whatever the
/// lifetime, `expires_in: 0` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_at_the_same_moment_share_one_fetch_even_of_a_zero_lifetime() {
    let ep = Endpoint::gated(0).await;
    let m = manager(&ep.url(), &ManualClock::new());
    for t in callers_while_a_request_is_held(&ep, &m, 50).await {
        assert_eq!(t, "tok-1");
    }
    assert_eq!(ep.calls(), 1, "one request for 50 callers");
    // A caller that comes later asks again: the token is not usable any more.
    assert_eq!(tok(&m.token().await.unwrap()), "tok-2");
}

/// A service that records the `Authorization` it got and refuses `tok-1` with `401`.
fn refuse_first<B>(
    seen: Arc<Mutex<Vec<String>>>,
) -> impl FnMut(
    http::Request<B>,
) -> std::future::Ready<Result<http::Response<()>, std::convert::Infallible>>
+ Clone {
    move |req: http::Request<B>| {
        let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
        seen.lock().unwrap().push(auth.clone());
        let status = if auth == "Bearer tok-1" { 401 } else { 200 };
        std::future::ready(Ok(http::Response::builder()
            .status(status)
            .body(())
            .unwrap()))
    }
}

/// Issue 13.3: a request without a body is replayed after a `401` by the tower layer
/// too, with the usual body types of hyper and reqwest clients.
#[tokio::test]
async fn the_tower_layer_replays_bodyless_requests_of_streaming_body_types() {
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};
    type Boxed = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;
    let ep = Endpoint::ok(3599).await;
    let m = manager(&ep.url(), &ManualClock::new());
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let svc = BearerLayer::new(m.clone()).layer(tower::service_fn(refuse_first(seen.clone())));
    let empty: Boxed = http_body_util::Empty::new().boxed();
    let r = svc.oneshot(http::Request::new(empty)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(*seen.lock().unwrap(), ["Bearer tok-1", "Bearer tok-2"]);

    // reqwest's own body, empty and in memory.
    ep.s.calls.store(0, Ordering::SeqCst);
    let m = manager(&ep.url(), &ManualClock::new());
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let svc = BearerLayer::new(m).layer(tower::service_fn(refuse_first(seen.clone())));
    let r = svc
        .oneshot(http::Request::new(reqwest::Body::default()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(*seen.lock().unwrap(), ["Bearer tok-1", "Bearer tok-2"]);
}

/// Issue 13.3: the reqwest middleware replays a bodyless request after a `401`.
#[tokio::test]
async fn the_middleware_replays_bodyless_requests() {
    let ep = Endpoint::ok(3599).await;
    let m = manager(&ep.url(), &ManualClock::new());
    let http = reqwest_middleware::ClientBuilder::new(default_http_client().unwrap())
        .with(BearerMiddleware::new(m))
        .build();
    let api = format!("{}/api", ep.base);
    ep.s.api_min_token.store(2, Ordering::SeqCst);
    for method in [
        reqwest::Method::GET,
        reqwest::Method::DELETE,
        reqwest::Method::OPTIONS,
    ] {
        let r = http.request(method.clone(), &api).send().await.unwrap();
        assert_eq!(r.status(), 200, "{method}");
    }
    assert_eq!(ep.calls(), 2, "one refresh");
}

/// Issue 13.6: a caller that may wait only so long gets a prompt, transient error
/// while the token request goes on; the next caller gets its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_within_answers_promptly_and_the_fetch_goes_on() {
    let ep = Endpoint::gated(3599).await;
    let clock = ManualClock::new();
    let m = manager(&ep.url(), &clock);
    let task = tokio::spawn({
        let m = m.clone();
        async move { m.token_within(secs(2)).await }
    });
    eventually("the token request", || ep.calls() == 1).await;
    clock.wait_for_sleeps(1).await;
    clock.advance(secs(2));
    let e = task.await.unwrap().unwrap_err();
    assert!(matches!(e, TokenError::NotYet { .. }), "{e:?}");
    assert!(e.is_transient());
    ep.release(1);
    eventually("the token request to finish", || m.cached().is_some()).await;
    assert_eq!(tok(&m.token_within(secs(2)).await.unwrap()), "tok-1");
    assert_eq!(
        ep.calls(),
        1,
        "the abandoned wait did not cancel the request"
    );
}

#[path = "it/keybound.rs"]
mod keybound;
