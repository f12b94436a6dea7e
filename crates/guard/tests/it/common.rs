//! Shared helpers: a broker, a guarded API, requests against it, a counting proxy.

use auth_broker_guard::{Authenticated, Guard, GuardLayer};
use auth_broker_server::Config;
use auth_broker_testkit::{Backend, Options, TestBroker};
use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

/// A broker that picks up rotated keys within 200 ms.
pub async fn broker() -> TestBroker {
    let config = Config {
        key_poll_interval: Duration::from_millis(200),
        ..Config::default()
    };
    TestBroker::start_with(
        Backend::Sqlite,
        Options {
            config,
            ..Options::default()
        },
    )
    .await
}

/// A client of `b` with `scope`, and a fresh token for it.
pub async fn token(b: &TestBroker, scope: &str, audience: Option<&str>) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "api-caller-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (id, secret) = b.create_client(&name, scope, audience).await;
    b.token(&id, &secret).await
}

/// The example API: `/public` open, `/me` any valid token, `/invoices` needs
/// `invoices:read`, `/admin` needs `admin` and `invoices:read`.
pub fn api(guard: Guard) -> Router {
    async fn me(who: Authenticated) -> impl IntoResponse {
        axum::Json(json!({
            "client_id": who.client_id,
            "sub": who.sub,
            "scope": who.scope(),
            "aud": who.aud,
        }))
    }
    Router::new()
        .route("/me", get(me))
        .route_layer(GuardLayer::new(guard.clone()))
        .merge(
            Router::new()
                .route("/invoices", get(me))
                .route_layer(GuardLayer::new(guard.clone()).require_scope("invoices:read")),
        )
        .merge(
            Router::new()
                .route("/admin", get(me))
                .route_layer(GuardLayer::new(guard).require_scopes(["admin", "invoices:read"])),
        )
        .route("/public", get(|| async { "public" }))
        .route("/unguarded-extractor", get(me))
}

/// What a guarded route answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub challenge: Option<String>,
    pub body: Value,
}

impl Answer {
    pub fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or("")
    }

    /// Asserts a `401 invalid_token` whose description contains `needle`, in the
    /// body and (sanitized) in the challenge.
    pub fn assert_invalid_token(&self, needle: &str) {
        assert_eq!(self.status, 401, "{self:?}");
        assert_eq!(self.body["error"], "invalid_token", "{self:?}");
        assert!(
            self.description().contains(needle),
            "{needle:?} not in {self:?}"
        );
        let c = self.challenge.as_deref().unwrap();
        assert!(c.starts_with("Bearer realm=\""), "{c}");
        assert!(
            c.contains(r#"error="invalid_token", error_description=""#),
            "{c}"
        );
    }
}

pub async fn call(app: &Router, path: &str, authorization: Option<&str>) -> Answer {
    let headers: Vec<(&str, String)> = authorization
        .map(|a| ("authorization", a.to_owned()))
        .into_iter()
        .collect();
    call_with(app, path, &headers).await
}

/// `GET path` with these headers.
pub async fn call_with(app: &Router, path: &str, headers: &[(&str, String)]) -> Answer {
    let mut req = Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("the challenge is ASCII").to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        challenge,
        body,
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The decoded header and payload of a JWT.
pub fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next =
        || serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    (next(), next())
}

/// `token` with its header and/or payload replaced, and the original signature.
pub fn forge(token: &str, header: Option<&Value>, payload: Option<&Value>) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.{}",
        header.map_or(parts[0].to_owned(), enc),
        payload.map_or(parts[1].to_owned(), enc),
        parts[2]
    )
}

/// An HTTP proxy in front of the broker that counts requests per path.
#[derive(Debug, Clone)]
pub struct CountingProxy {
    pub base: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl CountingProxy {
    pub async fn start(target: String) -> Self {
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let c = counts.clone();
        let http = reqwest::Client::new();
        let app = Router::new().fallback(move |req: Request<Body>| {
            let c = c.clone();
            let http = http.clone();
            let target = target.clone();
            async move {
                let path = req.uri().path().to_owned();
                *c.lock().unwrap().entry(path.clone()).or_default() += 1;
                match http.get(format!("{target}{path}")).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.bytes().await.unwrap_or_default();
                        (
                            http::StatusCode::from_u16(status).unwrap(),
                            [("content-type", "application/json")],
                            body,
                        )
                            .into_response()
                    }
                    Err(_) => http::StatusCode::BAD_GATEWAY.into_response(),
                }
            }
        });
        let addr = serve(app).await;
        Self {
            base: format!("http://{addr}"),
            counts,
        }
    }

    pub fn count(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Serves `app` on `127.0.0.1:0`.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}
