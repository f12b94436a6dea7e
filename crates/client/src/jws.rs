//! Private keys that sign compact JWS (RFC 7515 §7.1): the client's key for
//! `private_key_jwt` assertions (RFC 7523 §2.2) and the DPoP key (RFC 9449 §4).
//!
//! Keys are read from PEM (PKCS#8, SEC1 `EC PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`) or
//! from a private JWK (RFC 7517 §4, RFC 7518 §6), parsed once into aws-lc-rs key pairs
//! (the one crypto backend), so signing never re-parses the key. The bytes read from a
//! file are zeroized when dropped; `Debug` shows the algorithm, `kid` and thumbprint,
//! never key material.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::pem::{PemObject, SectionKind};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use zeroize::Zeroizing;

/// base64url without padding (RFC 7515 §2).
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWS algorithms a [`SigningKey`] signs with (RFC 7518 §3.1; EdDSA per RFC 8037
/// §3.1): those INTERFACE §8 lists for client assertions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JwsAlg {
    /// ECDSA on P-256 with SHA-256, the signature as fixed-width `r || s` (RFC 7518 §3.4).
    Es256,
    /// Ed25519 (RFC 8037 §3.1).
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3): what an RSA key signs with
    /// unless told otherwise.
    Rs256,
    /// RSASSA-PSS with SHA-256 and a 32-byte salt (RFC 7518 §3.5).
    Ps256,
}

impl JwsAlg {
    /// Every algorithm, in the order they are named in errors.
    pub const ALL: [Self; 4] = [Self::Es256, Self::EdDsa, Self::Rs256, Self::Ps256];

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }
}

impl fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwsAlg {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| KeyError::UnknownAlg(s.to_owned()))
    }
}

/// Why a private key cannot be read or used. Each keeps its cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the key file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but holds no usable key; the cause says why.
    #[error("the key file {} is not usable", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<KeyError>,
    },
    /// PEM that does not decode.
    #[error("the PEM does not decode")]
    Pem(#[source] rustls::pki_types::pem::Error),
    /// PEM without a private key block.
    #[error(
        "no private key in it: expected a PEM block '-----BEGIN PRIVATE KEY-----' (PKCS#8), '-----BEGIN EC PRIVATE KEY-----' (SEC1) or '-----BEGIN RSA PRIVATE KEY-----' (PKCS#1), or a private JWK (JSON){}",
        found_what(found)
    )]
    NoPrivateKey {
        /// The PEM blocks found instead (e.g. `Certificate`).
        found: Vec<String>,
    },
    /// An encrypted PKCS#8 key: it has to be decrypted first.
    #[error(
        "the private key is encrypted ('ENCRYPTED PRIVATE KEY'); decrypt it first, e.g. `openssl pkey -in FILE -out plain.pem`"
    )]
    Encrypted,
    /// A key of a type or size this client does not sign with.
    #[error(
        "not a P-256 EC, Ed25519 or RSA (2048 to 8192 bits) private key: the algorithms are ES256, EdDSA, RS256 and PS256"
    )]
    Unsupported(#[source] Option<aws_lc_rs::error::KeyRejected>),
    /// A JWK that is not a usable private key.
    #[error("the JWK is not a usable private key: {0}")]
    Jwk(String),
    /// A JWK whose members do not form a valid key.
    #[error("the JWK's members do not form a valid {kty} key")]
    JwkRejected {
        /// The JWK's `kty`.
        kty: &'static str,
        /// aws-lc-rs's reason.
        #[source]
        source: aws_lc_rs::error::KeyRejected,
    },
    /// An `alg` name that is none of [`JwsAlg::ALL`].
    #[error("unknown signing algorithm '{0}'; use ES256, EdDSA, RS256 or PS256")]
    UnknownAlg(String),
    /// An algorithm the key cannot sign with (PS256 with an EC key, ...).
    #[error("{alg} cannot be used with {kind} key")]
    AlgMismatch {
        /// The algorithm asked for.
        alg: JwsAlg,
        /// The key's type.
        kind: &'static str,
    },
    /// A key could not be generated.
    #[error("cannot generate a {0} key")]
    Generate(JwsAlg, #[source] aws_lc_rs::error::Unspecified),
    /// Signing failed.
    #[error("signing with the {0} key failed")]
    Sign(JwsAlg, #[source] aws_lc_rs::error::Unspecified),
    /// The operating system's random source failed (for a `jti`).
    #[error("the system's random source failed")]
    Random(#[source] aws_lc_rs::error::Unspecified),
    /// A JWS that cannot go in a header (never: it is base64url and dots).
    #[error("the JWS is not a valid header value")]
    HeaderValue(#[source] http::header::InvalidHeaderValue),
    /// Something signed is not JSON-serializable (never for the claims made here).
    #[error("cannot encode the JWS as JSON")]
    Json(#[source] serde_json::Error),
}

fn found_what(found: &[String]) -> String {
    if found.is_empty() {
        String::new()
    } else {
        format!(" (found: {})", found.join(", "))
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl Pair {
    fn kind(&self) -> &'static str {
        match self {
            Self::Ec(_) => "a P-256 EC",
            Self::Ed(_) => "an Ed25519",
            Self::Rsa(_) => "an RSA",
        }
    }

    /// What the key signs with unless told otherwise.
    fn default_alg(&self) -> JwsAlg {
        match self {
            Self::Ec(_) => JwsAlg::Es256,
            Self::Ed(_) => JwsAlg::EdDsa,
            Self::Rsa(_) => JwsAlg::Rs256,
        }
    }

    fn allows(&self, alg: JwsAlg) -> bool {
        matches!(
            (self, alg),
            (Self::Ec(_), JwsAlg::Es256)
                | (Self::Ed(_), JwsAlg::EdDsa)
                | (Self::Rsa(_), JwsAlg::Rs256 | JwsAlg::Ps256)
        )
    }

    /// The public JWK's required members (RFC 7638 §3.2), the ones a thumbprint and a
    /// DPoP proof's `jwk` header carry.
    fn public_jwk(&self) -> auth_broker_proto::Jwk {
        let mut jwk = auth_broker_proto::Jwk {
            kty: String::new(),
            kid: String::new(),
            use_: None,
            alg: None,
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
        };
        match self {
            Self::Ec(k) => {
                // Uncompressed point: 0x04 || x || y (SEC 1 §2.3.3).
                let p = k.public_key().as_ref();
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                jwk.x = p.get(1..33).map(b64);
                jwk.y = p.get(33..65).map(b64);
            }
            Self::Ed(k) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64(k.public_key().as_ref()));
            }
            Self::Rsa(k) => {
                let p = k.public_key();
                jwk.kty = "RSA".into();
                jwk.n = Some(b64(p.modulus().big_endian_without_leading_zero()));
                jwk.e = Some(b64(p.exponent().big_endian_without_leading_zero()));
            }
        }
        jwk
    }
}

/// A private key ready to sign JWS, with its algorithm and optional `kid`.
pub struct SigningKey {
    alg: JwsAlg,
    kid: Option<String>,
    pair: Pair,
    rng: SystemRandom,
    /// The public JWK, without `kid`, `use` or `alg`.
    jwk: auth_broker_proto::Jwk,
    /// RFC 7638 SHA-256 thumbprint of `jwk`.
    thumbprint: String,
}

/// No key material: the algorithm, `kid` and thumbprint only.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_pair(pair: Pair) -> Self {
        let jwk = pair.public_jwk();
        Self {
            alg: pair.default_alg(),
            kid: None,
            thumbprint: auth_broker_jwt::thumbprint(&jwk),
            jwk,
            pair,
            rng: SystemRandom::new(),
        }
    }

    /// A new random key for `alg` (RSA keys are 2048 bits), e.g. the DPoP key made at
    /// start.
    pub fn generate(alg: JwsAlg) -> Result<Self, KeyError> {
        let failed = |e| KeyError::Generate(alg, e);
        let pair = match alg {
            JwsAlg::Es256 => Pair::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(failed)?,
            ),
            JwsAlg::EdDsa => Pair::Ed(Ed25519KeyPair::generate().map_err(failed)?),
            JwsAlg::Rs256 | JwsAlg::Ps256 => {
                Pair::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(failed)?)
            }
        };
        Ok(Self {
            alg,
            ..Self::from_pair(pair)
        })
    }

    /// Reads a key file: PEM, or a private JWK when the file starts with `{`. Errors name
    /// the file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?);
        Self::from_bytes(&bytes).map_err(|e| KeyError::File {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// A key from PEM, or from a private JWK when the text starts with `{`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::from_jwk(bytes),
            _ => Self::from_pem(bytes),
        }
    }

    /// The first private key in PEM text: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE
    /// KEY`, P-256) or PKCS#1 (`RSA PRIVATE KEY`). Other blocks (a certificate kept in
    /// the same file) are skipped.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let mut found = Vec::new();
        for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
            let (kind, der) = item.map_err(KeyError::Pem)?;
            let der = Zeroizing::new(der);
            let pair = match kind {
                SectionKind::PrivateKey => pkcs8(&der)?,
                SectionKind::EcPrivateKey => Pair::Ec(
                    EcdsaKeyPair::from_private_key_der(
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &der,
                    )
                    .map_err(|e| KeyError::Unsupported(Some(e)))?,
                ),
                SectionKind::RsaPrivateKey => Pair::Rsa(
                    RsaKeyPair::from_der(&der).map_err(|e| KeyError::Unsupported(Some(e)))?,
                ),
                other => {
                    found.push(format!("{other:?}"));
                    continue;
                }
            };
            return Ok(Self::from_pair(pair));
        }
        if pem
            .windows(b"ENCRYPTED PRIVATE KEY".len())
            .any(|w| w == b"ENCRYPTED PRIVATE KEY")
        {
            return Err(KeyError::Encrypted);
        }
        Err(KeyError::NoPrivateKey { found })
    }

    /// A private JWK (RFC 7517 §4; members of RFC 7518 §6.2.2, §6.3.2 and RFC 8037 §2):
    /// `EC` on P-256, `OKP` Ed25519 or `RSA` with its CRT members. Its `kid` and `alg`
    /// (e.g. `PS256` for an RSA key) are taken.
    pub fn from_jwk(json: &[u8]) -> Result<Self, KeyError> {
        let v: Zeroizing<String> = Zeroizing::new(
            String::from_utf8(json.to_vec()).map_err(|_| KeyError::Jwk("not UTF-8".into()))?,
        );
        let value: serde_json::Value =
            serde_json::from_str(&v).map_err(|e| KeyError::Jwk(format!("not JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| KeyError::Jwk("not a JSON object".into()))?;
        if obj.contains_key("keys") {
            return Err(KeyError::Jwk(
                "a JWK Set ({\"keys\": [...]}): give the one private JWK".into(),
            ));
        }
        let text = |name: &str| obj.get(name).and_then(serde_json::Value::as_str);
        let bytes = |name: &str| -> Result<Zeroizing<Vec<u8>>, KeyError> {
            let s = text(name).ok_or_else(|| {
                if name == "d" {
                    KeyError::Jwk("no private member 'd': this is a public key".into())
                } else {
                    KeyError::Jwk(format!("member '{name}' is missing"))
                }
            })?;
            URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map(Zeroizing::new)
                .map_err(|_| KeyError::Jwk(format!("member '{name}' is not base64url")))
        };
        let pair = match (text("kty"), text("crv")) {
            (Some("EC"), Some("P-256")) => {
                let mut point = vec![4u8];
                point.extend_from_slice(&bytes("x")?);
                point.extend_from_slice(&bytes("y")?);
                Pair::Ec(
                    EcdsaKeyPair::from_private_key_and_public_key(
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &bytes("d")?,
                        &point,
                    )
                    .map_err(|source| KeyError::JwkRejected { kty: "EC", source })?,
                )
            }
            (Some("OKP"), Some("Ed25519")) => Pair::Ed(
                Ed25519KeyPair::from_seed_and_public_key(&bytes("d")?, &bytes("x")?)
                    .map_err(|source| KeyError::JwkRejected { kty: "OKP", source })?,
            ),
            (Some("RSA"), _) => {
                let components = KeyPairComponents {
                    public_key: PublicKeyComponents {
                        n: bytes("n")?,
                        e: bytes("e")?,
                    },
                    d: bytes("d")?,
                    p: bytes("p")?,
                    q: bytes("q")?,
                    dP: bytes("dp")?,
                    dQ: bytes("dq")?,
                    qInv: bytes("qi")?,
                };
                Pair::Rsa(
                    RsaKeyPair::from_components(&components)
                        .map_err(|source| KeyError::JwkRejected { kty: "RSA", source })?,
                )
            }
            (kty, crv) => {
                return Err(KeyError::Jwk(format!(
                    "kty '{}'{} is not supported: use EC (P-256), OKP (Ed25519) or RSA",
                    kty.unwrap_or("(missing)"),
                    crv.map(|c| format!(" with crv '{c}'")).unwrap_or_default()
                )));
            }
        };
        let mut key = Self::from_pair(pair);
        if let Some(alg) = text("alg") {
            key = key.with_alg(alg.parse()?)?;
        }
        key.kid = text("kid").map(str::to_owned);
        Ok(key)
    }

    /// Signs with `alg` instead of the key type's default (PS256 for an RSA key).
    pub fn with_alg(mut self, alg: JwsAlg) -> Result<Self, KeyError> {
        if !self.pair.allows(alg) {
            return Err(KeyError::AlgMismatch {
                alg,
                kind: self.pair.kind(),
            });
        }
        self.alg = alg;
        Ok(self)
    }

    /// Sends `kid` in the JWS header, so the server picks the key without trying each.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into()).filter(|k: &String| !k.is_empty());
        self
    }

    /// The algorithm it signs with.
    pub fn alg(&self) -> JwsAlg {
        self.alg
    }

    /// The `kid` sent in the header, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public key as a JWK with `kid` (when set), `use: sig` and `alg`: what goes in
    /// the client's registered `jwks` on the authorization server.
    pub fn public_jwk(&self) -> auth_broker_proto::Jwk {
        auth_broker_proto::Jwk {
            kid: self.kid.clone().unwrap_or_default(),
            use_: Some("sig".into()),
            alg: Some(self.alg.as_str().into()),
            ..self.jwk.clone()
        }
    }

    /// The public JWK's required members only (RFC 7638 §3.2), as a JSON object: the
    /// `jwk` header of a DPoP proof (RFC 9449 §4.2), which must not carry a private key.
    pub fn public_jwk_members(&self) -> serde_json::Value {
        let mut v = serde_json::Map::new();
        let j = &self.jwk;
        v.insert("kty".into(), j.kty.clone().into());
        for (name, member) in [
            ("crv", &j.crv),
            ("x", &j.x),
            ("y", &j.y),
            ("n", &j.n),
            ("e", &j.e),
        ] {
            if let Some(m) = member {
                v.insert(name.into(), m.clone().into());
            }
        }
        serde_json::Value::Object(v)
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key, base64url: DPoP's `jkt`
    /// (RFC 9449 §6.1).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The signature of `msg` as JWS carries it (RFC 7518 §3.3-3.5, RFC 8037 §3.1).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |e| KeyError::Sign(self.alg, e);
        match &self.pair {
            Pair::Ec(k) => Ok(k.sign(&self.rng, msg).map_err(failed)?.as_ref().to_vec()),
            Pair::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Pair::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    JwsAlg::Ps256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(padding, &self.rng, msg, &mut sig).map_err(failed)?;
                Ok(sig)
            }
        }
    }

    /// A compact JWS (RFC 7515 §7.1) of `claims` under the already encoded protected
    /// header `header_b64`.
    pub fn compact(
        &self,
        header_b64: &str,
        claims: &serde_json::Value,
    ) -> Result<String, KeyError> {
        let claims = serde_json::to_vec(claims).map_err(KeyError::Json)?;
        let mut jws = String::with_capacity(header_b64.len() + claims.len() * 4 / 3 + 400);
        jws.push_str(header_b64);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut jws);
        let sig = self.sign(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut jws);
        Ok(jws)
    }

    /// `header` as the first part of a compact JWS.
    pub fn encode_header(header: &serde_json::Value) -> Result<String, KeyError> {
        Ok(b64(&serde_json::to_vec(header).map_err(KeyError::Json)?))
    }
}

/// A PKCS#8 `PrivateKeyInfo` of any supported type: tried as P-256, Ed25519 (v1 or v2),
/// then RSA.
fn pkcs8(der: &[u8]) -> Result<Pair, KeyError> {
    if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der) {
        return Ok(Pair::Ec(k));
    }
    if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        return Ok(Pair::Ed(k));
    }
    RsaKeyPair::from_pkcs8(der)
        .map(Pair::Rsa)
        .map_err(|e| KeyError::Unsupported(Some(e)))
}

/// A random identifier: 128 bits from the operating system's source, base64url (a
/// `jti` that no other assertion or proof will repeat, RFC 7519 §4.1.7).
pub(crate) fn random_id() -> Result<String, KeyError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(KeyError::Random)?;
    Ok(b64(&bytes))
}

/// base64url of SHA-256 of `data`.
pub(crate) fn sha256_b64(data: &[u8]) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn verify(key: &SigningKey, msg: &[u8], sig: &[u8]) -> bool {
        use aws_lc_rs::signature::UnparsedPublicKey;
        let j = &key.jwk;
        let d = |s: &Option<String>| {
            URL_SAFE_NO_PAD
                .decode(s.as_deref().unwrap_or_default())
                .unwrap_or_default()
        };
        match key.alg {
            JwsAlg::Es256 => {
                let mut p = vec![4u8];
                p.extend(d(&j.x));
                p.extend(d(&j.y));
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p)
                    .verify(msg, sig)
                    .is_ok()
            }
            JwsAlg::EdDsa => UnparsedPublicKey::new(&signature::ED25519, d(&j.x))
                .verify(msg, sig)
                .is_ok(),
            JwsAlg::Rs256 | JwsAlg::Ps256 => signature::RsaPublicKeyComponents {
                n: d(&j.n),
                e: d(&j.e),
            }
            .verify(
                if key.alg == JwsAlg::Ps256 {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                },
                msg,
                sig,
            )
            .is_ok(),
        }
    }

    #[test]
    fn every_pem_form_loads_and_signs() {
        use aws_lc_rs::encoding::AsDer;
        let ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
            .unwrap_or_else(|e| panic!("{e}"));
        let ec_pkcs8 = ec.to_pkcs8v1().unwrap_or_else(|e| panic!("{e}"));
        let ec_sec1 = ec.private_key().as_der().unwrap_or_else(|e| panic!("{e}"));
        let ed = Ed25519KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let ed_pkcs8 = ed.to_pkcs8().unwrap_or_else(|e| panic!("{e}"));
        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .unwrap_or_else(|e| panic!("{e}"));
        let rsa_pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa)
            .unwrap_or_else(|e| panic!("{e}"));
        for (what, text, alg) in [
            (
                "EC PKCS#8",
                pem("PRIVATE KEY", ec_pkcs8.as_ref()),
                JwsAlg::Es256,
            ),
            (
                "EC SEC1",
                pem("EC PRIVATE KEY", ec_sec1.as_ref()),
                JwsAlg::Es256,
            ),
            (
                "Ed25519",
                pem("PRIVATE KEY", ed_pkcs8.as_ref()),
                JwsAlg::EdDsa,
            ),
            (
                "RSA PKCS#8",
                pem("PRIVATE KEY", rsa_pkcs8.as_ref()),
                JwsAlg::Rs256,
            ),
            (
                "RSA PKCS#1",
                pem("RSA PRIVATE KEY", &pkcs1_of(rsa_pkcs8.as_ref())),
                JwsAlg::Rs256,
            ),
        ] {
            // A certificate block before the key is skipped.
            let text = format!("{}{text}", pem("CERTIFICATE", b"not really"));
            let key =
                SigningKey::from_pem(text.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(key.alg(), alg, "{what}");
            let sig = key.sign(b"msg").unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(verify(&key, b"msg", &sig), "{what}");
            assert!(!verify(&key, b"other", &sig), "{what}");
        }
        let ps = SigningKey::from_pem(pem("PRIVATE KEY", rsa_pkcs8.as_ref()).as_bytes())
            .and_then(|k| k.with_alg(JwsAlg::Ps256))
            .unwrap_or_else(|e| panic!("{e}"));
        let sig = ps.sign(b"msg").unwrap_or_else(|e| panic!("{e}"));
        assert!(verify(&ps, b"msg", &sig));
    }

    /// The `RSAPrivateKey` (PKCS#1) inside a PKCS#8 `PrivateKeyInfo`: its last element,
    /// an OCTET STRING (tests only; short-form and long-form DER lengths).
    fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
        let header = der_header;
        let (h, _) = header(pkcs8);
        let mut rest = &pkcs8[h..];
        let mut last = &rest[..0];
        while !rest.is_empty() {
            let (h, len) = header(rest);
            last = &rest[..h + len];
            rest = &rest[h + len..];
        }
        let (h, len) = header(last);
        last[h..h + len].to_vec()
    }

    /// A DER element's header length and content length.
    fn der_header(b: &[u8]) -> (usize, usize) {
        let first = b[1];
        if first < 0x80 {
            (2, first as usize)
        } else {
            let n = (first & 0x7f) as usize;
            let len = b[2..2 + n]
                .iter()
                .fold(0usize, |a, x| (a << 8) | *x as usize);
            (2 + n, len)
        }
    }

    #[test]
    fn a_jwk_loads_with_its_kid_and_alg_and_matches_its_pem() {
        let key = SigningKey::generate(JwsAlg::Es256).unwrap_or_else(|e| panic!("{e}"));
        let Pair::Ec(ec) = &key.pair else {
            panic!("EC")
        };
        use aws_lc_rs::encoding::AsBigEndian;
        let d: aws_lc_rs::encoding::EcPrivateKeyBin<'_> = ec
            .private_key()
            .as_be_bytes()
            .unwrap_or_else(|e| panic!("{e}"));
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "k1",
            "x": key.jwk.x, "y": key.jwk.y, "d": b64(d.as_ref()),
        });
        let loaded =
            SigningKey::from_jwk(jwk.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.kid(), Some("k1"));
        assert_eq!(loaded.thumbprint(), key.thumbprint());
        let sig = loaded.sign(b"m").unwrap_or_else(|e| panic!("{e}"));
        assert!(verify(&key, b"m", &sig));
        // The private part never shows.
        let shown = format!("{loaded:?} {:?}", loaded.public_jwk());
        assert!(!shown.contains(&b64(d.as_ref())), "{shown}");

        let mut public = jwk.clone();
        public.as_object_mut().map(|o| o.remove("d"));
        let e = SigningKey::from_jwk(public.to_string().as_bytes()).err();
        assert!(e.is_some_and(|e| e.to_string().contains("public key")));
        let mut ps = jwk.clone();
        ps["alg"] = "PS256".into();
        let e = SigningKey::from_jwk(ps.to_string().as_bytes()).err();
        assert!(e.is_some_and(|e| e.to_string().contains("PS256 cannot be used with a P-256")));
    }

    /// An RSA JWK with its CRT members (RFC 7518 §6.3.2) loads, takes `alg: PS256`, and
    /// has the same public key as the PEM it was made from.
    #[test]
    fn an_rsa_jwk_loads() {
        use aws_lc_rs::encoding::AsDer;
        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .unwrap_or_else(|e| panic!("{e}"));
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa)
            .unwrap_or_else(|e| panic!("{e}"));
        // RSAPrivateKey: version, n, e, d, p, q, dp, dq, qi (RFC 8017 §A.1.2).
        let pkcs1 = pkcs1_of(pkcs8.as_ref());
        let mut ints = Vec::new();
        let (h, _) = der_header(&pkcs1);
        let mut rest = &pkcs1[h..];
        while !rest.is_empty() {
            let (h, len) = der_header(rest);
            let v = &rest[h..h + len];
            let v = v.strip_prefix(&[0u8]).unwrap_or(v);
            ints.push(b64(v));
            rest = &rest[h + len..];
        }
        let names = ["n", "e", "d", "p", "q", "dp", "dq", "qi"];
        let mut jwk = serde_json::json!({"kty": "RSA", "alg": "PS256", "kid": "r1"});
        for (name, v) in names.iter().zip(&ints[1..]) {
            jwk[*name] = v.clone().into();
        }
        let key =
            SigningKey::from_jwk(jwk.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.alg(), JwsAlg::Ps256);
        let from_pem = SigningKey::from_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.thumbprint(), from_pem.thumbprint());
        let sig = key.sign(b"m").unwrap_or_else(|e| panic!("{e}"));
        assert!(verify(&key, b"m", &sig));
    }

    #[test]
    fn errors_say_what_the_file_holds() {
        let dir = std::env::temp_dir().join(format!("ab-keys-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        for (name, content, says) in [
            (
                "cert.pem",
                pem("CERTIFICATE", b"x"),
                "no private key in it: expected",
            ),
            (
                "enc.pem",
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                    .into(),
                "encrypted",
            ),
            ("garbage.pem", pem("PRIVATE KEY", b"garbage"), "not a P-256"),
            ("set.json", r#"{"keys":[]}"#.into(), "JWK Set"),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
            let e = SigningKey::from_file(&path).err();
            let chain = e
                .as_ref()
                .map(|e| crate::error::causes(e))
                .unwrap_or_default();
            assert!(chain.contains(&path.display().to_string()), "{chain}");
            assert!(chain.contains(says), "{name}: {chain}");
        }
        let missing = dir.join("missing.pem");
        let e = SigningKey::from_file(&missing).err();
        assert!(e.is_some_and(|e| e.to_string().contains("missing.pem")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
