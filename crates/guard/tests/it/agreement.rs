//! One judgement: every fault a token can have, sent to the broker's `token-info` and
//! to a guard for the same issuer and audience at the same clock second, gets the
//! same verdict and the same message, in the JSON body and in `WWW-Authenticate`.

use crate::common::*;
use auth_broker_guard::{Guard, ManualClock};
use auth_broker_server::keys::SigningKey;
use auth_broker_testkit::{Backend, Options, TestBroker};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::sync::Arc;

/// The clock second both sides judge at.
const NOW: i64 = 1_800_000_000;

/// A broker at [`NOW`], its active signing key, and a guard for its issuer (and the
/// issuer as audience) on the same clock.
async fn both() -> (TestBroker, SigningKey, Guard) {
    let clock = ManualClock::at(NOW);
    let b = TestBroker::start_with(
        Backend::Sqlite,
        Options {
            clock: Some(clock.clone()),
            ..Options::default()
        },
    )
    .await;
    let rec = b
        .store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.retired_at.is_none())
        .unwrap();
    let key = SigningKey::from_record(&rec).unwrap();
    let guard = Guard::builder(&b.issuer)
        .clock(Arc::new(clock))
        .build()
        .await
        .unwrap();
    (b, key, guard)
}

/// A compact JWS of `header` and `payload` signed by `key`.
fn sign(key: &SigningKey, header: &Value, payload: &Value) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", enc(header), enc(payload));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The `error_description` of a `WWW-Authenticate: Bearer` challenge.
fn challenge_description(challenge: &str) -> &str {
    challenge
        .split_once(r#"error_description=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("", |(d, _)| d)
}

/// What one side answered: status, body description, challenge description.
#[derive(Debug, PartialEq)]
struct Verdict {
    status: u16,
    description: String,
    challenge: String,
}

async fn token_info(b: &TestBroker, authorization: Option<&str>) -> Verdict {
    let query = auth_broker_proto::form::serialize([("audience", b.issuer.as_str())]);
    let mut rb = b
        .http
        .get(b.url(&format!("/auth-broker/token-info?{query}")));
    if let Some(a) = authorization {
        rb = rb.header("authorization", a);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| challenge_description(v.to_str().unwrap()).to_owned())
        .unwrap_or_default();
    let body: Value = r.json().await.unwrap();
    Verdict {
        status,
        description: body["error_description"].as_str().unwrap_or("").to_owned(),
        challenge,
    }
}

async fn guard(app: &axum::Router, authorization: Option<&str>) -> Verdict {
    let a = call(app, "/me", authorization).await;
    Verdict {
        status: a.status,
        description: a.description().to_owned(),
        challenge: a
            .challenge
            .as_deref()
            .map(challenge_description)
            .unwrap_or("")
            .to_owned(),
    }
}

#[tokio::test]
async fn token_info_and_the_guard_give_the_same_verdict_and_message() {
    let (b, key, g) = both().await;
    let app = api(g);
    // The client must exist for token-info, which also checks it is still enabled.
    let (client, _) = b.create_client("c", "", None).await;
    let header = json!({"alg": "ES256", "kid": key.kid(), "typ": "at+jwt"});
    let claims = json!({
        "iss": b.issuer, "sub": client, "client_id": client, "aud": b.issuer,
        "iat": NOW - 10, "exp": NOW + 600, "jti": "j",
    });
    let with = |name: &str, value: Value| {
        let mut c = claims.clone();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(name);
        } else {
            c[name] = value;
        }
        sign(&key, &header, &c)
    };
    let with_header = |name: &str, value: Value| {
        let mut h = header.clone();
        if value.is_null() {
            h.as_object_mut().unwrap().remove(name);
        } else {
            h[name] = value;
        }
        sign(&key, &h, &claims)
    };
    let good = sign(&key, &header, &claims);
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let long_kid = format!("k\n{}", "x".repeat(11_000));

    // (what, Authorization value, status, a piece of the message)
    let rows: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("good", Some(good.clone()), 200, ""),
        (
            "typ application/at+jwt (RFC 9068 §2.1 with the media type prefix)",
            Some(with_header("typ", json!("application/at+jwt"))),
            200,
            "",
        ),
        (
            "aud as an array (RFC 7519 §4.1.3)",
            Some(with("aud", json!(["https://other.example", b.issuer]))),
            200,
            "",
        ),
        (
            "expired within the leeway",
            Some(with("exp", json!(NOW - 30))),
            200,
            "",
        ),
        (
            "expired",
            Some(with("exp", json!(NOW - 61))),
            401,
            "expired 61 seconds ago",
        ),
        (
            "not yet valid",
            Some(with("nbf", json!(NOW + 120))),
            401,
            "not valid for another 120 seconds",
        ),
        (
            "issued in the future",
            Some(with("iat", json!(NOW + 120))),
            401,
            "issued 120 seconds in the future",
        ),
        (
            "no exp",
            Some(with("exp", Value::Null)),
            401,
            "no 'exp' claim",
        ),
        (
            "exp not a number",
            Some(with("exp", json!("tomorrow"))),
            401,
            "'exp'",
        ),
        (
            "no iss",
            Some(with("iss", Value::Null)),
            401,
            "no 'iss' claim",
        ),
        (
            "another issuer",
            Some(with("iss", json!("https://evil.example"))),
            401,
            "issued by 'https://evil.example'",
        ),
        (
            "no aud",
            Some(with("aud", Value::Null)),
            401,
            "no 'aud' claim",
        ),
        (
            "another audience",
            Some(with("aud", json!("https://other.example"))),
            401,
            "for the audience 'https://other.example'",
        ),
        (
            "typ JWT",
            Some(with_header("typ", json!("JWT"))),
            401,
            "not \"at+jwt\"",
        ),
        ("no typ", Some(with_header("typ", Value::Null)), 401, "typ"),
        (
            "no kid",
            Some(with_header("kid", Value::Null)),
            401,
            "no kid",
        ),
        (
            "crit naming an extension (RFC 7515 §4.1.11)",
            Some(with_header("crit", json!(["exp"]))),
            401,
            "crit",
        ),
        (
            "crit empty",
            Some(with_header("crit", json!([]))),
            401,
            "crit",
        ),
        (
            "crit not an array of names",
            Some(with_header("crit", json!("exp"))),
            401,
            "crit",
        ),
        (
            "crit with a non-string",
            Some(with_header("crit", json!([1]))),
            401,
            "crit",
        ),
        (
            "alg none",
            Some(with_header("alg", json!("none"))),
            401,
            "alg none",
        ),
        (
            "alg HS256",
            Some(with_header("alg", json!("HS256"))),
            401,
            "alg HS256",
        ),
        (
            "alg of another key type",
            Some(with_header("alg", json!("EdDSA"))),
            401,
            "says alg EdDSA but key",
        ),
        (
            "unknown key",
            Some(with_header("kid", json!("nope"))),
            401,
            "signed by key 'nope'",
        ),
        (
            "a key id that forges log lines and runs on",
            Some(with_header("kid", json!(long_kid))),
            401,
            r"signed by key 'k\nxxxx",
        ),
        (
            "bad signature",
            Some(tampered),
            401,
            "signature does not verify",
        ),
        ("not a JWT", Some("abc".into()), 401, "not a JWT"),
        (
            "not base64url",
            Some("e30.e30.a".into()),
            401,
            "not base64url",
        ),
        (
            "header not JSON",
            Some("e30.e30.e30".into()),
            401,
            "header part does not decode",
        ),
    ];
    // Every row is checked before the test fails, so a failure lists them all.
    let mut wrong = Vec::new();
    for (what, token, status, needle) in rows {
        let authorization = token.map(|t| format!("Bearer {t}"));
        let info = token_info(&b, authorization.as_deref()).await;
        let guarded = guard(&app, authorization.as_deref()).await;
        if info != guarded {
            wrong.push(format!(
                "{what}: token-info {info:?}\n    but the guard {guarded:?}"
            ));
        } else if info.status != status || !info.description.contains(needle) {
            wrong.push(format!(
                "{what}: expected {status} with {needle:?}, both {info:?}"
            ));
        } else if info.description.len() > 600 || info.description.contains('\n') {
            wrong.push(format!(
                "{what}: an unbounded or multi-line message: {info:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The header faults, which the bearer parser (proto) judges for both.
    for (what, authorization) in [
        ("no header", None),
        ("Basic", Some("Basic ZGVtbzpzZWNyZXQ=")),
        ("quoted", Some("Bearer \"abc.def.ghi\"")),
    ] {
        let info = token_info(&b, authorization).await;
        assert_eq!(info, guard(&app, authorization).await, "{what}");
        assert_eq!(info.status, 401, "{what}");
    }
}
