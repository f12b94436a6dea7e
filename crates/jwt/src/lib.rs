//! Compact JWS (RFC 7515) parsing and signature verification from JWKs (RFC 7517),
//! for ES256, EdDSA and RS256, with aws-lc-rs, and the one judgement of an access
//! token (RFC 9068 §4) that the broker's `token-info` and introspection and the
//! resource-side guard all make: a [`Policy`], [`Policy::judge`], and a typed
//! [`Fault`] whose messages are written once.
//!
//! Also the wall clock both sides inject ([`clock`]), and the broker's answer to
//! ES256 signature malleability ([`ecdsa`]).
#![forbid(unsafe_code)]

pub mod assertion;
pub mod clock;
pub mod dpop;
pub mod ecdsa;
mod fault;
pub mod mtls;
mod policy;
pub mod replay;
#[cfg(test)]
mod test_keys;

pub use clock::{Clock, ManualClock, SystemClock};
pub use fault::{Claim, ClaimFault, Fault, HeaderFault, KeyFault, TimeFault};
pub use policy::{ACCESS_TOKEN_TYPES, DEFAULT_LEEWAY, DEFAULT_REQUIRED, Policy, Read, Verified};

use auth_broker_proto::Jwk;
use aws_lc_rs::signature;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

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

/// The protected header members a verifier looks at (in alphabetical order, as
/// `token-info` has always shown them).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Header {
    pub alg: String,
    /// RFC 7515 §4.1.11, as received (`null` included), for the [`Policy`] to judge:
    /// a name list the verifier must understand, or refuse the token.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub crit: Option<serde_json::Value>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
}

/// A member that is present is `Some`, even when it is `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// A compact JWS split into its parts, with header and claims decoded but the
/// signature not yet checked.
pub struct Unverified<'a> {
    pub header: Header,
    pub claims: serde_json::Value,
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

/// The signing input and the signature together are the whole bearer token (RFC 6750
/// §5.3: a token in a log is a usable credential), so `Debug` shows only the decoded
/// header and claims.
impl std::fmt::Debug for Unverified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unverified")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .field("signature_len", &self.signature.len())
            .finish_non_exhaustive()
    }
}

/// Why a string is not a well-formed JWT. Each says what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtFormatError {
    #[error(
        "the token is not a JWT: a JWT has three base64url parts separated by '.', this one has {0}"
    )]
    Parts(usize),
    #[error(
        "the token's {0} part is not base64url (RFC 7515 §2): it contains characters outside A-Z a-z 0-9 - _"
    )]
    NotBase64Url(&'static str),
    #[error("the token's {0} part does not decode to a JSON object")]
    NotJson(&'static str),
}

const PART_NAMES: [&str; 3] = ["header", "payload", "signature"];

/// Splits and decodes a compact JWS (RFC 7515 §7.1).
pub fn parse(token: &str) -> Result<Unverified<'_>, JwtFormatError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(JwtFormatError::Parts(parts.len()));
    }
    let mut decoded = Vec::with_capacity(3);
    for (i, p) in parts.iter().enumerate() {
        decoded.push(
            URL_SAFE_NO_PAD
                .decode(p)
                .map_err(|_| JwtFormatError::NotBase64Url(PART_NAMES[i]))?,
        );
    }
    let header: Header =
        serde_json::from_slice(&decoded[0]).map_err(|_| JwtFormatError::NotJson("header"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&decoded[1]).map_err(|_| JwtFormatError::NotJson("payload"))?;
    if !claims.is_object() {
        return Err(JwtFormatError::NotJson("payload"));
    }
    let signing_input = &token[..parts[0].len() + 1 + parts[1].len()];
    Ok(Unverified {
        header,
        claims,
        signing_input,
        signature: decoded.pop().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_what_is_malformed() {
        assert_eq!(parse("a.b").err(), Some(JwtFormatError::Parts(2)));
        assert_eq!(parse("a.b.c.d").err(), Some(JwtFormatError::Parts(4)));
        assert!(matches!(
            parse("eyJ9.b!.c"),
            Err(JwtFormatError::NotBase64Url(_))
        ));
        // "{}" is not a header without alg; "e30" is base64url of "{}".
        assert_eq!(
            parse("e30.e30.e30").err(),
            Some(JwtFormatError::NotJson("header"))
        );
        let header = b64(br#"{"alg":"ES256","typ":"at+jwt","kid":"k"}"#);
        assert_eq!(
            parse(&format!("{header}.WzFd.e30")).err(),
            Some(JwtFormatError::NotJson("payload"))
        );
        let token = format!("{header}.e30.e30");
        let ok = parse(&token).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.header.kid.as_deref(), Some("k"));
        assert_eq!(ok.signing_input, format!("{header}.e30"));
    }

    #[test]
    fn algorithms_parse_case_insensitively() {
        assert_eq!("es256".parse::<SigningAlg>(), Ok(SigningAlg::Es256));
        assert_eq!("EdDSA".parse::<SigningAlg>(), Ok(SigningAlg::EdDsa));
        assert!("HS256".parse::<SigningAlg>().is_err());
    }

    #[test]
    fn a_jwk_without_usable_members_is_refused() {
        let jwk = Jwk {
            kty: "EC".into(),
            kid: "k".into(),
            use_: None,
            alg: Some("ES256".into()),
            crv: Some("P-256".into()),
            x: None,
            y: None,
            n: None,
            e: None,
        };
        assert!(VerifyingKey::from_jwk(&jwk).is_none());
        let none = Jwk { alg: None, ..jwk };
        assert!(VerifyingKey::from_jwk(&none).is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "[A-Za-z0-9_.\\-=+/ ]{0,200}") {
            let _ = parse(&s);
        }
    }
}
