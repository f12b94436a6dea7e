//! One judgement: every fault a token can have, sent to the broker's `token-info` and
//! to a guard for the same issuer and audience at the same clock second, gets the
//! same verdict and the same message, in the JSON body and in `WWW-Authenticate`.

use crate::common::*;
use auth_broker_guard::{Guard, ManualClock};
use auth_broker_server::testing::{Raw, SigningKey};
use auth_broker_testkit::{Backend, TestBroker};
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
    let b = TestBroker::start_at(Backend::Sqlite, clock.clone()).await;
    let rec = Raw(&b.store)
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

/// `object` with member `name` set to `value`, or removed when `value` is `null`.
fn patch(object: &Value, name: &str, value: Value) -> Value {
    let mut o = object.clone();
    if value.is_null() {
        o.as_object_mut().unwrap().remove(name);
    } else {
        o[name] = value;
    }
    o
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

impl Verdict {
    fn new(status: u16, description: &str, challenge: Option<&str>) -> Self {
        Self {
            status,
            description: description.to_owned(),
            challenge: challenge.map_or("", challenge_description).to_owned(),
        }
    }
}

async fn token_info(b: &TestBroker, authorization: Option<&str>) -> Verdict {
    let query = auth_broker_proto::form::serialize([("audience", b.issuer.as_str())]);
    let a = b.token_info(authorization, &format!("?{query}")).await;
    Verdict::new(a.status, a.description(), a.challenge.as_deref())
}

async fn guard(app: &axum::Router, authorization: Option<&str>) -> Verdict {
    let a = call(app, "/me", authorization).await;
    Verdict::new(a.status, a.description(), a.challenge.as_deref())
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
    let with = |name: &str, value: Value| sign(&key, &header, &patch(&claims, name, value));
    let with_header = |name: &str, value: Value| sign(&key, &patch(&header, name, value), &claims);
    let good = sign(&key, &header, &claims);
    // The signature's first character changed: its last one carries unused bits, and a
    // change there could make the part non-canonical base64url instead of a bad signature.
    let at = good.rfind('.').unwrap() + 1;
    let first = if good[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let tampered = format!("{}{first}{}", &good[..at], &good[at + 1..]);
    let long_kid = format!("k\n{}", "x".repeat(11_000));

    // (what, token, status, a piece of the message); every row checked before the
    // test fails, so a failure lists them all.
    let (ok, no) = (200, 401);
    #[rustfmt::skip] // one row a line
    let rows: Vec<(&str, String, u16, &str)> = vec![
        ("good", good.clone(), ok, ""),
        ("typ with the media type prefix (RFC 9068 §2.1)", with_header("typ", json!("application/at+jwt")), ok, ""),
        ("aud an array (RFC 7519 §4.1.3)", with("aud", json!(["https://x.example", b.issuer])), ok, ""),
        ("expired within the leeway", with("exp", json!(NOW - 30)), ok, ""),
        ("expired", with("exp", json!(NOW - 61)), no, "expired 61 seconds ago"),
        ("not yet valid", with("nbf", json!(NOW + 120)), no, "not valid for another 120 seconds"),
        ("issued in the future", with("iat", json!(NOW + 120)), no, "issued 120 seconds in the future"),
        ("no exp", with("exp", Value::Null), no, "no 'exp' claim"),
        ("exp not a number", with("exp", json!("tomorrow")), no, "'exp' claim is not a NumericDate"),
        ("no iss", with("iss", Value::Null), no, "no 'iss' claim"),
        ("another issuer", with("iss", json!("https://evil.example")), no, "by 'https://evil.example'"),
        ("no aud", with("aud", Value::Null), no, "no 'aud' claim"),
        ("another audience", with("aud", json!("https://x.example")), no, "audience 'https://x.example'"),
        ("typ JWT", with_header("typ", json!("JWT")), no, "typ \"JWT\", not \"at+jwt\""),
        ("no typ", with_header("typ", Value::Null), no, "typ (none)"),
        ("no kid", with_header("kid", Value::Null), no, "no kid"),
        ("crit names an extension (RFC 7515 §4.1.11)", with_header("crit", json!(["exp"])), no, "marks 'exp' as critical"),
        ("crit empty", with_header("crit", json!([])), no, "crit that is not"),
        ("crit not an array", with_header("crit", json!("exp")), no, "crit that is not"),
        ("crit with a non-string", with_header("crit", json!([1])), no, "crit that is not"),
        ("alg none", with_header("alg", json!("none")), no, "alg none, which is not accepted"),
        ("alg HS256", with_header("alg", json!("HS256")), no, "alg HS256, which is not accepted"),
        ("alg of another key type", with_header("alg", json!("EdDSA")), no, "says alg EdDSA but key"),
        ("unknown key", with_header("kid", json!("nope")), no, "signed by key 'nope'"),
        ("a kid that forges log lines and runs on", with_header("kid", json!(long_kid)), no, r"key 'k\nxxxx"),
        ("bad signature", tampered, no, "signature does not verify"),
        ("not a JWT", "abc".into(), no, "not a JWT"),
        ("not base64url", "e30.e30.a".into(), no, "not base64url"),
        ("header not JSON", "e30.e30.e30".into(), no, "header part does not decode"),
    ];
    let mut wrong = Vec::new();
    for (what, token, status, needle) in rows {
        let authorization = Some(format!("Bearer {token}"));
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
