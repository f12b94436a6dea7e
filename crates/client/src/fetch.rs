//! One token request (RFC 6749 §4.4.2) and its answer (§5.1, §5.2).

use crate::config::{ClientAuth, TokenConfig};
use crate::error::{MAX_KEPT_BODY, TokenError};
use auth_broker_proto::{
    ErrorResponse, FORM_CONTENT_TYPE, GRANT_CLIENT_CREDENTIALS, TokenResponse, basic, form,
};
use std::sync::Arc;
use std::time::Duration;

/// The parts of a token request, for callers (like `doctor`) that want to show or
/// send exactly what the manager sends.
pub struct TokenRequestParts {
    /// `Authorization` header value, for the Basic methods. Contains the secret.
    pub authorization: Option<http::HeaderValue>,
    /// The form body. Contains the secret with [`ClientAuth::Post`].
    pub body: String,
}

/// Both parts may hold the secret: `Debug` shows the header only as `Sensitive` (it is
/// marked so) and the body's parameter names only.
impl std::fmt::Debug for TokenRequestParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .body
            .split('&')
            .map(|p| p.split_once('=').map_or(p, |(n, _)| n))
            .collect();
        f.debug_struct("TokenRequestParts")
            .field("authorization", &self.authorization)
            .field("body_names", &names)
            .finish()
    }
}

/// Builds the request headers and body for `config`.
pub fn request_parts(config: &TokenConfig) -> Result<TokenRequestParts, TokenError> {
    let mut pairs: Vec<(&str, &str)> = vec![("grant_type", GRANT_CLIENT_CREDENTIALS)];
    if let Some(s) = &config.scope {
        pairs.push(("scope", s));
    }
    if let Some(a) = &config.audience {
        pairs.push(("audience", a));
    }
    let authorization = match config.auth {
        ClientAuth::Basic | ClientAuth::BasicRaw => {
            let v = basic::header_value(
                &config.client_id,
                &config.client_secret,
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
            pairs.push(("client_secret", config.client_secret.expose_secret()));
            None
        }
    };
    Ok(TokenRequestParts {
        authorization,
        body: form::serialize(pairs),
    })
}

/// Sends one token request and reads the answer.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    config: &TokenConfig,
) -> Result<TokenResponse, TokenError> {
    let parts = request_parts(config)?;
    let mut req = http
        .post(&config.token_url)
        .header(http::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
        .header(http::header::ACCEPT, "application/json")
        .timeout(config.request_timeout)
        .body(parts.body);
    if let Some(a) = parts.authorization {
        req = req.header(http::header::AUTHORIZATION, a);
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
                source: Arc::new(e.without_url()),
            }
        }
    };
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    let body = resp.bytes().await.map_err(transport)?;
    parse_response(status, &body, retry_after)
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

/// Reads a token endpoint's answer.
pub fn parse_response(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<TokenResponse, TokenError> {
    let unexpected = |reason: Option<String>| TokenError::UnexpectedResponse {
        status,
        reason,
        body: kept_body(status, body),
        retry_after,
    };
    if status == 200 {
        let t: TokenResponse = serde_json::from_slice(body)
            .map_err(|e| unexpected(Some(format!("not an RFC 6749 token response: {e}"))))?;
        if !t.token_type.eq_ignore_ascii_case("bearer") {
            return Err(unexpected(Some(format!(
                "token_type is '{}', only bearer tokens are supported",
                t.token_type
            ))));
        }
        if t.access_token.expose_secret().is_empty() {
            return Err(unexpected(Some("access_token is empty".into())));
        }
        return Ok(t);
    }
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(error) => Err(TokenError::Server {
            status,
            error,
            retry_after,
        }),
        Err(_) => Err(unexpected(None)),
    }
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
            let parts = request_parts(&config).unwrap_or_else(|e| panic!("{e}"));
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

    #[test]
    fn request_parts_per_method() {
        let c = TokenConfig::new(
            "http://x",
            "id",
            auth_broker_proto::ClientSecret::new("s/+=:%"),
        )
        .scope("a b");
        let p = request_parts(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.body, "grant_type=client_credentials&scope=a+b");
        assert!(p.authorization.is_some_and(|a| a.is_sensitive()));
        let p = request_parts(&c.clone().auth(ClientAuth::Post)).unwrap_or_else(|e| panic!("{e}"));
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
