//! RFC 9068 JWT access tokens: issuing and reading back.

use crate::keys::SigningKey;
use crate::store::StoreError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The claims of an access token (RFC 9068 §2.2). `sub` is the client id, as §2.2
/// says for tokens issued to a client on its own behalf.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Signs `claims` as a compact JWS with `typ: at+jwt` and the key's `kid`.
pub fn sign(key: &SigningKey, claims: &Claims) -> Result<String, StoreError> {
    let payload = serde_json::to_vec(claims).map_err(|e| StoreError::Other(e.to_string()))?;
    let mut out = String::with_capacity(key.header_b64().len() + payload.len() * 4 / 3 + 100);
    out.push_str(key.header_b64());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    Ok(out)
}

/// The protected header members a verifier looks at.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
}

/// A compact JWS split into its parts, with header and claims decoded but the
/// signature not yet checked.
#[derive(Debug)]
pub struct Unverified<'a> {
    pub header: Header,
    pub claims: serde_json::Value,
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
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
    use crate::keys::SigningAlg;

    #[test]
    fn sign_then_parse() {
        let rec = SigningKey::generate(SigningAlg::Es256, 0).unwrap_or_else(|e| panic!("{e}"));
        let key = SigningKey::from_record(&rec).unwrap_or_else(|e| panic!("{e}"));
        let claims = Claims {
            iss: "http://x".into(),
            sub: "c".into(),
            client_id: "c".into(),
            aud: "http://x".into(),
            iat: 1,
            exp: 3601,
            jti: "j".into(),
            scope: None,
        };
        let t = sign(&key, &claims).unwrap_or_else(|e| panic!("{e}"));
        let u = parse(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(u.header.kid.as_deref(), Some(rec.kid.as_str()));
        assert_eq!(u.claims["exp"], 3601);
        assert!(u.claims.get("scope").is_none());
        assert_eq!(parse("a.b").err(), Some(JwtFormatError::Parts(2)));
        assert!(matches!(
            parse("eyJ9.b!.c"),
            Err(JwtFormatError::NotBase64Url(_))
        ));
    }
}
