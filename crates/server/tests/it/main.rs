//! Integration tests: a real broker on 127.0.0.1:0, a fresh store, HTTP on the wire.
//! One test binary (modules below) so the suite links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod admin_api;
mod console;
mod dpop;
mod echo;
mod endpoint_errors;
mod jwt;
mod mtls;
mod openapi;
mod ops;
mod private_key_jwt;
mod redaction;
mod replicas;
mod resource;
mod settings;
mod store;
mod tls;
mod token;
mod token_info;

use auth_broker_testkit::{Backend, TestBroker};
use reqwest::Response;
use serde_json::Value;

/// Runs an `async fn(Backend)` test once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(auth_broker_testkit::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(auth_broker_testkit::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Asserts an RFC 6749 §5.2 error and returns its description.
pub async fn expect_error(r: Response, status: u16, code: &str) -> String {
    assert_eq!(r.status().as_u16(), status, "status");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], code, "error code in {v}");
    v["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A broker with one client (`scope` "read write") for quick tests.
pub async fn broker_with_client(
    backend: Backend,
) -> (TestBroker, String, auth_broker_proto::ClientSecret) {
    let b = TestBroker::start(backend).await;
    let (id, secret) = b.create_client("app", "read write", None).await;
    (b, id, secret)
}

/// The `field` of each error of an RFC 9457 problem, in order.
pub fn problem_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}

/// The body of `GET url` as text (a `/metrics` scrape).
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}
