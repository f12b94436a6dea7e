//! A JWKS document (RFC 7517 §5) as the guard reads it from the issuer's `jwks_uri`
//! (`auth_broker_guard::KeySet::from_json`), down to verifiers (`VerifyingKey::from_jwk`).

use auth_broker_guard::KeySet;
use auth_broker_jwt::{SigningAlg, thumbprint};
use auth_broker_proto::Jwks;

/// Reads `data` as a JWKS. A key set that loads is not empty and every key in it
/// comes from a JWK of the document with that `kid` and `alg`; every key can be
/// asked to verify (and refuses a signature that is not one) without panicking; the
/// document survives a serde round trip; thumbprints of any JWK can be computed.
pub fn run(data: &[u8]) {
    let doc: Option<Jwks> = serde_json::from_slice(data).ok();
    if let Some(doc) = &doc {
        let again: Jwks = serde_json::to_string(doc)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| panic!("a JWKS does not survive a serde round trip"));
        assert_eq!(&again, doc);
        for jwk in &doc.keys {
            let _ = thumbprint(jwk);
        }
    }
    match KeySet::from_json(data) {
        Ok(keys) => {
            let Some(doc) = doc else {
                panic!("a key set loaded from a document that is not a JWKS");
            };
            assert!(!keys.is_empty(), "an empty key set loaded");
            assert_eq!(keys.kids().count(), keys.len());
            for kid in keys.kids() {
                let Some(key) = keys.get(kid) else {
                    panic!("kid {kid:?} listed but not found");
                };
                assert_eq!(key.kid, kid);
                assert!(
                    doc.keys.iter().any(|j| j.kid == kid
                        && j.alg.as_deref().and_then(|a| a.parse::<SigningAlg>().ok())
                            == Some(key.alg)),
                    "kid {kid:?} with alg {} is in no JWK of the document",
                    key.alg
                );
                // The message and the "signature" are fuzzer bytes: never a valid
                // signature by a key the fuzzer built unless it forged one.
                assert!(
                    !key.verify(b"auth-broker fuzz", data),
                    "a forged signature verified"
                );
            }
        }
        Err(e) => {
            assert!(!e.is_empty());
        }
    }
}
