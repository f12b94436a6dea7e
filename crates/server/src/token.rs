//! RFC 9068 JWT access tokens: issuing and reading back.

use crate::keys::{KeyError, SigningAlg, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[cfg(test)]
use auth_broker_jwt::{JwtFormatError, parse};

/// The claims of an access token (RFC 9068 §2.2). `sub` is the client id, as §2.2
/// says for tokens issued to a client on its own behalf.
pub use auth_broker_proto::AccessTokenClaims as Claims;

/// Signs `claims` as a compact JWS with `typ: at+jwt` and the key's `kid`. An
/// ES256 signature is written in its low-S form, so every token has one encoding
/// (see `auth_broker_jwt::ecdsa`). `extra`, a client's static claims (a JSON
/// object's text, validated when it was set: no registered names), is spliced into
/// the claims object as it is, so it costs no parsing per token.
pub fn sign(key: &SigningKey, claims: &Claims, extra: Option<&str>) -> Result<String, KeyError> {
    // Sized up front (claims are a few hundred bytes): serde_json's default start
    // would grow and copy the buffer twice.
    let mut payload = Vec::with_capacity(512 + extra.map_or(0, str::len));
    serde_json::to_writer(&mut payload, claims).map_err(KeyError::Json)?;
    if let Some(inner) = extra
        .map(str::trim)
        .and_then(|e| e.strip_prefix('{'))
        .and_then(|e| e.strip_suffix('}'))
        .filter(|inner| !inner.trim().is_empty())
        && payload.last() == Some(&b'}')
    {
        payload.pop();
        payload.push(b',');
        payload.extend_from_slice(inner.as_bytes());
        payload.push(b'}');
    }
    let mut out = String::with_capacity(key.header_b64().len() + payload.len() * 4 / 3 + 100);
    out.push_str(key.header_b64());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let mut sig = key.sign(out.as_bytes())?;
    if key.alg() == SigningAlg::Es256 {
        auth_broker_jwt::ecdsa::normalize_es256(&mut sig);
    }
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_parse() {
        let rec = SigningKey::generate(SigningAlg::Es256, 0).unwrap_or_else(|e| panic!("{e}"));
        let key = SigningKey::from_record(&rec).unwrap_or_else(|e| panic!("{e}"));
        let claims = Claims {
            iss: "http://x".into(),
            sub: "c".into(),
            client_id: "c".into(),
            aud: "http://x".into(),
            iat: Some(1),
            exp: 3601,
            nbf: None,
            jti: Some("j".into()),
            scope: None,
            cnf: None,
        };
        let t = sign(&key, &claims, None).unwrap_or_else(|e| panic!("{e}"));
        let u = parse(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(u.header.kid.as_deref(), Some(rec.kid.as_str()));
        assert_eq!(u.claims["exp"], 3601);
        assert!(u.claims.get("scope").is_none());
        let t = sign(&key, &claims, Some(r#"{"tenant":"t1","tier":{"n":2}}"#))
            .unwrap_or_else(|e| panic!("{e}"));
        let u = parse(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.claims["tenant"], "t1");
        assert_eq!(u.claims["tier"]["n"], 2);
        assert_eq!(u.claims["exp"], 3601);
        assert_eq!(parse("a.b").err(), Some(JwtFormatError::Parts(2)));
        assert!(matches!(
            parse("eyJ9.b!.c"),
            Err(JwtFormatError::NotBase64Url(_))
        ));
    }

    /// ES256 signatures come in two encodings, (r, s) and (r, n - s), both valid;
    /// the broker writes only the low-S one (see `auth_broker_jwt::ecdsa`), so each
    /// token it issues has one encoding. aws-lc signs high-S about half the time:
    /// 64 tokens all low-S by chance would be one in 2^64.
    #[test]
    fn es256_tokens_are_signed_low_s() {
        let rec = SigningKey::generate(SigningAlg::Es256, 0).unwrap_or_else(|e| panic!("{e}"));
        let key = SigningKey::from_record(&rec).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..64 {
            let claims = Claims {
                iss: "http://x".into(),
                sub: "c".into(),
                client_id: "c".into(),
                aud: "http://x".into(),
                iat: Some(i),
                exp: 3601,
                nbf: None,
                jti: Some("j".into()),
                scope: None,
                cnf: None,
            };
            let t = sign(&key, &claims, None).unwrap_or_else(|e| panic!("{e}"));
            let sig = parse(&t).unwrap_or_else(|e| panic!("{e}")).signature;
            assert!(
                !auth_broker_jwt::ecdsa::es256_is_high_s(&sig),
                "token {i} is high-S"
            );
        }
    }
}
