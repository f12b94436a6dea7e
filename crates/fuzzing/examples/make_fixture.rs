//! Makes the fuzzing fixture once: `src/keys.json` (three fresh keys) when it holds
//! none (`[]`), and the seed inputs of the token, JWKS and token-response targets under
//! `fuzz/corpus/<target>/seed-*`, signed with those keys.
//!
//! `cargo run -p auth-broker-fuzzing --example make_fixture`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_fuzzing::fixture::{self, AUDIENCE, ISSUER, NOW, StoredKey};
use auth_broker_jwt::SigningAlg;
use auth_broker_proto::Jwk;
use auth_broker_server::testing::SigningKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = root.join("src/keys.json");
    if std::fs::read_to_string(&keys).unwrap_or_default().trim() == "[]" {
        let stored: Vec<StoredKey> = SigningAlg::ALL
            .into_iter()
            .map(|alg| {
                let rec = SigningKey::generate(alg, NOW).unwrap();
                StoredKey {
                    alg: rec.alg,
                    kid: rec.kid,
                    pkcs8: STANDARD.encode(&rec.private_key),
                    public_jwk: serde_json::from_str::<Jwk>(&rec.public_jwk).unwrap(),
                }
            })
            .collect();
        std::fs::write(&keys, serde_json::to_string_pretty(&stored).unwrap() + "\n").unwrap();
        println!(
            "wrote {}; run again (it is compiled in) to write the seeds",
            keys.display()
        );
        return;
    }
    let corpus = root.join("../../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let f = fixture::fixture();
    let good = json!({
        "iss": ISSUER, "sub": "demo", "client_id": "demo", "aud": AUDIENCE,
        "iat": NOW - 10, "exp": NOW + 3590, "jti": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "scope": "invoices:read invoices:write"
    });
    let variants: Vec<(&str, serde_json::Value)> = vec![
        ("good", good.clone()),
        ("expired", json!({"exp": NOW - 3600, "iat": NOW - 7200})),
        ("nbf_future", json!({"nbf": NOW + 600})),
        ("iat_future", json!({"iat": NOW + 600})),
        ("wrong_aud", json!({"aud": "https://other.example.com"})),
        (
            "aud_array",
            json!({"aud": [AUDIENCE, "https://other.example.com"]}),
        ),
        ("wrong_iss", json!({"iss": "https://evil.example.com"})),
        ("no_exp", json!({"exp": null})),
        (
            "float_times",
            json!({"exp": 1.0e18, "iat": 1_763_999_990.5}),
        ),
        ("string_exp", json!({"exp": "soon"})),
        (
            "extreme_times",
            json!({"exp": i64::MAX, "nbf": i64::MIN, "iat": i64::MIN}),
        ),
        ("scope_spaces", json!({"scope": "  a  b "})),
    ];
    let claims = |patch: &serde_json::Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::to_vec(&c).unwrap()
    };
    let target = "token_judgement";
    // Bit 2 of the first byte: the audience is checked. (The two token targets this
    // one replaced wrote the seeds without it as their own; they are kept with the
    // `-any-aud` suffix.)
    for (bit, suffix) in [(4u8, ""), (0, "-any-aud")] {
        for (i, key) in f.signing.iter().enumerate() {
            let alg = key.alg().as_str();
            for (name, patch) in &variants {
                let payload = claims(patch);
                let token = fixture::sign(key, None, &payload);
                // Raw mode (first byte 0 or 4).
                write(
                    target,
                    &format!("{alg}-{name}{suffix}"),
                    &[&[bit][..], token.as_bytes()].concat(),
                );
                if i < 2 {
                    // Signed mode: the fuzzer mutates the payload and the harness signs.
                    let mode = [2u8 | bit, u8::try_from(i).unwrap()];
                    write(
                        target,
                        &format!("{alg}-{name}-payload{suffix}"),
                        &[&mode[..], &payload].concat(),
                    );
                }
            }
            let tampered = fixture::sign(key, None, &claims(&json!({})));
            let (head, _) = tampered.rsplit_once('.').unwrap();
            write(
                target,
                &format!("{alg}-bad-signature{suffix}"),
                format!("\x00{head}.AAAA").as_bytes(),
            );
        }
        // Header mode: header JSON \n payload, signed by the EdDSA key.
        let kid = &f.signing[1].kid().to_owned();
        for (name, header) in [
            ("typ-jwt", json!({"alg": "EdDSA", "kid": kid, "typ": "JWT"})),
            (
                "typ-app",
                json!({"alg": "EdDSA", "kid": kid, "typ": "application/at+jwt"}),
            ),
            ("no-kid", json!({"alg": "EdDSA", "typ": "at+jwt"})),
            (
                "alg-none",
                json!({"alg": "none", "kid": kid, "typ": "at+jwt"}),
            ),
            (
                "alg-es256",
                json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}),
            ),
            (
                "unknown-kid",
                json!({"alg": "EdDSA", "kid": "nope", "typ": "at+jwt"}),
            ),
            (
                "crit",
                json!({"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "crit": ["exp"]}),
            ),
            (
                "crit-empty",
                json!({"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "crit": []}),
            ),
        ] {
            let mut input = vec![3u8 | bit, 1];
            input.extend(serde_json::to_vec(&header).unwrap());
            input.push(b'\n');
            input.extend(claims(&json!({})));
            write(target, &format!("header-{name}{suffix}"), &input);
        }
        for (name, raw) in [
            ("two-parts", "eyJhbGciOiJFUzI1NiJ9.e30"),
            ("not-b64", "eyJ9.b!.c"),
            ("empty-header", "e30.e30.e30"),
            ("opaque", "abo_4fJ2kLm9QxZ8rT1vW3yB6nP0sD5gH7jK"),
        ] {
            write(
                target,
                &format!("raw-{name}{suffix}"),
                &[b"\x00", raw.as_bytes()].concat(),
            );
        }
    }

    write("jwks_document", "fixture", f.jwks.as_bytes());
    let jwks: serde_json::Value = serde_json::from_str(&f.jwks).unwrap();
    for (i, key) in jwks["keys"].as_array().unwrap().iter().enumerate() {
        write(
            "jwks_document",
            &format!("single-{i}"),
            json!({"keys": [key]}).to_string().as_bytes(),
        );
        let mut no_alg = key.clone();
        no_alg.as_object_mut().unwrap().remove("alg");
        write(
            "jwks_document",
            &format!("no-alg-{i}"),
            json!({"keys": [no_alg]}).to_string().as_bytes(),
        );
    }
    for (name, doc) in [
        ("empty", json!({"keys": []})),
        ("not-jwks", json!({"issuer": ISSUER})),
        (
            "hs256",
            json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"}]}),
        ),
        (
            "bad-b64",
            json!({"keys": [{"kty": "EC", "kid": "e", "alg": "ES256", "crv": "P-256", "x": "!!", "y": "??"}]}),
        ),
        (
            "short-rsa",
            json!({"keys": [{"kty": "RSA", "kid": "r", "alg": "RS256", "n": "AQAB", "e": "AQAB"}]}),
        ),
        (
            "mixed",
            json!({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}, jwks["keys"][1].clone()]}),
        ),
    ] {
        write("jwks_document", name, doc.to_string().as_bytes());
    }

    for (name, pick, body) in [
        (
            "ok",
            0u8,
            r#"{"access_token":"eyJhbGciOiJFUzI1NiJ9.e30.c2ln","expires_in":3599,"scope":"invoices:read","token_type":"bearer"}"#,
        ),
        (
            "ok-minimal",
            0,
            r#"{"access_token":"x","token_type":"Bearer"}"#,
        ),
        ("ok-mac", 0, r#"{"access_token":"x","token_type":"mac"}"#),
        (
            "ok-empty-token",
            0,
            r#"{"access_token":"","token_type":"bearer"}"#,
        ),
        (
            "ok-negative-expiry",
            0,
            r#"{"access_token":"x","token_type":"bearer","expires_in":-1}"#,
        ),
        (
            "invalid-request",
            3,
            r#"{"error":"invalid_request","error_description":"the parameter 'grant_type' is missing"}"#,
        ),
        (
            "invalid-client",
            4,
            r#"{"error":"invalid_client","error_description":"bad credentials","error_uri":"https://broker.example.com/docs#invalid_client"}"#,
        ),
        (
            "slow-down",
            5 | 8 | 0x30,
            r#"{"error":"temporarily_unavailable"}"#,
        ),
        ("vendor-code", 6, r#"{"error":"vendor_thing"}"#),
        ("html", 7 | 8, "<html><body>Bad Gateway</body></html>"),
        ("garbage-200", 0, "garbage"),
        ("retry-after-date", 3, "Wed, 21 Oct 2015 07:28:00 GMT"),
    ] {
        write(
            "token_response",
            name,
            &[&[pick][..], body.as_bytes()].concat(),
        );
    }
    println!("seeds written under {}", corpus.display());
}
