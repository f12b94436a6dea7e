//! The token endpoint's successful paths (INTERFACE §1).

use crate::{broker_with_client, expect_error, on_both_stores};
use auth_broker_proto::ClientSecret;
use auth_broker_proto::basic::header_value;
use auth_broker_server::admin::Actor;
use auth_broker_server::clock::ManualClock;
use auth_broker_testkit::{Backend, TestBroker};
use serde_json::Value;

on_both_stores!(
    basic_auth_gets_the_contract_answer,
    client_secret_post_works,
    form_encoded_and_raw_basic_both_work,
    scopes_subset_all_and_outside,
    audience_default_custom_and_mismatch,
    expires_in_is_rounded_down,
    cli_changes_apply_to_the_next_request,
    secret_rotation_with_grace,
);

async fn basic_auth_gets_the_contract_answer(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let r = b.request_token(&id, &secret).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let v: Value = r.json().await.unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["scope"], "read write");
    let e = v["expires_in"].as_u64().unwrap();
    assert!(e == 3599 || e == 3600, "{e}");
    assert_eq!(v["access_token"].as_str().unwrap().split('.').count(), 3);
}

async fn client_secret_post_works(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let body = auth_broker_proto::form::serialize([
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.expose_secret()),
    ]);
    let r = b
        .http
        .post(b.token_url())
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=UTF-8",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Basic plus the same client_id in the body, as some libraries send it.
    let r = b
        .http
        .post(b.token_url())
        .basic_auth(&id, Some(secret.expose_secret()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&client_id={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn form_encoded_and_raw_basic_both_work(backend: Backend) {
    let b = TestBroker::start(backend).await;
    // oauth2-rs's edge-case id, and a secret with every character that §2.3.1 encoding changes.
    let (id, secret) = ("aaa/;&", "s/+=:%x y");
    b.insert_client(id, secret, "").await;
    let secret = ClientSecret::new(secret);
    for encode in [true, false] {
        let r = b
            .http
            .post(b.token_url())
            .header("authorization", header_value(id, &secret, encode))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "form-encoded: {encode}");
    }
}

async fn scopes_subset_all_and_outside(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let ask = |scope: &'static str| {
        b.http
            .post(b.token_url())
            .basic_auth(&id, Some(secret.expose_secret()))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
    };
    let v: Value = ask("write").await.unwrap().json().await.unwrap();
    assert_eq!(v["scope"], "write");
    let v: Value = ask("write read write").await.unwrap().json().await.unwrap();
    assert_eq!(v["scope"], "write read");
    // An empty scope parameter counts as absent (RFC 6749 §3.1): all scopes.
    let v: Value = ask("").await.unwrap().json().await.unwrap();
    assert_eq!(v["scope"], "read write");
    let d = expect_error(ask("read admin").await.unwrap(), 400, "invalid_scope").await;
    assert!(d.contains("'admin'") && d.contains("read write"), "{d}");
    expect_error(ask("bad\"scope").await.unwrap(), 400, "invalid_scope").await;

    // A client with no scopes gets "" and no scope claim.
    let (id2, s2) = b.create_client("noscope", "", None).await;
    let r = b.request_token(&id2, &s2).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scope"], "");
    let claims = crate::jwt::claims_unverified(v["access_token"].as_str().unwrap());
    assert!(claims.get("scope").is_none());
}

async fn audience_default_custom_and_mismatch(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    let t = b.token(&id, &secret).await;
    assert_eq!(crate::jwt::claims_unverified(&t)["aud"], b.issuer.as_str());

    let (id2, s2) = b
        .create_client("api-client", "", Some("https://api.example.com"))
        .await;
    let t = b.token(&id2, &s2).await;
    assert_eq!(
        crate::jwt::claims_unverified(&t)["aud"],
        "https://api.example.com"
    );
    let ask = |aud: &'static str| {
        b.http
            .post(b.token_url())
            .basic_auth(&id2, Some(s2.expose_secret()))
            .form(&[("grant_type", "client_credentials"), ("audience", aud)])
            .send()
    };
    assert_eq!(ask("https://api.example.com").await.unwrap().status(), 200);
    expect_error(
        ask("https://other.example.com").await.unwrap(),
        400,
        "invalid_target",
    )
    .await;
    // RFC 8707 `resource` picks the audience the same way, and one the client does
    // not have is never silently ignored.
    let form = |params: &[(&'static str, &'static str)]| {
        let mut all = vec![("grant_type", "client_credentials")];
        all.extend_from_slice(params);
        b.http
            .post(b.token_url())
            .basic_auth(&id2, Some(s2.expose_secret()))
            .form(&all)
            .send()
    };
    let r = form(&[("resource", "https://api.example.com")])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for params in [
        &[("resource", "https://other.example.com")][..],
        &[
            ("audience", "https://api.example.com"),
            ("resource", "https://other.example.com"),
        ][..],
    ] {
        let d = expect_error(form(params).await.unwrap(), 400, "invalid_target").await;
        assert!(d.contains("https://other.example.com"), "{d}");
    }
}

async fn expires_in_is_rounded_down(backend: Backend) {
    // Half a second past a whole second: 3600 s lifetime leaves 3599.5 s, reported 3599.
    let clock = ManualClock::at_nanos(1_800_000_000 * 1_000_000_000 + 500_000_000);
    let b = TestBroker::start_at(backend, clock.clone()).await;
    let (id, secret) = b.create_client("c", "", None).await;
    let v: Value = b.request_token(&id, &secret).await.json().await.unwrap();
    assert_eq!(v["expires_in"], 3599);
    let token = v["access_token"].as_str().unwrap();
    let claims = crate::jwt::claims_unverified(token);
    assert_eq!(claims["iat"], 1_800_000_000);
    assert_eq!(claims["exp"], 1_800_003_600);
    // token-info counts the seconds left the same way (it once said 3600).
    let info = b.token_info(Some(&format!("Bearer {token}")), "").await;
    assert_eq!(info.body["expires_in"], 3599, "{info:?}");
    // Exactly on a whole second, the whole lifetime is left.
    let on_second = ManualClock::at_nanos(1_800_000_010 * 1_000_000_000);
    let b2 = TestBroker::start_at(backend, on_second).await;
    let (id, secret) = b2.create_client("c", "", None).await;
    let v: Value = b2.request_token(&id, &secret).await.json().await.unwrap();
    assert_eq!(v["expires_in"], 3600);
}

async fn cli_changes_apply_to_the_next_request(backend: Backend) {
    let (b, id, secret) = broker_with_client(backend).await;
    assert_eq!(b.request_token(&id, &secret).await.status(), 200);
    // `b.admin()` works on a separate handle on the database, as the CLI process has.
    let cli = b.admin();
    let me = Actor::cli();
    cli.set_enabled(&me, &id, false).await.unwrap();
    let disabled = b.request_token(&id, &secret).await;
    assert_eq!(disabled.status(), 401);
    assert_eq!(
        disabled.headers()["www-authenticate"],
        r#"Basic realm="auth-broker""#
    );
    cli.set_enabled(&me, &id, true).await.unwrap();
    assert_eq!(b.request_token(&id, &secret).await.status(), 200);
    cli.delete_client(&me, &id, None).await.unwrap();
    assert_eq!(b.request_token(&id, &secret).await.status(), 401);
}

async fn secret_rotation_with_grace(backend: Backend) {
    let (b, id, old) = broker_with_client(backend).await;
    let new = b
        .admin()
        .rotate_secret(&Actor::cli(), &id, 3600)
        .await
        .unwrap()
        .secret;
    assert_eq!(
        b.request_token(&id, &old).await.status(),
        200,
        "old secret in grace"
    );
    assert_eq!(b.request_token(&id, &new).await.status(), 200, "new secret");
    let newer = b
        .admin()
        .rotate_secret(&Actor::cli(), &id, 0)
        .await
        .unwrap()
        .secret;
    assert_eq!(
        b.request_token(&id, &new).await.status(),
        401,
        "no grace: old stops at once"
    );
    assert_eq!(b.request_token(&id, &newer).await.status(), 200);
}
