//! JWT mode: what passes, and each way a request is refused.

use crate::common::*;
use auth_broker_guard::{Fault, Guard, GuardError, ManualClock, TimeFault};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn a_valid_token_passes_and_a_repeat_comes_from_the_cache() {
    let b = broker().await;
    let guard = Guard::builder(&b.issuer).build().await.unwrap();
    assert_eq!(guard.audience(), b.issuer);
    let app = api(guard.clone());
    let t = token(&b, "invoices:read", None).await;

    let a = call(&app, "/invoices", Some(&bearer(&t))).await;
    assert_eq!(a.status, 200, "{a:?}");
    let (_, claims) = decode(&t);
    assert_eq!(a.body["client_id"], claims["client_id"]);
    assert_eq!(a.body["sub"], claims["client_id"]);
    assert_eq!(a.body["scope"], "invoices:read");
    assert_eq!(guard.stats().cache_hits, 0);

    // `bearer` in another case is the same scheme (RFC 7235 §2.1).
    let a = call(&app, "/me", Some(&format!("bearer  {t}"))).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(guard.stats().cache_hits, 1);
    assert_eq!(guard.stats().jwks_fetches, 1);

    let a = call(&app, "/public", None).await;
    assert_eq!((a.status, a.challenge), (200, None));
}

#[tokio::test]
async fn header_faults_answer_rfc_6750() {
    let b = broker().await;
    let guard = Guard::builder(&b.issuer)
        .realm("invoices")
        .build()
        .await
        .unwrap();
    let app = api(guard);

    // No credentials at all: a challenge without an error code (RFC 6750 §3.1).
    let a = call(&app, "/me", None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.challenge.as_deref(), Some(r#"Bearer realm="invoices""#));
    assert_eq!(a.body["error"], "invalid_request");
    assert!(a.description().contains("no Authorization header"), "{a:?}");
    // On a route with scopes the challenge says which (RFC 6750 §3).
    let a = call(&app, "/invoices", None).await;
    assert_eq!(
        a.challenge.as_deref(),
        Some(r#"Bearer realm="invoices", scope="invoices:read""#)
    );

    call(&app, "/me", Some("Basic ZGVtbzpzZWNyZXQ="))
        .await
        .assert_invalid_token("'Basic' scheme");
    call(&app, "/me", Some("Bearer \"abc.def.ghi\""))
        .await
        .assert_invalid_token("wrapped in quotes");
    call(&app, "/me", Some("Bearer Bearer abc"))
        .await
        .assert_invalid_token("'Bearer' appears twice");
    call(&app, "/me", Some("Bearer abc def"))
        .await
        .assert_invalid_token("contains whitespace");
    call(&app, "/me", Some("Bearer"))
        .await
        .assert_invalid_token("no token after it");
    call(&app, "/me", Some("eyJhbGciOi.x.y"))
        .await
        .assert_invalid_token("without the 'Bearer ' prefix");
    call(&app, "/me", Some("Bearer abc"))
        .await
        .assert_invalid_token("not a JWT");
    call(&app, "/me", Some("Bearer a.b!c.d"))
        .await
        .assert_invalid_token("characters a bearer token cannot have");
    call(&app, "/me", Some("Bearer e30.e30.e30"))
        .await
        .assert_invalid_token("header part does not decode");
}

#[tokio::test]
async fn token_faults_have_precise_descriptions() {
    let b = broker().await;
    let guard = Guard::builder(&b.issuer)
        .jwks_refetch_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let app = api(guard);
    let t = token(&b, "invoices:read", None).await;
    let (header, claims) = decode(&t);

    // Altered claims: the signature no longer matches.
    let mut more = claims.clone();
    more["scope"] = json!("invoices:read admin");
    call(&app, "/me", Some(&bearer(&forge(&t, None, Some(&more)))))
        .await
        .assert_invalid_token("signature does not verify");

    let mut h = header.clone();
    h["typ"] = json!("JWT");
    let a = call(&app, "/me", Some(&bearer(&forge(&t, Some(&h), None)))).await;
    a.assert_invalid_token("not \"at+jwt\"");
    // The quotes are replaced in the header value, which must stay a quoted-string.
    assert!(
        a.challenge
            .unwrap()
            .contains("typ 'JWT', not 'at+jwt' (RFC 9068 section 2.1)")
    );

    let mut h = header.clone();
    h.as_object_mut().unwrap().remove("kid");
    call(&app, "/me", Some(&bearer(&forge(&t, Some(&h), None))))
        .await
        .assert_invalid_token("has no kid");

    let mut h = header.clone();
    h["kid"] = json!("someone-elses-key");
    call(&app, "/me", Some(&bearer(&forge(&t, Some(&h), None))))
        .await
        .assert_invalid_token(
            "signed by key 'someone-elses-key', which the issuer's JWKS does not have",
        );

    let mut h = header.clone();
    h["alg"] = json!("RS256");
    call(&app, "/me", Some(&bearer(&forge(&t, Some(&h), None))))
        .await
        .assert_invalid_token("says alg RS256 but key");

    // A kid is echoed escaped in the JSON body (non-ASCII as it is, a control
    // character and the backslash escaped), and percent-encoded in the header.
    let mut h = header;
    h["kid"] = json!("clé\"\\\u{7}");
    let a = call(&app, "/me", Some(&bearer(&forge(&t, Some(&h), None)))).await;
    a.assert_invalid_token(r#"signed by key 'clé"\\\u{7}'"#);
    let c = a.challenge.unwrap();
    assert!(
        c.contains("signed by key 'cl%C3%A9'%5C%5C%5Cu{7}', which"),
        "{c}"
    );
}

#[tokio::test]
async fn a_token_for_another_audience_or_issuer_is_refused() {
    let b = broker().await;
    let app = api(Guard::builder(&b.issuer)
        .audience("https://invoices.example")
        .build()
        .await
        .unwrap());
    let other = token(&b, "invoices:read", Some("https://payroll.example")).await;
    call(&app, "/me", Some(&bearer(&other))).await.assert_invalid_token(
        "the token is for the audience 'https://payroll.example', not 'https://invoices.example'",
    );
    let right = token(&b, "invoices:read", Some("https://invoices.example")).await;
    assert_eq!(
        call(&app, "/invoices", Some(&bearer(&right))).await.status,
        200
    );

    // The issuer default audience refuses a token for a specific API.
    let app = api(Guard::builder(&b.issuer).build().await.unwrap());
    call(&app, "/me", Some(&bearer(&right)))
        .await
        .assert_invalid_token("for the audience 'https://invoices.example'");

    // A second broker with its own keys: its tokens name a key the first does not have.
    let b2 = broker().await;
    let foreign = token(&b2, "", None).await;
    call(&app, "/me", Some(&bearer(&foreign)))
        .await
        .assert_invalid_token("which the issuer's JWKS does not have");
}

#[tokio::test]
async fn expiry_and_clock_skew_use_the_injected_clock() {
    let b = broker().await;
    let clock = ManualClock::now();
    let guard = Guard::builder(&b.issuer)
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    let app = api(guard.clone());
    let t = token(&b, "", None).await;
    let (_, claims) = decode(&t);
    let exp = claims["exp"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();

    clock.set(iat);
    assert_eq!(call(&app, "/me", Some(&bearer(&t))).await.status, 200);
    // Within the 60 s leeway past exp, still good (and served from the cache).
    clock.set(exp + 59);
    assert_eq!(call(&app, "/me", Some(&bearer(&t))).await.status, 200);
    assert_eq!(guard.stats().cache_hits, 1);
    // Past it: the cached entry has expired with the token.
    clock.set(exp + 61);
    call(&app, "/me", Some(&bearer(&t)))
        .await
        .assert_invalid_token("the token expired 61 seconds ago");
    clock.set(exp + 3600);
    call(&app, "/me", Some(&bearer(&t)))
        .await
        .assert_invalid_token("the token expired 3600 seconds ago");

    // A guard whose clock is behind the broker's by more than the leeway.
    clock.set(iat - 90);
    call(&app, "/me", Some(&bearer(&t)))
        .await
        .assert_invalid_token("issued 90 seconds in the future");
    clock.set(iat - 30);
    assert_eq!(call(&app, "/me", Some(&bearer(&t))).await.status, 200);

    // A stricter leeway.
    let strict = Guard::builder(&b.issuer)
        .clock(Arc::new(ManualClock::at(exp + 5)))
        .leeway(Duration::from_secs(0))
        .build()
        .await
        .unwrap();
    assert_eq!(
        strict.validate(&t).await.unwrap_err(),
        GuardError::Token(Fault::Time(TimeFault::Expired {
            secs_ago: 5,
            leeway: 0
        }))
    );
}

#[tokio::test]
async fn a_missing_scope_is_403_insufficient_scope_naming_it() {
    let b = broker().await;
    let app = api(Guard::builder(&b.issuer)
        .realm("api")
        .build()
        .await
        .unwrap());
    let t = token(&b, "invoices:write profile", None).await;
    assert_eq!(call(&app, "/me", Some(&bearer(&t))).await.status, 200);
    let a = call(&app, "/invoices", Some(&bearer(&t))).await;
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.body["error"], "insufficient_scope");
    assert_eq!(
        a.description(),
        "the token's scope is 'invoices:write profile', but this route requires 'invoices:read' (missing: 'invoices:read'); ask the broker for a token with that scope (the client must be allowed it)"
    );
    let c = a.challenge.unwrap();
    assert!(c.starts_with(r#"Bearer realm="api", error="insufficient_scope", error_description="the token's scope is"#), "{c}");
    assert!(c.ends_with(r#", scope="invoices:read""#), "{c}");

    let t = token(&b, "invoices:read", None).await;
    let a = call(&app, "/admin", Some(&bearer(&t))).await;
    assert_eq!(a.status, 403);
    assert!(
        a.description()
            .contains("requires 'admin invoices:read' (missing: 'admin')"),
        "{a:?}"
    );
    assert!(
        a.challenge
            .unwrap()
            .ends_with(r#"scope="admin invoices:read""#)
    );
    let t = token(&b, "invoices:read admin", None).await;
    assert_eq!(call(&app, "/admin", Some(&bearer(&t))).await.status, 200);
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_not_a_pass() {
    let b = broker().await;
    let app = api(Guard::builder(&b.issuer).build().await.unwrap());
    let t = token(&b, "", None).await;
    let a = call(&app, "/unguarded-extractor", Some(&bearer(&t))).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.body["error"], "server_error");
}

#[tokio::test]
async fn over_a_real_socket_through_a_discovery_proxy() {
    let b = broker().await;
    // The issuer's name is not where the guard reaches it: metadata URLs are rebased.
    let proxy = CountingProxy::start(b.base.clone()).await;
    let guard = Guard::builder(&b.issuer)
        .discovery_base(&proxy.base)
        .build()
        .await
        .unwrap();
    assert_eq!(proxy.count("/.well-known/oauth-authorization-server"), 1);
    assert_eq!(proxy.count("/.well-known/jwks.json"), 1);
    let addr = serve(api(guard)).await;
    let http = reqwest::Client::new();
    let t = token(&b, "invoices:read", None).await;
    let r = http
        .get(format!("http://{addr}/invoices"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("http://{addr}/invoices"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=")
    );
}

#[tokio::test]
async fn building_fails_clearly_when_the_issuer_is_wrong_or_unreachable() {
    let b = broker().await;
    let err = Guard::builder("https://broker.example")
        .discovery_base(&b.base)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("names the issuer"), "{err}");
    let err = Guard::builder("http://127.0.0.1:9")
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("could not read the authorization server metadata at http://127.0.0.1:9/.well-known/oauth-authorization-server"), "{err}");
}

/// An ES256 signature has a twin, (r, n - s), that verifies as well and that anyone
/// holding the token can make. The twin is accepted (a broker not yet upgraded signs
/// high-S half the time) but is the same token to the cache: one entry, no second
/// signature check. See `auth_broker_jwt::ecdsa`.
#[tokio::test]
async fn the_high_s_twin_of_a_token_shares_its_cache_entry() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let b = broker().await;
    let guard = Guard::builder(&b.issuer).build().await.unwrap();
    let t = token(&b, "invoices:read", None).await;
    let (input, sig) = t.rsplit_once('.').unwrap();
    let mut twin = URL_SAFE_NO_PAD.decode(sig).unwrap();
    auth_broker_jwt::ecdsa::es256_twin(&mut twin);
    let twin = format!("{input}.{}", URL_SAFE_NO_PAD.encode(twin));
    assert_ne!(twin, t);

    let first = guard.validate(&twin).await.unwrap();
    let again = guard.validate(&t).await.unwrap();
    assert_eq!(first, again);
    let stats = guard.stats();
    assert_eq!(
        (stats.cached, stats.cache_hits),
        (1, 1),
        "the two encodings of one signature are one cache entry"
    );
    assert_eq!(guard.validate(&twin).await.unwrap(), first);
    assert_eq!(guard.stats().cache_hits, 2);
}
