//! Signing keys: generation, JWKs, signing and verification with aws-lc-rs.
//!
//! Keys are parsed once when loaded and kept as ready-to-use key pairs, so signing a
//! token never re-parses PKCS#8 (which costs more than the signature itself).

use crate::store::{KeyRecord, StoreError, Timestamp};
use auth_broker_proto::Jwk;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;
use std::str::FromStr;

/// The JWS algorithms the broker signs with (RFC 7518 §3.1, RFC 8037).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256: small, fast, verified by every JWT library.
    #[default]
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key, for verifiers that know nothing else.
    Rs256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [Self::Es256, Self::EdDsa, Self::Rs256];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown signing algorithm '{s}'; use ES256, EdDSA or RS256"))
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A key ready to sign: parsed once, with its JWS header already encoded.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    pair: Pair,
    rng: SystemRandom,
    /// base64url of `{"alg":..,"kid":..,"typ":"at+jwt"}`.
    header_b64: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn key_err(what: &str) -> impl Fn(aws_lc_rs::error::KeyRejected) -> StoreError + '_ {
    move |e| StoreError::Other(format!("stored {what} key is unusable: {e}"))
}

fn unspecified(what: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> StoreError {
    move |_| StoreError::Other(format!("could not {what}"))
}

impl SigningKey {
    /// Generates a new key and the record to store it.
    pub fn generate(alg: SigningAlg, now: Timestamp) -> Result<KeyRecord, StoreError> {
        let rng = SystemRandom::new();
        let pkcs8: Vec<u8> = match alg {
            SigningAlg::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(unspecified("generate an ES256 key"))?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(unspecified("generate an EdDSA key"))?
                .as_ref()
                .to_vec(),
            SigningAlg::Rs256 => {
                use aws_lc_rs::encoding::AsDer;
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(unspecified("generate an RS256 key"))?
                    .as_der()
                    .map_err(unspecified("encode an RS256 key"))?
                    .as_ref()
                    .to_vec()
            }
        };
        let pair = parse_pair(alg, &pkcs8)?;
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
            public_jwk: serde_json::to_string(&jwk)
                .map_err(|e| StoreError::Other(e.to_string()))?,
            created_at: now,
            retired_at: None,
        })
    }

    /// Parses a stored key.
    pub fn from_record(rec: &KeyRecord) -> Result<Self, StoreError> {
        let alg: SigningAlg = rec.alg.parse().map_err(StoreError::Other)?;
        let pair = parse_pair(alg, &rec.private_key)?;
        let header = format!(
            r#"{{"alg":"{}","kid":"{}","typ":"at+jwt"}}"#,
            alg.as_str(),
            rec.kid
        );
        Ok(Self {
            kid: rec.kid.clone(),
            alg,
            pair,
            rng: SystemRandom::new(),
            header_b64: URL_SAFE_NO_PAD.encode(header),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The encoded JWS protected header.
    pub fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// Signs `msg`, returning the JWS signature bytes (raw `r||s` for ES256, RFC 7518 §3.4).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, StoreError> {
        match &self.pair {
            Pair::Ec(k) => Ok(k
                .sign(&self.rng, msg)
                .map_err(unspecified("sign with ES256"))?
                .as_ref()
                .to_vec()),
            Pair::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Pair::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(unspecified("sign with RS256"))?;
                Ok(sig)
            }
        }
    }
}

fn parse_pair(alg: SigningAlg, pkcs8: &[u8]) -> Result<Pair, StoreError> {
    Ok(match alg {
        SigningAlg::Es256 => Pair::Ec(
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                .map_err(key_err("ES256"))?,
        ),
        SigningAlg::EdDsa => Pair::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(key_err("EdDSA"))?),
        SigningAlg::Rs256 => Pair::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(key_err("RS256"))?),
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

/// The RFC 7638 JWK thumbprint, used as `kid`: stable, derived from the public key,
/// and the same on every replica that loads the key.
pub fn thumbprint(jwk: &Jwk) -> String {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s(&jwk.crv),
            s(&jwk.x),
            s(&jwk.y)
        ),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            s(&jwk.crv),
            s(&jwk.x)
        ),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s(&jwk.e), s(&jwk.n)),
    };
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// A public key that checks signatures, built from a JWK.
#[derive(Debug)]
pub struct VerifyingKey {
    pub kid: String,
    pub alg: SigningAlg,
    kind: VerifyKind,
}

#[derive(Debug)]
enum VerifyKind {
    Unparsed(signature::UnparsedPublicKey<Vec<u8>>),
    Rsa(signature::RsaPublicKeyComponents<Vec<u8>>),
}

impl VerifyingKey {
    /// Builds a verifier from a JWK; `None` for a JWK this broker would not have made.
    pub fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let alg: SigningAlg = jwk.alg.as_deref()?.parse().ok()?;
        let d = |o: &Option<String>| o.as_deref().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        let kind = match alg {
            SigningAlg::Es256 => {
                let mut point = vec![4u8];
                point.extend(d(&jwk.x)?);
                point.extend(d(&jwk.y)?);
                VerifyKind::Unparsed(signature::UnparsedPublicKey::new(
                    &signature::ECDSA_P256_SHA256_FIXED,
                    point,
                ))
            }
            SigningAlg::EdDsa => VerifyKind::Unparsed(signature::UnparsedPublicKey::new(
                &signature::ED25519,
                d(&jwk.x)?,
            )),
            SigningAlg::Rs256 => VerifyKind::Rsa(signature::RsaPublicKeyComponents {
                n: d(&jwk.n)?,
                e: d(&jwk.e)?,
            }),
        };
        Some(Self {
            kid: jwk.kid.clone(),
            alg,
            kind,
        })
    }

    /// Whether `sig` is this key's signature over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.kind {
            VerifyKind::Unparsed(k) => k.verify(msg, sig).is_ok(),
            VerifyKind::Rsa(k) => k
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
        }
    }
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
