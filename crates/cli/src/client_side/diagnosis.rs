//! What `doctor` says about the failures of key-bound clients: `private_key_jwt`
//! assertions (RFC 7523), DPoP proofs and nonces (RFC 9449), a server's clock.
//!
//! Servers word their `error_description`s as they like (the broker's are not fixed
//! either), so a cause is told by the standard error code first (`invalid_client`,
//! `invalid_dpop_proof`, `use_dpop_nonce`, `invalid_token`) and then by words of the
//! description; `doctor` prints the description itself once, as the server sent it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Whether `desc` has one of `words` as a word, ignoring case: `exp` is found in
/// "assertion exp is in the past" but not in "expected a JSON body". Words are runs of
/// letters, digits and `_`.
pub fn mentions(desc: &str, words: &[&str]) -> bool {
    desc.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| words.iter().any(|x| w.eq_ignore_ascii_case(x)))
}

/// How many seconds the server's clock is ahead of this machine's (negative: behind),
/// from its `Date` header (RFC 9110 §6.6.1, whole seconds) and the local time the answer
/// came.
pub fn skew(date: Option<&str>, local: SystemTime) -> Option<i64> {
    let server = httpdate::parse_http_date(date?.trim()).ok()?;
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
    };
    Some(secs(server)? - secs(local)?)
}

/// The skew in words.
pub fn skew_words(skew: i64) -> String {
    match skew {
        -1..=1 => "the server's clock and this machine's agree within 1 s".into(),
        s if s > 0 => format!("the server's clock is {s} s ahead of this machine's"),
        s => format!("the server's clock is {} s behind this machine's", -s),
    }
}

/// A skew that key-bound requests notice: assertions live 60 s and servers accept a
/// proof's `iat` within a minute or so.
pub const NOTICEABLE_SKEW: i64 = 30;

/// What a skew means, if any: said after a refusal that mentions time.
fn skew_clause(skew: Option<i64>) -> String {
    match skew {
        Some(s) if s.abs() >= NOTICEABLE_SKEW => format!(
            " Clock skew: {} (by its Date header), so what this machine signs as valid now is not valid by the server's clock: fix the clock that is wrong (NTP).",
            skew_words(s)
        ),
        Some(s) => format!(
            " The clocks are not the cause: {} (by its Date header).",
            skew_words(s)
        ),
        None => {
            " The server sent no Date header to compare clocks with; check both with NTP.".into()
        }
    }
}

/// What the client signed its assertion with and for, to explain a refusal.
#[derive(Debug, Default)]
pub struct AssertionSent {
    pub client_id: String,
    pub aud: String,
    pub alg: String,
    pub kid: Option<String>,
    pub thumbprint: String,
    /// The public JWK, to register on the server.
    pub public_jwk: String,
    pub lifetime_s: u64,
    /// The server's RFC 8414 `issuer` and `token_endpoint`, when it publishes them.
    pub issuer: Option<String>,
    pub token_endpoint: Option<String>,
    pub skew: Option<i64>,
}

/// Why an `invalid_client` refused a `private_key_jwt` assertion (INTERFACE §8:
/// expired, wrong `aud`, signature, `jti` reused, no such key).
pub fn assertion_cause(desc: &str, a: &AssertionSent) -> String {
    let kid = a
        .kid
        .as_deref()
        .map_or("no kid".to_owned(), |k| format!("kid '{k}'"));
    if mentions(desc, &["jti", "replay", "replayed", "reused", "reuse"])
        || desc.to_ascii_lowercase().contains("already used")
    {
        return "cause: the assertion's jti was used before. Each assertion is good for one token request; this client makes a new jti for every request, so the same assertion was sent twice (a proxy or load balancer retrying the request?) or the server's replay cache is wrong".into();
    }
    if mentions(desc, &["exp", "expired", "expiry", "expires", "lifetime"]) {
        return format!(
            "cause: the assertion had expired when the server checked it. It was signed valid for {} s from this machine's clock (iat now, exp iat + {} s), so the server's clock is ahead, or the request took long.{}",
            a.lifetime_s,
            a.lifetime_s,
            skew_clause(a.skew)
        );
    }
    if mentions(
        desc,
        &["iat", "nbf", "future", "clock", "skew", "time", "early"],
    ) {
        return format!(
            "cause: the assertion's times (iat {} s before exp) do not fit the server's clock.{}",
            a.lifetime_s,
            skew_clause(a.skew)
        );
    }
    if mentions(desc, &["aud", "audience"]) {
        let wants = match (&a.token_endpoint, &a.issuer) {
            (Some(t), Some(i)) if *t != a.aud => format!(
                " The server's metadata names its token endpoint {t} and its issuer {i}: use the token endpoint as --token-url"
            ),
            (_, Some(i)) => format!(
                " The server's metadata names its issuer {i}: a server that wants the issuer as aud needs a client that sends it (the library's PrivateKeyJwt::audience)"
            ),
            _ => " Check that --token-url is the token endpoint exactly as the server knows it (scheme, host, port, path): a URL reached through a proxy or another host name differs".into(),
        };
        return format!(
            "cause: the assertion's aud does not match. It was '{}' (the token URL).{wants}",
            a.aud
        );
    }
    if mentions(
        desc,
        &[
            "kid",
            "key",
            "keys",
            "jwk",
            "jwks",
            "signature",
            "signed",
            "verify",
            "verified",
            "verification",
        ],
    ) {
        return format!(
            "cause: the server could not verify the assertion with the keys it has for client '{}'. It was signed {} with {kid} by the key of thumbprint {}: register its public key in the client's jwks (auth-broker: `client update ID --jwks FILE`), or pass --key-id with the kid the server has for it. Public JWK: {}",
            a.client_id, a.alg, a.thumbprint, a.public_jwk
        );
    }
    if mentions(
        desc,
        &[
            "private_key_jwt",
            "client_assertion",
            "client_assertion_type",
            "method",
            "unsupported",
            "allowed",
        ],
    ) {
        return format!(
            "cause: the server does not take private_key_jwt for client '{}': its token_endpoint_auth_method must be private_key_jwt, with the public key in its jwks",
            a.client_id
        );
    }
    format!(
        "cause: the server refused the assertion (its description above says why). Sent: iss = sub = '{}', aud '{}', {} with {kid} (key thumbprint {}), valid {} s; check that the client is registered for private_key_jwt with this public key: {}",
        a.client_id, a.aud, a.alg, a.thumbprint, a.lifetime_s, a.public_jwk
    )
}

/// What a DPoP proof named, to explain a refusal.
#[derive(Debug, Default)]
pub struct ProofSent {
    pub htm: String,
    pub htu: String,
    pub alg: String,
    pub jkt: String,
    pub skew: Option<i64>,
}

/// Why a server answered `invalid_dpop_proof` (RFC 9449 §4.3 lists what it checks).
pub fn proof_cause(desc: &str, p: &ProofSent) -> String {
    if mentions(desc, &["htu", "htm", "uri", "url", "method", "target"]) {
        return format!(
            "cause: the proof's htu/htm do not match the request as the server sees it. The proof said htm {} and htu {} (the URL without query and fragment). If a proxy, load balancer or TLS terminator in front of the server changes the scheme, host, port or path, the server sees another URL: use that one",
            p.htm, p.htu
        );
    }
    if mentions(desc, &["nonce"]) {
        return "cause: the proof's nonce: the server wants the nonce it chose (DPoP-Nonce) and did not accept the one sent".into();
    }
    if mentions(desc, &["jti", "replay", "replayed", "reused"]) {
        return "cause: the proof's jti was used before: every request gets a new proof from this client, so something resent the same request (a retrying proxy?)".into();
    }
    if mentions(
        desc,
        &[
            "iat", "time", "clock", "skew", "expired", "future", "old", "stale",
        ],
    ) {
        return format!(
            "cause: the proof's iat is outside the window the server accepts.{}",
            skew_clause(p.skew)
        );
    }
    if mentions(
        desc,
        &[
            "signature",
            "jwk",
            "alg",
            "algorithm",
            "typ",
            "key",
            "ath",
            "hash",
        ],
    ) {
        return format!(
            "cause: the server cannot verify the proof ({} signed, key thumbprint {}): it may not accept {} for DPoP (see dpop_signing_alg_values_supported in its metadata)",
            p.alg, p.jkt, p.alg
        );
    }
    format!(
        "cause: the server refused the DPoP proof (its description above says why). It said htm {}, htu {}, {} by key {}",
        p.htm, p.htu, p.alg, p.jkt
    )
}

/// A server that still wants a nonce after the retry with the one it sent, or that
/// wants one without sending it.
pub fn nonce_cause(sent_one: bool) -> String {
    if sent_one {
        "cause: nonce required (RFC 9449 §8, §9): the server wants a nonce in the DPoP proof and refused the proof that carried the one it had just sent; its nonces may change too fast or differ between its replicas".into()
    } else {
        "cause: nonce required (RFC 9449 §8, §9), but the server sent no DPoP-Nonce header with the nonce to use, as it must: the server is at fault".into()
    }
}

/// The `error_description` of a `WWW-Authenticate` challenge (RFC 6750 §3), if any.
pub fn challenge_description(www: &str) -> Option<&str> {
    let start = www.find("error_description=\"")? + "error_description=\"".len();
    let rest = &www[start..];
    Some(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_not_substrings() {
        assert!(mentions("client assertion exp is in the past", &["exp"]));
        assert!(!mentions("expected a JSON body", &["exp"]));
        assert!(mentions("Unknown KID 'a'", &["kid"]));
        assert!(mentions("htu mismatch", &["htu"]));
    }

    #[test]
    fn each_assertion_fault_gets_its_cause() {
        let a = AssertionSent {
            client_id: "app".into(),
            aud: "https://as/token".into(),
            alg: "ES256".into(),
            thumbprint: "tp".into(),
            lifetime_s: 60,
            skew: Some(600),
            ..AssertionSent::default()
        };
        for (desc, says) in [
            ("client assertion expired", "had expired"),
            ("the assertion exp is 400 s in the past", "had expired"),
            ("iat is in the future", "times"),
            ("wrong aud", "aud does not match"),
            ("invalid audience", "aud does not match"),
            ("unknown kid 'x'", "could not verify"),
            ("signature check failed", "could not verify"),
            ("jti already used", "jti was used before"),
            (
                "client_assertion not allowed for this client",
                "does not take private_key_jwt",
            ),
            ("nope", "refused the assertion"),
        ] {
            let c = assertion_cause(desc, &a);
            assert!(c.contains(says), "{desc}: {c}");
        }
        assert!(assertion_cause("expired", &a).contains("600 s ahead"));
    }

    #[test]
    fn each_proof_fault_gets_its_cause() {
        let p = ProofSent {
            htm: "POST".into(),
            htu: "https://as/token".into(),
            ..ProofSent::default()
        };
        for (desc, says) in [
            ("htu mismatch", "htu/htm do not match"),
            ("wrong method", "htu/htm do not match"),
            ("bad nonce", "nonce"),
            ("jti replayed", "jti was used before"),
            ("iat too old", "iat is outside"),
            ("invalid signature", "cannot verify"),
            ("?", "refused the DPoP proof"),
        ] {
            assert!(proof_cause(desc, &p).contains(says), "{desc}");
        }
    }

    #[test]
    fn skew_from_the_date_header() {
        let local = UNIX_EPOCH + std::time::Duration::from_secs(1_445_412_480);
        assert_eq!(
            skew(Some("Wed, 21 Oct 2015 07:38:00 GMT"), local),
            Some(600)
        );
        assert_eq!(
            skew(Some("Wed, 21 Oct 2015 07:27:00 GMT"), local),
            Some(-60)
        );
        assert_eq!(skew(Some("garbage"), local), None);
        assert!(skew_words(-60).contains("60 s behind"));
        assert_eq!(
            challenge_description(
                r#"DPoP error="invalid_dpop_proof", error_description="htu mismatch""#
            ),
            Some("htu mismatch")
        );
    }
}
