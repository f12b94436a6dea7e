//! One token request (RFC 6749 §4.4.2) and its answer (§5.1, §5.2).

use crate::assertion::CLIENT_ASSERTION_TYPE;
use crate::clock::Clock;
use crate::config::{ClientAuth, Credential, TokenConfig};
use crate::dpop::{DPOP, USE_DPOP_NONCE};
use crate::error::{MAX_KEPT_BODY, TokenError};
use auth_broker_proto::{
    AccessToken, ErrorResponse, FORM_CONTENT_TYPE, GRANT_CLIENT_CREDENTIALS, TokenResponse, basic,
    form,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The parts of a token request, for callers (like `doctor`) that want to show or
/// send exactly what the manager sends.
pub struct TokenRequestParts {
    /// `Authorization` header value, for the Basic methods. Contains the secret.
    pub authorization: Option<http::HeaderValue>,
    /// The `DPoP` proof header (RFC 9449 §5), when the configuration has a DPoP key.
    pub dpop: Option<http::HeaderValue>,
    /// The form body. Contains the secret with [`ClientAuth::Post`], the client
    /// assertion with [`Credential::PrivateKey`].
    pub body: String,
}

/// The parts may hold the secret: `Debug` shows the headers only as `Sensitive` (they
/// are marked so) and the body's parameter names only.
impl std::fmt::Debug for TokenRequestParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .body
            .split('&')
            .map(|p| p.split_once('=').map_or(p, |(n, _)| n))
            .collect();
        f.debug_struct("TokenRequestParts")
            .field("authorization", &self.authorization)
            .field("dpop", &self.dpop)
            .field("body_names", &names)
            .finish()
    }
}

/// Builds the request headers and body for `config` at wall-clock time `now`: a new
/// client assertion (RFC 7523 §2.2) and a new DPoP proof (RFC 9449 §5, with the token
/// endpoint's last nonce) each time, since servers accept each `jti` once.
pub fn request_parts(
    config: &TokenConfig,
    now: SystemTime,
) -> Result<TokenRequestParts, TokenError> {
    let mut pairs: Vec<(&str, &str)> = vec![("grant_type", GRANT_CLIENT_CREDENTIALS)];
    if let Some(s) = &config.scope {
        pairs.push(("scope", s));
    }
    if let Some(a) = &config.audience {
        pairs.push(("audience", a));
    }
    let assertion;
    let authorization = match &config.credential {
        Credential::Secret(secret) => match config.auth {
            ClientAuth::Basic | ClientAuth::BasicRaw => {
                let v = basic::header_value(
                    &config.client_id,
                    secret,
                    config.auth == ClientAuth::Basic,
                );
                let mut v = http::HeaderValue::from_str(&v).map_err(|_| {
                    TokenError::Config("the Basic header is not a valid header value".into())
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            ClientAuth::Post => {
                pairs.push(("client_id", &config.client_id));
                pairs.push(("client_secret", secret.expose_secret()));
                None
            }
        },
        Credential::PrivateKey(key) => {
            assertion = key
                .assertion(&config.client_id, &config.token_url, now)
                .map_err(TokenError::signing("client assertion"))?;
            // `client_id` too (RFC 7521 §4.2 allows it): servers find the client's keys
            // before they parse the assertion.
            pairs.push(("client_id", &config.client_id));
            pairs.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
            pairs.push(("client_assertion", &assertion));
            None
        }
        Credential::TlsClientCertificate => {
            pairs.push(("client_id", &config.client_id));
            None
        }
    };
    let dpop = match &config.dpop {
        Some(key) => Some(
            key.proof(&http::Method::POST, &token_url(config)?, now, None)
                .map_err(TokenError::signing("DPoP proof"))?,
        ),
        None => None,
    };
    Ok(TokenRequestParts {
        authorization,
        dpop,
        body: form::serialize(pairs),
    })
}

/// The token URL, parsed.
pub fn token_url(config: &TokenConfig) -> Result<reqwest::Url, TokenError> {
    reqwest::Url::parse(&config.token_url).map_err(|e| {
        TokenError::Config(format!(
            "the token URL '{}' does not parse: {e}",
            config.token_url
        ))
    })
}

/// Sends one token request and reads the answer.
///
/// A `3xx` answer is an error ([`TokenError::Redirect`]), never followed: RFC 6749
/// §3.2 defines no redirect of the token endpoint, and following one would send the
/// client credentials (the Basic header, or a `client_secret_post` body, which RFC 9110
/// §15.4.8 has a `307` repeat; the hazard of RFC 9700 §4.12) to whatever origin the
/// `Location` names. The client given to
/// the manager is built not to follow them ([`crate::token_http_client`]); should a
/// caller's client follow one all the same, the answer is refused too.
///
/// With DPoP, a `use_dpop_nonce` answer carrying a new `DPoP-Nonce` is retried once at
/// once with a fresh proof holding it (RFC 9449 §8) and a fresh assertion.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    config: &TokenConfig,
    clock: &dyn Clock,
) -> Result<TokenAnswer, TokenError> {
    let url = token_url(config)?;
    let mut nonce_retry = config.dpop.is_some();
    loop {
        let answer = fetch_once(http, config, &url, clock.wall()).await?;
        if nonce_retry && answer.new_nonce && answer.wants_nonce() {
            nonce_retry = false;
            tracing::debug!(token_url = %config.token_url, "the token endpoint wants a DPoP nonce; retrying with the one it sent");
            continue;
        }
        return answer.result;
    }
}

/// One attempt of [`fetch`].
struct Attempt {
    result: Result<TokenAnswer, TokenError>,
    /// The answer carried a `DPoP-Nonce` other than the one the proof held.
    new_nonce: bool,
}

impl Attempt {
    fn wants_nonce(&self) -> bool {
        self.result
            .as_ref()
            .err()
            .and_then(TokenError::server_error)
            .is_some_and(|e| e.error.as_str() == USE_DPOP_NONCE)
    }
}

async fn fetch_once(
    http: &reqwest::Client,
    config: &TokenConfig,
    url: &reqwest::Url,
    now: SystemTime,
) -> Result<Attempt, TokenError> {
    let parts = request_parts(config, now)?;
    let mut req = http
        .post(url.clone())
        .header(http::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
        .header(http::header::ACCEPT, "application/json")
        .timeout(config.request_timeout)
        .body(parts.body);
    if let Some(a) = parts.authorization {
        req = req.header(http::header::AUTHORIZATION, a);
    }
    let proof_sent = parts.dpop.is_some();
    if let Some(p) = parts.dpop {
        req = req.header(DPOP, p);
    }
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            TokenError::Timeout {
                url: config.token_url.clone(),
                after: config.request_timeout,
            }
        } else {
            TokenError::Transport {
                url: config.token_url.clone(),
                cause: Arc::new(e.without_url()),
            }
        }
    };
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status().as_u16();
    if resp.status().is_redirection() {
        return Err(TokenError::Redirect {
            status,
            location: header_text(resp.headers(), http::header::LOCATION),
        });
    }
    if *url != *resp.url() {
        return Err(TokenError::Redirect {
            status,
            location: Some(resp.url().to_string()),
        });
    }
    let new_nonce = config
        .dpop
        .as_ref()
        .is_some_and(|k| k.remember_nonce(url, resp.headers()));
    let retry_after = header_text(resp.headers(), http::header::RETRY_AFTER)
        .and_then(|v| parse_retry_after(&v, std::time::SystemTime::now()));
    let body = resp.bytes().await.map_err(transport)?;
    Ok(Attempt {
        result: read_token_answer(status, &body, retry_after, proof_sent),
        new_nonce,
    })
}

/// A header's value as text, when it is there and visible ASCII.
pub fn header_text(headers: &http::HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date (a date in the past
/// means "now").
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How a `200` token response departed from RFC 6749 §5.1 and was read all the same,
/// as golang.org/x/oauth2 and the Python libraries read it. `doctor` names each one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Leniency {
    /// The body began with a UTF-8 byte order mark: RFC 8259 §8.1 forbids sending one
    /// and lets a parser ignore it.
    ByteOrderMark,
    /// `expires_in` was a JSON string holding a number (the value as sent).
    ExpiresInString(String),
    /// `expires_in` had a fraction or an exponent; whole seconds were kept, rounded
    /// down (the value as sent).
    ExpiresInFraction(String),
    /// `expires_in` was negative: read as 0, a token already expired.
    ExpiresInNegative(String),
    /// `scope` was a JSON array of strings rather than one space-separated string.
    ScopeArray,
}

impl std::fmt::Display for Leniency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ByteOrderMark => f.write_str(
                "the body starts with a UTF-8 byte order mark, which RFC 8259 §8.1 forbids",
            ),
            Self::ExpiresInString(v) => write!(
                f,
                "expires_in is a string ({v}), not a number as RFC 6749 §5.1 says"
            ),
            Self::ExpiresInFraction(v) => write!(
                f,
                "expires_in is not a whole number of seconds ({v}); rounded down"
            ),
            Self::ExpiresInNegative(v) => {
                write!(
                    f,
                    "expires_in is negative ({v}): the token is already expired"
                )
            }
            Self::ScopeArray => f.write_str(
                "scope is a JSON array, not a space-separated string as RFC 6749 §3.3 says",
            ),
        }
    }
}

/// How a token is presented to an API (the response's `token_type`, RFC 6749 §5.1,
/// compared without regard to case as §5.1 says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScheme {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer,
    /// `Authorization: DPoP <token>` with a proof holding `ath` (RFC 9449 §7.1).
    Dpop,
}

impl TokenScheme {
    /// The `Authorization` scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::Dpop => "DPoP",
        }
    }
}

/// A `200` token response as read: the RFC 6749 §5.1 members, every member as sent
/// (`refresh_token`, `id_token`, vendor extensions), and what was read leniently.
#[derive(Clone)]
pub struct TokenAnswer {
    /// The standard members.
    pub response: TokenResponse,
    /// Bearer, or DPoP when a proof was sent and the server bound the token.
    pub scheme: TokenScheme,
    /// Every member of the JSON object, as sent (`access_token` included).
    pub members: serde_json::Map<String, serde_json::Value>,
    /// Departures from RFC 6749 §5.1 that were read all the same.
    pub leniencies: Vec<Leniency>,
}

/// `Debug` without the members' values: they hold the access token and maybe a refresh
/// token.
impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("response", &self.response)
            .field("scheme", &self.scheme)
            .field("members", &self.members.keys().collect::<Vec<_>>())
            .field("leniencies", &self.leniencies)
            .finish()
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a token endpoint's answer to a request without a DPoP proof: a bearer token
/// from a `200` (RFC 6749 §5.1), otherwise the RFC 6749 §5.2 error or the raw body.
pub fn parse_token_answer(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<TokenAnswer, TokenError> {
    read_token_answer(status, body, retry_after, false)
}

/// Reads a token endpoint's answer as [`parse_token_answer`] does; with `proof_sent`, a
/// `token_type` of `DPoP` (RFC 9449 §5) is a token too.
pub fn read_token_answer(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    proof_sent: bool,
) -> Result<TokenAnswer, TokenError> {
    let unexpected = |reason: Option<String>| TokenError::UnexpectedResponse {
        status,
        reason,
        body: kept_body(status, body),
        retry_after,
    };
    let mut leniencies = Vec::new();
    let json = match body.strip_prefix(BOM) {
        Some(rest) => {
            leniencies.push(Leniency::ByteOrderMark);
            rest
        }
        None => body,
    };
    if status != 200 {
        return match serde_json::from_slice::<ErrorResponse>(json) {
            Ok(error) => Err(TokenError::Server {
                status,
                error,
                retry_after,
            }),
            Err(_) => Err(unexpected(None)),
        };
    }
    let not_token =
        |why: String| unexpected(Some(format!("not an RFC 6749 token response: {why}")));
    let members = match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(_) => return Err(not_token("not a JSON object".into())),
        Err(e) => return Err(not_token(e.to_string())),
    };
    let string = |name: &str| match members.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        None | Some(serde_json::Value::Null) => Err(not_token(format!("missing field `{name}`"))),
        Some(other) => Err(not_token(format!("`{name}` is not a string but {other}"))),
    };
    let access_token = string("access_token")?;
    let token_type = string("token_type")?;
    let expires_in = match members.get("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            read_expires_in(v, &mut leniencies)
                .ok_or_else(|| not_token(format!("expires_in is not a number of seconds: {v}")))?,
        ),
    };
    let scope = match members.get("scope") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(items)) => {
            let words: Option<Vec<&str>> = items.iter().map(serde_json::Value::as_str).collect();
            leniencies.push(Leniency::ScopeArray);
            Some(
                words
                    .ok_or_else(|| {
                        not_token("scope is an array of other things than strings".into())
                    })?
                    .join(" "),
            )
        }
        Some(other) => return Err(not_token(format!("`scope` is not a string but {other}"))),
    };
    let scheme = if token_type.eq_ignore_ascii_case("bearer") {
        TokenScheme::Bearer
    } else if token_type.eq_ignore_ascii_case("dpop") && proof_sent {
        TokenScheme::Dpop
    } else if token_type.eq_ignore_ascii_case("dpop") {
        return Err(unexpected(Some(format!(
            "token_type is '{token_type}' although no DPoP proof was sent: this client must use DPoP (RFC 9449; `--dpop`)"
        ))));
    } else {
        return Err(unexpected(Some(format!(
            "token_type is '{token_type}', only bearer (RFC 6750) and DPoP (RFC 9449) tokens are supported"
        ))));
    };
    if access_token.is_empty() {
        return Err(unexpected(Some("access_token is empty".into())));
    }
    Ok(TokenAnswer {
        response: TokenResponse {
            access_token: AccessToken::new(access_token),
            expires_in,
            scope,
            token_type,
        },
        scheme,
        members,
        leniencies,
    })
}

/// `expires_in` as whole seconds: a number (a fraction rounded down, a negative one
/// read as 0, one past `u64` as `u64::MAX`) or a string holding one. `None` when it is
/// neither.
fn read_expires_in(v: &serde_json::Value, leniencies: &mut Vec<Leniency>) -> Option<u64> {
    let (number, text) = match v {
        serde_json::Value::Number(n) => (n.clone(), None),
        serde_json::Value::String(s) => {
            let n = serde_json::from_str::<serde_json::Number>(s.trim()).ok()?;
            leniencies.push(Leniency::ExpiresInString(v.to_string()));
            (n, Some(s))
        }
        _ => return None,
    };
    if let Some(n) = number.as_u64() {
        return Some(n);
    }
    let shown = text.map_or_else(|| number.to_string(), |s| s.trim().to_owned());
    // `as` from f64 saturates: past u64::MAX is u64::MAX, negatives are 0.
    let f = number.as_f64()?;
    if f < 0.0 {
        leniencies.push(Leniency::ExpiresInNegative(shown));
        return Some(0);
    }
    if f.fract() != 0.0 {
        leniencies.push(Leniency::ExpiresInFraction(shown));
    }
    Some(f.floor() as u64)
}

/// Reads a token endpoint's answer: [`parse_token_answer`] without the extra members.
pub fn parse_response(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<TokenResponse, TokenError> {
    parse_token_answer(status, body, retry_after).map(|a| a.response)
}

/// The body as kept in an error, cut to [`MAX_KEPT_BODY`]. A `200` that is not a
/// usable token response (truncated, a wrong `token_type`, ...) may still carry a live
/// access token: its value is replaced by `[redacted]`, since errors end up in logs.
fn kept_body(status: u16, body: &[u8]) -> String {
    let cut = &body[..body.len().min(MAX_KEPT_BODY)];
    let text = String::from_utf8_lossy(cut).into_owned();
    if status == 200 {
        redact_access_token(&text)
    } else {
        text
    }
}

/// Replaces the string value of every `"access_token"` member (complete or cut off)
/// with `[redacted]`.
fn redact_access_token(text: &str) -> String {
    const KEY: &str = "\"access_token\"";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(KEY) {
        let after_key = i + KEY.len();
        out.push_str(&rest[..after_key]);
        rest = &rest[after_key..];
        // Keep `: "` as sent, then skip the value up to its closing quote (or the end).
        let value_start = rest
            .find(|c: char| c != ':' && !c.is_whitespace())
            .unwrap_or(rest.len());
        if !rest[value_start..].starts_with('"') {
            continue;
        }
        out.push_str(&rest[..=value_start]);
        rest = &rest[value_start + 1..];
        let mut end = rest.len();
        let mut escaped = false;
        for (j, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        out.push_str("[redacted]");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_config_and_the_request_hides_the_secret() {
        let secret = "abs_c2VjcmV0LXNlY3JldC1zZWNyZXQ";
        let mut config = TokenConfig::new(
            "http://127.0.0.1:1/auth-broker/request-token",
            "app",
            auth_broker_proto::ClientSecret::new(secret),
        );
        let mut seen = Vec::new();
        for auth in [ClientAuth::Basic, ClientAuth::BasicRaw, ClientAuth::Post] {
            config.auth = auth;
            let parts = request_parts(&config, SystemTime::now()).unwrap_or_else(|e| panic!("{e}"));
            let sent = format!(
                "{:?} {}",
                parts.authorization.as_ref().map(|h| h.as_bytes().to_vec()),
                parts.body
            );
            seen.push(sent);
            let d = format!("{config:?} {config:#?} {parts:?} {parts:#?}");
            assert!(d.contains("app"), "{d}");
            for s in [secret, &secret[4..]] {
                assert!(!d.contains(s), "{auth:?}: {d}");
            }
            // The Basic header, in base64, is absent too.
            if let Some(h) = &parts.authorization {
                let b64 = String::from_utf8_lossy(h.as_bytes()).into_owned();
                assert!(!d.contains(&b64["Basic ".len()..]), "{d}");
            }
        }
        // The parts do carry the secret (so the checks above can fail).
        assert!(seen[2].contains(&secret[4..]), "{}", seen[2]);
    }

    /// With a private key and DPoP: `Debug` of the configuration and of the request
    /// parts shows no key material, no assertion and no proof; the parts do carry them.
    #[test]
    fn debug_shows_no_key_material_assertion_or_proof() {
        use crate::{DpopKey, JwsAlg, PrivateKeyJwt, SigningKey};
        let key = SigningKey::generate(JwsAlg::Es256).unwrap_or_else(|e| panic!("{e}"));
        let jwk = format!("{:?}", key.public_jwk());
        let config = TokenConfig::with_credential(
            "http://127.0.0.1:1/token",
            "app",
            crate::Credential::PrivateKey(PrivateKeyJwt::new(key)),
        )
        .dpop(DpopKey::generate().unwrap_or_else(|e| panic!("{e}")));
        let parts = request_parts(&config, SystemTime::now()).unwrap_or_else(|e| panic!("{e}"));
        let assertion = parts
            .body
            .split('&')
            .find_map(|p| p.strip_prefix("client_assertion="))
            .unwrap_or_default()
            .to_owned();
        let proof = parts
            .dpop
            .as_ref()
            .and_then(|p| p.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(assertion.len() > 100 && proof.len() > 100, "they are sent");
        let d = format!("{config:?} {config:#?} {parts:?} {parts:#?}");
        for sent in [&assertion, &proof] {
            let signature = sent.rsplit('.').next().unwrap_or_default();
            assert!(!d.contains(&signature[..16]), "{d}");
        }
        assert!(d.contains("thumbprint"), "{d}");
        assert!(!jwk.contains("\"d\""), "{jwk}");
    }

    #[test]
    fn errors_keep_what_the_server_said() {
        let e = parse_response(
            401,
            br#"{"error":"invalid_client","error_description":"bad credentials"}"#,
            None,
        )
        .err();
        let Some(TokenError::Server { error, .. }) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(error.error_description.as_deref(), Some("bad credentials"));
        assert!(e.is_some_and(|e| !e.is_transient()));

        let e = parse_response(
            502,
            b"<html>Bad Gateway</html>",
            Some(Duration::from_secs(3)),
        )
        .err();
        let Some(e) = e else { panic!() };
        assert!(e.is_transient());
        assert!(e.to_string().contains("<html>Bad Gateway</html>"), "{e}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));

        let e = parse_response(200, b"garbage", None).err();
        assert!(matches!(
            e,
            Some(TokenError::UnexpectedResponse { status: 200, .. })
        ));
        let e = parse_response(200, br#"{"access_token":"x","token_type":"mac"}"#, None).err();
        assert!(e.is_some_and(|e| e.to_string().contains("mac")));
    }

    #[test]
    fn a_live_token_in_an_unusable_200_is_not_kept() {
        for (body, kept) in [
            (
                r#"{"access_token": "s3cr\"et", "token_type":"mac"}"#,
                r#"{"access_token": "[redacted]", "token_type":"mac"}"#,
            ),
            (
                r#"{"access_token":"s3cret-cut-of"#,
                r#"{"access_token":"[redacted]"#,
            ),
            (r#"{"access_token":null}"#, r#"{"access_token":null}"#),
        ] {
            let e = parse_response(200, body.as_bytes(), None).err();
            let Some(TokenError::UnexpectedResponse { body, .. }) = &e else {
                panic!("{e:?}")
            };
            assert_eq!(body, kept);
            assert!(!e.is_some_and(|e| e.to_string().contains("s3cr")));
        }
        // Other statuses keep the body as sent (no token there to protect).
        let e = parse_response(500, br#"{"access_token":"x"}"#, None).err();
        assert!(e.is_some_and(|e| e.to_string().contains(r#""x""#)));
    }

    /// Issue 13.9: read as tolerantly as common libraries do (golang.org/x/oauth2 takes
    /// `expires_in` as a number or a numeric string; a UTF-8 BOM is ignored, as RFC
    /// 8259 §8.1 allows), and every member is kept.
    #[test]
    fn a_bom_a_string_or_a_float_expires_in_are_read() {
        for (body, expires_in) in [
            (
                "\u{feff}{\"access_token\":\"t\",\"token_type\":\"bearer\",\"expires_in\":60}",
                Some(60),
            ),
            (
                r#"{"access_token":"t","token_type":"bearer","expires_in":"3599"}"#,
                Some(3599),
            ),
            (
                r#"{"access_token":"t","token_type":"bearer","expires_in":" 3599 "}"#,
                Some(3599),
            ),
            (
                r#"{"access_token":"t","token_type":"bearer","expires_in":3599.9}"#,
                Some(3599),
            ),
            (
                r#"{"access_token":"t","token_type":"bearer","expires_in":3.6e3}"#,
                Some(3600),
            ),
            (
                r#"{"access_token":"t","token_type":"bearer","expires_in":-5}"#,
                Some(0),
            ),
            (
                r#"{"access_token":"t","token_type":"bearer","expires_in":1e300}"#,
                Some(u64::MAX),
            ),
            (
                r#"{"access_token":"t","token_type":"bearer","expires_in":null}"#,
                None,
            ),
        ] {
            let t = parse_response(200, body.as_bytes(), None)
                .unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(t.expires_in, expires_in, "{body}");
        }
        let e = parse_response(
            200,
            br#"{"access_token":"t","token_type":"bearer","expires_in":"soon"}"#,
            None,
        )
        .err();
        assert!(e.is_some_and(|e| e.to_string().contains("expires_in")));

        let a = parse_token_answer(
            200,
            "\u{feff}{\"access_token\":\"t\",\"token_type\":\"Bearer\",\"expires_in\":\"60\",\"refresh_token\":\"r\",\"ext\":{\"a\":1}}".as_bytes(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            a.members.len(),
            5,
            "every member is kept: {:?}",
            a.members.keys()
        );
        assert_eq!(a.members["ext"], serde_json::json!({"a": 1}));
        assert_eq!(
            a.leniencies,
            [
                Leniency::ByteOrderMark,
                Leniency::ExpiresInString("\"60\"".into())
            ]
        );
    }

    /// RFC 9449 §5: `token_type: DPoP` is a token only when a proof was sent; `bearer`
    /// stays a bearer token even then.
    #[test]
    fn dpop_tokens_only_after_a_proof() {
        let dpop = br#"{"access_token":"t","token_type":"dpop","expires_in":60}"#;
        let e = parse_response(200, dpop, None).err();
        assert!(
            e.is_some_and(|e| e.to_string().contains("no DPoP proof was sent")),
            "a DPoP token without a proof is refused"
        );
        let a = read_token_answer(200, dpop, None, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.scheme, TokenScheme::Dpop);
        let bearer = br#"{"access_token":"t","token_type":"Bearer"}"#;
        let b = read_token_answer(200, bearer, None, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.scheme, TokenScheme::Bearer);
    }

    #[test]
    fn request_parts_per_method() {
        let c = TokenConfig::new(
            "http://x",
            "id",
            auth_broker_proto::ClientSecret::new("s/+=:%"),
        )
        .scope("a b");
        let p = request_parts(&c, SystemTime::now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.body, "grant_type=client_credentials&scope=a+b");
        assert!(p.authorization.is_some_and(|a| a.is_sensitive()));
        let p = request_parts(&c.clone().auth(ClientAuth::Post), SystemTime::now())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(p.authorization.is_none());
        assert!(
            p.body
                .contains("client_id=id&client_secret=s%2F%2B%3D%3A%25"),
            "{}",
            p.body
        );
    }
}

#[cfg(test)]
mod parse_properties {
    use super::*;
    use auth_broker_proto::AccessToken;
    use proptest::prelude::*;

    proptest! {
        /// Any RFC 6749 §5.1 response with a non-empty bearer token reads back as sent,
        /// whatever the case of `token_type` and whichever optional members are there.
        #[test]
        fn token_responses_read_back(
            token in "[A-Za-z0-9._~+/-]{1,200}",
            expires_in in proptest::option::of(any::<u64>()),
            scope in proptest::option::of("[ -~]{0,40}"),
            bearer in "[bB][eE][aA][rR][eE][rR]",
        ) {
            let sent = TokenResponse {
                access_token: AccessToken::new(token.clone()),
                expires_in,
                scope: scope.clone(),
                token_type: bearer.clone(),
            };
            let body = serde_json::to_vec(&sent).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = parse_response(200, &body, None).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got.access_token.expose_secret(), token.as_str());
            prop_assert_eq!(got.expires_in, expires_in);
            prop_assert_eq!(got.scope, scope);
            prop_assert_eq!(got.token_type, bearer);
        }

        /// Any RFC 6749 §5.2 error body on a non-200 answer is the server's error,
        /// kept whole, with the Retry-After given.
        #[test]
        fn error_bodies_read_back(
            status in 400u16..600,
            code in "[a-z_]{1,30}",
            description in proptest::option::of("[ -~]{0,80}"),
            retry in proptest::option::of(0u64..100_000),
        ) {
            let body = serde_json::json!({"error": code, "error_description": description}).to_string();
            let retry_after = retry.map(Duration::from_secs);
            match parse_response(status, body.as_bytes(), retry_after) {
                Err(TokenError::Server { status: s, error, retry_after: r }) => {
                    prop_assert_eq!(s, status);
                    prop_assert_eq!(error.error.as_str(), code.as_str());
                    prop_assert_eq!(error.error_description, description);
                    prop_assert_eq!(r, retry_after);
                }
                other => prop_assert!(false, "{other:?}"),
            }
        }

        /// Any bytes under any status: no panic, and a kept body is cut.
        #[test]
        fn any_answer_is_read_without_panic(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..6000)) {
            match parse_response(status, &body, None) {
                Ok(t) => prop_assert!(status == 200 && !t.access_token.expose_secret().is_empty()),
                Err(TokenError::UnexpectedResponse { body: kept, .. }) => {
                    prop_assert!(kept.chars().count() <= MAX_KEPT_BODY);
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod retry_after_tests {
    use super::parse_retry_after;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
    }
}
