//! Introspection mode (RFC 7662) against an endpoint written here, which counts its
//! calls. `introspection_guard` takes any endpoint, so the same checks can run
//! against the broker's own `POST /auth-broker/introspect`.

use crate::common::*;
use auth_broker_guard::{ClientSecret, Guard, GuardError, ManualClock, Mode};
use auth_broker_proto::{BasicCredentials, Form};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const ISSUER: &str = "https://broker.example";
/// An id and secret that need RFC 6749 §2.3.1 form-encoding inside Basic.
const API_ID: &str = "invoices-api/;&";
const API_SECRET: &str = "s3cr+t:%/=";

#[derive(Debug, Default)]
struct Endpoint {
    tokens: Mutex<HashMap<String, Value>>,
    calls: AtomicUsize,
}

async fn introspect(
    State(ep): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    ep.calls.fetch_add(1, Ordering::SeqCst);
    let creds = headers
        .get("authorization")
        .and_then(|h| BasicCredentials::parse(h.as_bytes()).ok());
    let authorized = creds.is_some_and(|c| {
        c.client_id() == API_ID && c.client_secret().expose_secret() == API_SECRET
    });
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    let form = Form::parse(body.as_bytes()).unwrap();
    assert_eq!(form.get("token_type_hint"), Some("access_token"));
    let token = form.get("token").unwrap_or_default();
    let answer = ep
        .tokens
        .lock()
        .unwrap()
        .get(token)
        .cloned()
        .unwrap_or(json!({"active": false}));
    axum::Json(answer).into_response()
}

async fn endpoint() -> (Arc<Endpoint>, String) {
    let ep = Arc::new(Endpoint::default());
    let app = Router::new()
        .route("/introspect", post(introspect))
        .with_state(ep.clone());
    let addr = serve(app).await;
    (ep, format!("http://{addr}/introspect"))
}

/// A guard in introspection mode for `issuer`, asking `endpoint` as `API_ID`.
async fn introspection_guard(issuer: &str, endpoint: &str, clock: &ManualClock) -> Guard {
    Guard::builder(issuer)
        .audience("https://invoices.example")
        .introspection(API_ID, ClientSecret::new(API_SECRET))
        .introspection_endpoint(endpoint)
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap()
}

fn active(now: i64, scope: &str, aud: &str) -> Value {
    json!({
        "active": true, "client_id": "caller", "sub": "caller", "scope": scope,
        "exp": now + 600, "iat": now, "aud": aud, "iss": ISSUER, "jti": "j1",
        "token_type": "Bearer",
    })
}

#[tokio::test]
async fn opaque_tokens_are_introspected_with_a_short_bounded_cache() {
    let (ep, url) = endpoint().await;
    let clock = ManualClock::now();
    let now = auth_broker_guard::Clock::now_secs(&clock);
    let guard = introspection_guard(ISSUER, &url, &clock).await;
    assert_eq!(guard.mode(), Mode::Introspection);
    let app = api(guard.clone());
    ep.tokens.lock().unwrap().insert(
        "opaque-good".into(),
        active(now, "invoices:read", "https://invoices.example"),
    );
    ep.tokens.lock().unwrap().insert(
        "opaque-narrow".into(),
        active(now, "profile", "https://invoices.example"),
    );
    ep.tokens.lock().unwrap().insert(
        "opaque-payroll".into(),
        active(now, "invoices:read", "https://payroll.example"),
    );
    let calls = || ep.calls.load(Ordering::SeqCst);

    let a = call(&app, "/invoices", Some("Bearer opaque-good")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["client_id"], "caller");
    assert_eq!(calls(), 1);
    // A repeat within 30 s is answered from the cache.
    clock.advance_secs(29);
    assert_eq!(
        call(&app, "/invoices", Some("Bearer opaque-good"))
            .await
            .status,
        200
    );
    assert_eq!(calls(), 1);
    // After it, the endpoint is asked again, and now says the token was revoked.
    clock.advance_secs(2);
    ep.tokens.lock().unwrap().remove("opaque-good");
    call(&app, "/invoices", Some("Bearer opaque-good"))
        .await
        .assert_invalid_token("the token is not active");
    assert_eq!(calls(), 2);

    // Inactive results are kept a few seconds only.
    call(&app, "/me", Some("Bearer never-issued"))
        .await
        .assert_invalid_token("not active");
    call(&app, "/me", Some("Bearer never-issued"))
        .await
        .assert_invalid_token("not active");
    assert_eq!(calls(), 3);
    clock.advance_secs(6);
    call(&app, "/me", Some("Bearer never-issued"))
        .await
        .assert_invalid_token("not active");
    assert_eq!(calls(), 4);

    // The same claim checks as JWT mode: scope and audience.
    let a = call(&app, "/invoices", Some("Bearer opaque-narrow")).await;
    assert_eq!(a.status, 403);
    assert!(a.challenge.unwrap().ends_with(r#"scope="invoices:read""#));
    call(&app, "/me", Some("Bearer opaque-payroll"))
        .await
        .assert_invalid_token("for the audience 'https://payroll.example'");
    assert_eq!(guard.stats().introspections as usize, calls());
}

#[tokio::test]
async fn an_active_result_is_not_reused_past_the_tokens_exp() {
    let (ep, url) = endpoint().await;
    let clock = ManualClock::now();
    let now = auth_broker_guard::Clock::now_secs(&clock);
    let guard = introspection_guard(ISSUER, &url, &clock).await;
    let mut short = active(now, "", "https://invoices.example");
    short["exp"] = json!(now + 10);
    ep.tokens.lock().unwrap().insert("short".into(), short);
    assert!(guard.validate("short").await.is_ok());
    clock.advance_secs(9);
    assert!(guard.validate("short").await.is_ok());
    assert_eq!(ep.calls.load(Ordering::SeqCst), 1);
    clock.advance_secs(2);
    ep.tokens.lock().unwrap().clear();
    assert_eq!(
        guard.validate("short").await.unwrap_err(),
        GuardError::Inactive
    );
    assert_eq!(ep.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn wrong_guard_credentials_or_a_dead_endpoint_are_503_not_401() {
    let (_ep, url) = endpoint().await;
    let guard = Guard::builder(ISSUER)
        .introspection(API_ID, ClientSecret::new("wrong"))
        .introspection_endpoint(&url)
        .build()
        .await
        .unwrap();
    let a = call(&api(guard), "/me", Some("Bearer anything")).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(
        a.description()
            .contains("refused this API's client credentials"),
        "{a:?}"
    );

    let guard = Guard::builder(ISSUER)
        .introspection(API_ID, ClientSecret::new(API_SECRET))
        .introspection_endpoint("http://127.0.0.1:9/introspect")
        .build()
        .await
        .unwrap();
    let a = call(&api(guard), "/me", Some("Bearer anything")).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.description().contains("unreachable"), "{a:?}");
}

#[tokio::test]
async fn against_the_brokers_introspection_endpoint() {
    let b = broker().await;
    let (api_id, api_secret) = b.create_client("invoices-api", "", None).await;
    let guard = Guard::builder(&b.issuer)
        .introspection(api_id, api_secret)
        .build()
        .await
        .unwrap();
    let app = api(guard.clone());
    let t = token(&b, "invoices:read", None).await;
    assert_eq!(call(&app, "/invoices", Some(&bearer(&t))).await.status, 200);
    assert_eq!(call(&app, "/invoices", Some(&bearer(&t))).await.status, 200);
    assert_eq!(guard.stats().introspections, 1);
    call(&app, "/me", Some("Bearer not-a-token"))
        .await
        .assert_invalid_token("not active");
}
