//! Health, readiness, metrics and metadata.

use crate::{broker_with_client, on_both_stores};
use auth_broker_testkit::Backend;
use serde_json::Value;

on_both_stores!(health_readiness_metrics_and_metadata);

async fn health_readiness_metrics_and_metadata(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let r = b.http.get(b.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = b.http.get(b.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));

    // The recorder is process-wide (other tests' brokers count too): read the counter,
    // issue three tokens, and expect it up by at least three.
    let issued_ok = |m: &str| -> u64 {
        let series =
            r#"auth_broker_http_requests_total{route="/auth-broker/request-token",status="200"} "#;
        m.lines()
            .find_map(|l| l.strip_prefix(series))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let before = issued_ok(
        &b.http
            .get(b.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    for _ in 0..3 {
        b.token(&id, &secret).await;
    }
    assert_eq!(
        b.http
            .get(b.url("/no/such/path"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let wrong = auth_broker_proto::ClientSecret::new("abs_wrong".to_owned());
    assert_eq!(b.request_token(&id, &wrong).await.status(), 401);
    let m = b.http.get(b.url("/metrics")).send().await.unwrap();
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = m.text().await.unwrap();
    assert!(m.contains("auth_broker_tokens_issued_total"), "{m}");
    assert!(
        m.contains(
            r#"auth_broker_http_requests_total{route="/auth-broker/request-token",status="200"}"#
        ),
        "{m}"
    );
    assert!(issued_ok(&m) >= before + 3, "{m}");
    // SQLite: the three tokens read the client once from the database, then from the
    // cache (the recorder is shared, so only presence is checked across tests).
    if backend == Backend::Sqlite {
        let stats = auth_broker_server::testing::Raw(&b.served)
            .client_cache_stats()
            .unwrap();
        assert!(
            stats.on && stats.hits >= 2 && stats.misses >= 1 && stats.bypassed == 0,
            "{stats:?}"
        );
        assert!(m.contains("auth_broker_client_cache_hits_total "), "{m}");
        assert!(m.contains("auth_broker_client_cache_misses_total "), "{m}");
        assert!(
            m.contains("auth_broker_client_cache_bypassed_total "),
            "{m}"
        );
    }
    for series in [
        r#"auth_broker_http_requests_total{route="unmatched",status="404"}"#,
        r#"auth_broker_http_requests_total{route="/auth-broker/request-token",status="401"}"#,
        r#"auth_broker_http_request_duration_seconds_bucket{route="/auth-broker/request-token",le="#,
        r#"auth_broker_http_request_duration_seconds_count{route="/metrics"}"#,
    ] {
        assert!(m.contains(series), "{series} in {m}");
    }

    let meta: Value = b.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta["issuer"], b.issuer.as_str());
    for k in ["token_endpoint", "jwks_uri"] {
        assert!(
            meta[k].as_str().unwrap().starts_with(&b.issuer),
            "{k} is absolute: {meta}"
        );
    }
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    assert_eq!(meta["response_types_supported"], serde_json::json!([]));
    let jwks: Value = b.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].get("d").is_none(), "no private key material");
}

/// `deploy/grafana-dashboard.json` asks only for metrics the broker exports: every
/// `auth_broker_*` name in its queries is a series of `/metrics` after a token was
/// issued and one refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_names_metrics_the_broker_exports() {
    let (b, id, secret) = broker_with_client(Backend::Sqlite).await;
    assert_eq!(b.request_token(&id, &secret).await.status(), 200);
    let wrong = auth_broker_proto::ClientSecret::new("not-the-secret");
    assert_eq!(b.request_token(&id, &wrong).await.status(), 401);
    let text = crate::get_text(&b.http, &b.url("/metrics")).await;
    let exported: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let dashboard: Value =
        serde_json::from_str(include_str!("../../../../deploy/grafana-dashboard.json")).unwrap();
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("auth_broker_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.push(tail[..end].to_owned());
                rest = &tail[end..];
            }
        }
    }
    assert!(names.len() >= 6, "{names:?}");
    for name in &names {
        assert!(
            exported.contains(name.as_str()),
            "the dashboard queries {name}, which /metrics does not have: {exported:?}"
        );
    }
}
