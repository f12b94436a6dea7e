//! The fixed world the token targets judge tokens in: one issuer, one audience, one
//! clock second, and three signing keys (ES256, EdDSA, RS256) whose private halves
//! are committed in `keys.json`. They are fuzzing fixtures and sign nothing else;
//! fixed keys keep the committed corpus (real tokens signed by them) meaningful.

use auth_broker_guard::KeySet;
use auth_broker_proto::{Jwk, Jwks};
use auth_broker_server::testing::{KeyRecord, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use std::time::Duration;

/// The `iss` of the fixture broker.
pub const ISSUER: &str = "https://broker.example.com";
/// The audience the fixture API expects.
pub const AUDIENCE: &str = "https://api.example.com";
/// The clock second every judgement is made at (2025-11-24).
pub const NOW: i64 = 1_764_000_000;
/// The clock skew allowance (the judgement's default).
pub const LEEWAY: Duration = auth_broker_jwt::DEFAULT_LEEWAY;

/// One committed key, as `keys.json` stores it.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredKey {
    pub alg: String,
    pub kid: String,
    /// PKCS#8 (RFC 5958), standard base64.
    pub pkcs8: String,
    pub public_jwk: Jwk,
}

/// The keys, parsed once.
#[derive(Debug)]
pub struct Fixture {
    /// ES256, EdDSA, RS256, in that order.
    pub signing: Vec<SigningKey>,
    /// The JWKS document the broker would publish.
    pub jwks: String,
    /// The verifiers of that JWKS, by `kid` (what the broker's key ring and a
    /// guard's JWKS cache hold).
    pub keys: KeySet,
}

const KEYS_JSON: &str = include_str!("keys.json");

fn load() -> Fixture {
    let stored: Vec<StoredKey> = serde_json::from_str(KEYS_JSON)
        .unwrap_or_else(|e| panic!("src/keys.json is not a key list: {e}"));
    let mut signing = Vec::new();
    for k in &stored {
        let record = KeyRecord {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            private_key: STANDARD
                .decode(&k.pkcs8)
                .unwrap_or_else(|e| panic!("key {}: {e}", k.kid)),
            public_jwk: serde_json::to_string(&k.public_jwk).unwrap_or_default(),
            created_at: NOW - 86_400,
            retired_at: None,
            max_token_ttl: Some(3600),
        };
        signing.push(
            SigningKey::from_record(&record).unwrap_or_else(|e| panic!("key {}: {e}", k.kid)),
        );
    }
    let stored_len = stored.len();
    let jwks = serde_json::to_string(&Jwks {
        keys: stored.into_iter().map(|k| k.public_jwk).collect(),
    })
    .unwrap_or_default();
    let keys = KeySet::from_json(jwks.as_bytes())
        .unwrap_or_else(|e| panic!("the fixture JWKS does not load: {e}"));
    assert_eq!(keys.len(), stored_len, "a fixture key is not usable");
    Fixture {
        signing,
        jwks,
        keys,
    }
}

/// The fixture, loaded on first use.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(load)
}

/// Signs `payload` (any bytes) as a compact JWS with `key`, under `header` (JSON
/// bytes) or the key's own `{"alg","kid","typ":"at+jwt"}` header.
pub fn sign(key: &SigningKey, header: Option<&[u8]>, payload: &[u8]) -> String {
    let mut out = match header {
        Some(h) => URL_SAFE_NO_PAD.encode(h),
        None => key.header_b64().to_owned(),
    };
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let sig = key
        .sign(out.as_bytes())
        .unwrap_or_else(|e| panic!("the fixture key cannot sign: {e}"));
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    out
}

/// How the token targets read their input. The first byte chooses:
///
/// - `0 mod 4` or `1 mod 4`: the rest is the token itself (what arrives in a header);
/// - `2 mod 4`: the rest is a payload, signed by a fixture key (the second byte picks
///   ES256 or EdDSA) under that key's header: this reaches the claim checks, which
///   a random token never gets past the signature to;
/// - `3 mod 4`: like `2`, but the rest is `header JSON \n payload`.
///
/// Bit 2 of the first byte asks for an audience check where the target has one as
/// an option. RS256 keys verify but do not sign here: RSA signing is slow enough to
/// cost the fuzzer most of its executions.
pub fn token_from(data: &[u8]) -> Option<(String, bool)> {
    let (&mode, rest) = data.split_first()?;
    let with_audience = mode & 4 != 0;
    let token = match mode % 4 {
        0 | 1 => std::str::from_utf8(rest).ok()?.to_owned(),
        m => {
            let (&pick, rest) = rest.split_first()?;
            let key = &fixture().signing[usize::from(pick % 2)];
            if m == 2 {
                sign(key, None, rest)
            } else {
                let i = rest.iter().position(|b| *b == b'\n')?;
                sign(key, Some(&rest[..i]), &rest[i + 1..])
            }
        }
    };
    Some((token, with_audience))
}

/// What every refusal of a token must be: it never repeats the token, is one line (no
/// control character) and is bounded: the fixed text is under 400 characters, and a
/// message holds at most a few values from the token of at most 100 characters each,
/// escaped.
pub fn check_refusal(token: &str, message: &str) {
    if token.len() >= 64 {
        assert!(!message.contains(token), "the message repeats the token");
    }
    assert!(
        !message.chars().any(char::is_control),
        "a control character in {message:?}"
    );
    assert!(message.chars().count() < 2_500, "{message:?}");
}
