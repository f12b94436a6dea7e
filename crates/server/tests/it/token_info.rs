//! `GET /auth-broker/token-info` names what is wrong with a bearer header or token.

use crate::{broker_with_client, on_both_stores};
use auth_broker_server::clock::ManualClock;
use auth_broker_testkit::{Backend, TestBroker};
use serde_json::Value;

on_both_stores!(
    good_tokens_and_each_way_of_being_wrong,
    expired_and_disabled
);

async fn info(b: &TestBroker, auth: Option<&str>, query: &str) -> (u16, String, Value) {
    let a = b.token_info(auth, query).await;
    (a.status, a.challenge.unwrap_or_default(), a.body)
}

async fn refused(b: &TestBroker, auth: Option<&str>, needle: &str) {
    let (status, challenge, body) = info(b, auth, "").await;
    assert_eq!(status, 401, "{auth:?}: {body}");
    assert!(
        challenge.starts_with("Bearer realm=\"auth-broker\""),
        "{challenge}"
    );
    let d = body["error_description"].as_str().unwrap();
    assert!(d.contains(needle), "{auth:?}: expected '{needle}' in '{d}'");
    if auth.is_some() {
        assert_eq!(body["error"], "invalid_token");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
}

async fn good_tokens_and_each_way_of_being_wrong(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let t = b.token(&id, &secret).await;

    let (status, _, body) = info(&b, Some(&format!("Bearer {t}")), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["claims"]["client_id"], id.as_str());
    assert!(body["expires_in"].as_i64().unwrap() > 3500);
    // The scheme is case-insensitive (RFC 7235 §2.1).
    assert_eq!(info(&b, Some(&format!("bearer {t}")), "").await.0, 200);

    refused(&b, None, "no Authorization header").await;
    refused(&b, Some(&format!("Basic {t}")), "'Basic' scheme").await;
    refused(&b, Some(&t), "without the 'Bearer ' prefix").await;
    refused(&b, Some(&format!("Bearer \"{t}\"")), "quotes").await;
    refused(&b, Some(&format!("Bearer Bearer {t}")), "twice").await;
    refused(
        &b,
        Some(&format!("Bearer {}", t.replacen('.', ". ", 1))),
        "whitespace",
    )
    .await;
    refused(&b, Some("Bearer abc"), "three base64url parts").await;
    refused(
        &b,
        Some("Bearer a$b.c.d"),
        "characters a bearer token cannot have",
    )
    .await;
    refused(&b, Some("Bearer a*b.c.d"), "characters").await;
    refused(&b, Some("Bearer e30.e30.%%%"), "characters").await;
    refused(&b, Some("Bearer e30.e30.a"), "not base64url").await;
    refused(&b, Some("Bearer"), "no token").await;
    // A signature from elsewhere.
    let mut parts: Vec<&str> = t.split('.').collect();
    let other = b.token(&id, &secret).await;
    let other_sig = other.split('.').nth(2).unwrap().to_owned();
    parts[2] = &other_sig;
    refused(
        &b,
        Some(&format!("Bearer {}", parts.join("."))),
        "signature does not verify",
    )
    .await;
    // An unknown key.
    let header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        r#"{"alg":"ES256","kid":"nope","typ":"at+jwt"}"#,
    );
    let forged = format!(
        "{header}.{}.{}",
        t.split('.').nth(1).unwrap(),
        t.split('.').nth(2).unwrap()
    );
    refused(&b, Some(&format!("Bearer {forged}")), "key 'nope'").await;
    // Wrong audience, when the caller says which one it expects.
    let (status, _, body) = info(
        &b,
        Some(&format!("Bearer {t}")),
        "?audience=https://api.example.com",
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("audience"),
        "{body}"
    );
}

async fn expired_and_disabled(backend: Backend) {
    let clock = ManualClock::at_nanos(1_800_000_000 * 1_000_000_000);
    let b = TestBroker::start_at(backend, clock.clone()).await;
    let (id, secret) = b.create_client("c", "", None).await;
    let t = b.token(&id, &secret).await;
    // Within the 60 s clock skew allowance past exp the token still passes, as it
    // does at a guard, with nothing left of its lifetime.
    clock.advance_secs(3600 + 42);
    let (status, _, body) = info(&b, Some(&format!("Bearer {t}")), "").await;
    assert_eq!(
        (status, &body["expires_in"]),
        (200, &Value::from(0)),
        "{body}"
    );
    clock.advance_secs(61 - 42);
    refused(&b, Some(&format!("Bearer {t}")), "expired 61 seconds ago").await;
    clock.advance_secs(-3600 - 61);
    assert_eq!(info(&b, Some(&format!("Bearer {t}")), "").await.0, 200);
    let me = auth_broker_server::admin::Actor::cli();
    b.admin().set_enabled(&me, &id, false).await.unwrap();
    refused(&b, Some(&format!("Bearer {t}")), "disabled since").await;
    b.admin().delete_client(&me, &id, None).await.unwrap();
    refused(&b, Some(&format!("Bearer {t}")), "deleted since").await;
}
