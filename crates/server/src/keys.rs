//! Signing keys: generation, JWKs, signing and verification with aws-lc-rs.
//!
//! Keys are parsed once when loaded and kept as ready-to-use key pairs, so signing a
//! token never re-parses PKCS#8 (which costs more than the signature itself).

use crate::secret::RandomError;
use crate::store::{KeyRecord, Timestamp};
pub use auth_broker_jwt::{SigningAlg, VerifyingKey, thumbprint};
use auth_broker_proto::Jwk;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A key ready to sign: parsed once, with its JWS header already encoded.
pub struct SigningKey {
    kid: String,
    created_at: Timestamp,
    alg: SigningAlg,
    pair: Pair,
    rng: SystemRandom,
    /// base64url of `{"alg":..,"kid":..,"typ":"at+jwt"}`.
    header_b64: String,
    /// What DPoP nonces are made and checked with ([`crate::dpop`]), derived
    /// from this key's private material, so every replica holding the key agrees.
    nonce_key: aws_lc_rs::hmac::Key,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a signing key could not be made, loaded or used. Each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate a new {alg} key")]
    Generate {
        alg: SigningAlg,
        #[source]
        source: aws_lc_rs::error::Unspecified,
    },
    #[error("the stored {alg} key '{kid}' is unusable (not a PKCS#8 key of that algorithm)")]
    Unusable {
        kid: String,
        alg: SigningAlg,
        #[source]
        source: aws_lc_rs::error::KeyRejected,
    },
    #[error("the stored key '{kid}' has an algorithm this version does not know: '{alg}'")]
    UnknownAlg { kid: String, alg: String },
    #[error("signing with the {alg} key failed")]
    Sign {
        alg: SigningAlg,
        #[source]
        source: aws_lc_rs::error::Unspecified,
    },
    #[error("could not encode a token or key as JSON")]
    Json(#[source] serde_json::Error),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("the key generation task failed: {0}")]
    Task(String),
}

impl KeyError {
    /// Whether retrying later may succeed: the OS random source failing is
    /// (exhaustion, a sandbox), a broken stored key is not.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Random(_) | Self::Task(_))
    }
}

impl SigningKey {
    /// Generates a new key and the record to store it.
    pub fn generate(alg: SigningAlg, now: Timestamp) -> Result<KeyRecord, KeyError> {
        let rng = SystemRandom::new();
        let failed = |source| KeyError::Generate { alg, source };
        let pkcs8: Vec<u8> = match alg {
            SigningAlg::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            SigningAlg::Rs256 => {
                use aws_lc_rs::encoding::AsDer;
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(failed)?
                    .as_der()
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
            }
        };
        let pair = parse_pair(alg, "(new)", &pkcs8)?;
        let jwk = public_jwk(alg, &pair, None);
        let kid = thumbprint(&jwk);
        let jwk = Jwk {
            kid: kid.clone(),
            ..jwk
        };
        Ok(KeyRecord {
            kid,
            alg: alg.as_str().to_owned(),
            private_key: pkcs8,
            public_jwk: serde_json::to_string(&jwk).map_err(KeyError::Json)?,
            created_at: now,
            retired_at: None,
            // Nothing signed yet: a key retired before any broker used it can go
            // as soon as it is retired (plus leeway).
            max_token_ttl: Some(0),
        })
    }

    /// Parses a stored key.
    pub fn from_record(rec: &KeyRecord) -> Result<Self, KeyError> {
        let alg: SigningAlg = rec.alg.parse().map_err(|_| KeyError::UnknownAlg {
            kid: rec.kid.clone(),
            alg: rec.alg.clone(),
        })?;
        let pair = parse_pair(alg, &rec.kid, &rec.private_key)?;
        let header = format!(
            r#"{{"alg":"{}","kid":"{}","typ":"at+jwt"}}"#,
            alg.as_str(),
            rec.kid
        );
        Ok(Self {
            kid: rec.kid.clone(),
            created_at: rec.created_at,
            alg,
            pair,
            rng: SystemRandom::new(),
            header_b64: URL_SAFE_NO_PAD.encode(header),
            nonce_key: crate::dpop::derive_nonce_key(&rec.private_key),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// When the key was made (Unix seconds).
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key DPoP nonces are made with while this key signs.
    pub fn nonce_key(&self) -> &aws_lc_rs::hmac::Key {
        &self.nonce_key
    }

    /// The encoded JWS protected header.
    pub fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// Signs `msg`, returning the JWS signature bytes (raw `r||s` for ES256, RFC 7518 §3.4).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |source| KeyError::Sign {
            alg: self.alg,
            source,
        };
        match &self.pair {
            // The digest first and then the signature of it: the same ES256 signature
            // (RFC 7518 §3.4: ECDSA over the SHA-256 of the signing input) without the
            // one-shot EVP digest-and-sign context aws-lc would set up, copy and free
            // for each token (callgrind: about 1,600 fewer instructions a token).
            Pair::Ec(k) => Ok(k
                .sign_digest(&aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg))
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            Pair::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Pair::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(failed)?;
                Ok(sig)
            }
        }
    }
}

fn parse_pair(alg: SigningAlg, kid: &str, pkcs8: &[u8]) -> Result<Pair, KeyError> {
    let unusable = |source| KeyError::Unusable {
        kid: kid.to_owned(),
        alg,
        source,
    };
    Ok(match alg {
        SigningAlg::Es256 => Pair::Ec(
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                .map_err(unusable)?,
        ),
        SigningAlg::EdDsa => Pair::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(unusable)?),
        SigningAlg::Rs256 => Pair::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(unusable)?),
    })
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn public_jwk(alg: SigningAlg, pair: &Pair, kid: Option<String>) -> Jwk {
    let mut jwk = Jwk {
        kty: String::new(),
        kid: kid.unwrap_or_default(),
        use_: Some("sig".into()),
        alg: Some(alg.as_str().into()),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
    };
    match pair {
        Pair::Ec(k) => {
            // Uncompressed point: 0x04 || x || y.
            let p = k.public_key().as_ref();
            jwk.kty = "EC".into();
            jwk.crv = Some("P-256".into());
            jwk.x = Some(b64(&p[1..33]));
            jwk.y = Some(b64(&p[33..65]));
        }
        Pair::Ed(k) => {
            jwk.kty = "OKP".into();
            jwk.crv = Some("Ed25519".into());
            jwk.x = Some(b64(k.public_key().as_ref()));
        }
        Pair::Rsa(k) => {
            let p = k.public_key();
            jwk.kty = "RSA".into();
            jwk.n = Some(b64(p.modulus().big_endian_without_leading_zero()));
            jwk.e = Some(b64(p.exponent().big_endian_without_leading_zero()));
        }
    }
    jwk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alg_signs_and_verifies_through_its_jwk() {
        for alg in SigningAlg::ALL {
            let rec = SigningKey::generate(alg, 0).unwrap_or_else(|e| panic!("{alg}: {e}"));
            let key = SigningKey::from_record(&rec).unwrap_or_else(|e| panic!("{alg}: {e}"));
            let sig = key.sign(b"hello").unwrap_or_else(|e| panic!("{alg}: {e}"));
            let jwk: Jwk = serde_json::from_str(&rec.public_jwk).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(jwk.kid, rec.kid);
            assert_eq!(thumbprint(&jwk), rec.kid);
            assert!(
                !rec.public_jwk.contains("\"d\""),
                "no private member in the JWK"
            );
            let v = VerifyingKey::from_jwk(&jwk).unwrap_or_else(|| panic!("{alg}: jwk"));
            assert!(v.verify(b"hello", &sig), "{alg}");
            assert!(!v.verify(b"hellO", &sig), "{alg}");
        }
    }
}
