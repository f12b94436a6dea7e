//! The OpenAPI document: generated from the code, checked into the repository as
//! `openapi.json`, served at `GET /openapi.json`. The two must not drift apart.

use auth_broker_server::http::openapi;
use auth_broker_testkit::{Backend, TestBroker};
use serde_json::Value;
use std::path::PathBuf;

const UPDATE: &str = "AUTH_BROKER_UPDATE_OPENAPI";

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json")
}

/// Fails when the code's document differs from the file; `AUTH_BROKER_UPDATE_OPENAPI=1`
/// rewrites the file instead.
#[test]
fn checked_in_document_matches_the_code() {
    let generated = openapi::pretty_json();
    let path = checked_in();
    if std::env::var_os(UPDATE).is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is not the document the code generates; regenerate it with\n  \
         {UPDATE}=1 cargo test -p auth-broker-server --test it openapi::checked_in\n\
         and commit the result",
        path.display()
    );
}

/// The document describes what the broker serves: OpenAPI 3.1, every route, a schema
/// for every error response, and the security each authenticated endpoint needs.
#[test]
fn document_covers_every_endpoint() {
    let doc: Value = serde_json::from_str(&openapi::pretty_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc.get("servers").is_none(), "no host is hard-coded");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/auth-broker/request-token", "post"),
        ("/auth-broker/introspect", "post"),
        ("/auth-broker/revoke", "post"),
        ("/auth-broker/token-info", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/.well-known/oauth-authorization-server", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/admin/v1/clients", "get"),
        ("/admin/v1/clients", "post"),
        ("/admin/v1/clients/{client_id}", "get"),
        ("/admin/v1/clients/{client_id}", "patch"),
        ("/admin/v1/clients/{client_id}", "delete"),
        ("/admin/v1/clients/{client_id}/secret", "post"),
        ("/admin/v1/clients/{client_id}/revoke-tokens", "post"),
        ("/admin/v1/clients/{client_id}/usage", "get"),
        ("/admin/v1/keys", "get"),
        ("/admin/v1/keys/rotate", "post"),
        ("/admin/v1/audit", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    assert_eq!(paths.len(), 18, "an undocumented or removed route");
    // The cursors' published patterns are the ones the broker parses.
    for (path, pattern) in [
        (
            "/admin/v1/clients",
            auth_broker_server::admin::CLIENT_CURSOR_PATTERN,
        ),
        (
            "/admin/v1/audit",
            auth_broker_server::admin::AUDIT_CURSOR_PATTERN,
        ),
    ] {
        let after = paths[path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "after")
            .unwrap();
        assert_eq!(after["schema"]["pattern"], pattern, "{path}");
    }
    // Every admin operation needs a bearer token with an admin scope and answers
    // RFC 9457 problems.
    for (path, ops) in paths.iter().filter(|(p, _)| p.starts_with("/admin/")) {
        for (method, op) in ops.as_object().unwrap() {
            let scopes = &op["security"][0]["bearer"];
            let want = if method == "get" {
                "admin:read"
            } else {
                "admin:write"
            };
            assert_eq!(scopes[0], want, "{method} {path}");
            for status in ["400", "401", "403", "429", "503"] {
                assert!(
                    op["responses"][status]["content"]["application/problem+json"].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
    }
    for path in [
        "/auth-broker/request-token",
        "/auth-broker/introspect",
        "/auth-broker/revoke",
    ] {
        let op = &paths[path]["post"];
        assert!(
            op["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object(),
            "{path}"
        );
        assert_eq!(
            op["security"][0]["client_secret_basic"],
            Value::Array(vec![])
        );
        for status in ["400", "401", "408", "413", "429", "503"] {
            assert!(op["responses"][status].is_object(), "{path} {status}");
        }
    }
    // Every scheme an operation names is defined (the names are literals in the code).
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            for requirement in op["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{method} {path}: {name}");
                }
            }
        }
    }
    let token_info = &paths["/auth-broker/token-info"]["get"];
    assert_eq!(token_info["security"][0]["bearer"], Value::Array(vec![]));
    let flows = &doc["components"]["securitySchemes"]["client_credentials"]["flows"];
    assert_eq!(
        flows["clientCredentials"]["tokenUrl"],
        "/auth-broker/request-token"
    );
    let unauthorized = &doc["components"]["responses"]["InvalidClient"];
    assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
    assert_eq!(
        unauthorized["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorResponse"
    );
    let token = &doc["components"]["schemas"]["TokenResponse"];
    let mut required: Vec<&str> = token["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(
        required,
        ["access_token", "expires_in", "scope", "token_type"]
    );
}

/// What a live broker serves is the checked-in file, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_broker_serves_the_checked_in_document() {
    let b = TestBroker::start(Backend::Sqlite).await;
    let r = b.http.get(b.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served = r.text().await.unwrap();
    let on_disk = std::fs::read_to_string(checked_in()).unwrap();
    assert!(
        served == on_disk,
        "GET /openapi.json differs from openapi.json; regenerate the file with {UPDATE}=1 cargo test -p auth-broker-server --test it openapi::checked_in"
    );
    let r = b.http.post(b.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    b.stop().await;
}

/// What schemathesis found, kept fixed: each answer is one the document describes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_schemathesis_checks() {
    let (b, id, secret) = crate::broker_with_client(Backend::Sqlite).await;
    let token = b.token(&id, &secret).await;
    let form = |path: &str, body: &str| {
        b.http
            .post(b.url(path))
            .basic_auth(&id, Some(secret.expose_secret()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
    };

    // RFC 6749 §3.2: unrecognized parameters are ignored, even repeated...
    let r = form(
        "/auth-broker/request-token",
        "x=1&grant_type=client_credentials&x=2",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = form("/auth-broker/introspect", &format!("token={token}&y&y=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["active"], true);
    // ...while a recognized one sent twice is still refused.
    let r = form(
        "/auth-broker/request-token",
        "grant_type=client_credentials&scope=read&scope=write",
    )
    .send()
    .await
    .unwrap();
    crate::expect_error(r, 400, "invalid_request").await;

    // A client_secret without a client_id and no Basic header is no client
    // authentication at all: 401 invalid_client (RFC 6749 §5.2), as is an empty pair
    // (§3.1: empty parameters are omitted ones).
    for body in [
        "grant_type=client_credentials&client_secret=s",
        "grant_type=client_credentials&client_id=&client_secret=",
    ] {
        let r = b
            .http
            .post(b.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Basic realm="auth-broker""#
        );
        crate::expect_error(r, 401, "invalid_client").await;
    }

    // A revocation's 200 has no body, so no JSON Content-Type (RFC 7009 §2.2).
    let r = form("/auth-broker/revoke", &format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-type").is_none());
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.text().await.unwrap(), "");

    // A query token-info cannot read is a JSON invalid_request, not axum's text/plain.
    let fresh = b.token(&id, &secret).await;
    let r = b
        .http
        .get(b.url("/auth-broker/token-info?audience=a&audience=b"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    let d = crate::expect_error(r, 400, "invalid_request").await;
    assert!(d.contains("audience"), "{d}");
    b.stop().await;
}
