//! Makes a `private_key_jwt` client key and many client assertions for a load test
//! (`bench/key_clients.sh`): each token request needs a new assertion (its `jti` is
//! single use), and a load generator cannot sign, so they are made before the run.
//!
//!     cargo run --release -p auth-broker-server --example make_assertions -- \
//!         OUT_DIR CLIENT_ID TOKEN_URL COUNT [LIFETIME_SECS [PROOFS]]
//!
//! Writes `OUT_DIR/jwks.json` (the public key, for `client create --jwks`) when it
//! does not exist yet, else reads `OUT_DIR/key.pk8`, and `OUT_DIR/assertions.txt`:
//! COUNT ES256 assertions, one per line, `iss` = `sub` = CLIENT_ID, `aud` TOKEN_URL,
//! valid from now for LIFETIME_SECS (default 300). With PROOFS, also
//! `OUT_DIR/proofs.txt`: that many DPoP proofs (RFC 9449 §4.2) of `POST TOKEN_URL` by
//! a second ES256 key, each with its own `jti`, made now (a broker takes them for 5
//! minutes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, client_id, token_url, count, rest @ ..] = args.as_slice() else {
        eprintln!("usage: make_assertions OUT_DIR CLIENT_ID TOKEN_URL COUNT [LIFETIME_SECS]");
        std::process::exit(2);
    };
    let out = Path::new(out);
    let count: usize = count.parse().expect("COUNT is a number");
    let lifetime: u64 = rest
        .first()
        .map_or(300, |s| s.parse().expect("LIFETIME_SECS"));
    let rng = SystemRandom::new();
    let pk8_path = out.join("key.pk8");
    let pk8 = if pk8_path.exists() {
        std::fs::read(&pk8_path).unwrap()
    } else {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        std::fs::write(&pk8_path, doc.as_ref()).unwrap();
        doc.as_ref().to_vec()
    };
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pk8).unwrap();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let point = key.public_key().as_ref();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..]),
    }]});
    std::fs::write(out.join("jwks.json"), jwks.to_string()).unwrap();
    let header = b64(br#"{"alg":"ES256","kid":"bench","typ":"JWT"}"#);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(out.join("assertions.txt")).unwrap());
    for i in 0..count {
        let claims = serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": token_url,
            "iat": now, "exp": now + lifetime, "jti": format!("{now}-{i}"),
        });
        let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let sig = key.sign(&rng, input.as_bytes()).unwrap();
        writeln!(file, "{input}.{}", b64(sig.as_ref())).unwrap();
    }
    file.flush().unwrap();
    if let Some(proofs) = rest.get(1) {
        let proofs: usize = proofs.parse().expect("PROOFS is a number");
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let dpop =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let p = dpop.public_key().as_ref();
        let header = serde_json::json!({
            "typ": "dpop+jwt", "alg": "ES256",
            "jwk": {"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..])},
        });
        let header = b64(header.to_string().as_bytes());
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(out.join("proofs.txt")).unwrap());
        for i in 0..proofs {
            let claims = serde_json::json!({
                "jti": format!("p{now}-{i}"), "htm": "POST", "htu": token_url, "iat": now,
            });
            let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
            let sig = dpop.sign(&rng, input.as_bytes()).unwrap();
            writeln!(file, "{input}.{}", b64(sig.as_ref())).unwrap();
        }
        file.flush().unwrap();
    }
}
