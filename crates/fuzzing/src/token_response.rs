//! A token endpoint's answer as the client reads it (RFC 6749 §5.1, §5.2):
//! `auth_broker_client::parse_response`, and the `Retry-After` value beside it.

use auth_broker_client::TokenError;
use auth_broker_client::error::MAX_KEPT_BODY;
use auth_broker_client::fetch::{parse_response, parse_retry_after};
use std::time::{Duration, UNIX_EPOCH};

const STATUSES: [u16; 8] = [200, 200, 200, 400, 401, 429, 500, 503];

/// The first byte picks the HTTP status (200 most often) and whether a
/// `Retry-After` came; the rest is the body. A token accepted is a non-empty bearer
/// token and survives serializing and reading again; an RFC 6749 §5.2 error is read
/// only from a non-200 answer and survives a serde round trip; an unexpected body is
/// kept cut to [`MAX_KEPT_BODY`] bytes (at most three times that
/// once invalid UTF-8 is replaced); `Retry-After` is carried through as given.
pub fn run(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(pick % 8)];
    let retry_after = (pick & 8 != 0).then(|| Duration::from_secs(u64::from(pick >> 4)));
    if let Ok(text) = std::str::from_utf8(body) {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let _ = parse_retry_after(text, now);
    }
    match parse_response(status, body, retry_after) {
        Ok(t) => {
            assert_eq!(status, 200, "a token read from a {status} answer");
            assert!(t.token_type.eq_ignore_ascii_case("bearer"));
            assert!(!t.access_token.expose_secret().is_empty());
            let json = serde_json::to_vec(&t).unwrap_or_else(|e| panic!("{e}"));
            let again = parse_response(200, &json, None)
                .unwrap_or_else(|e| panic!("a re-serialized token response is refused: {e}"));
            assert_eq!(
                again.access_token.expose_secret(),
                t.access_token.expose_secret()
            );
            assert_eq!(again.expires_in, t.expires_in);
            assert_eq!(again.scope, t.scope);
            assert_eq!(again.token_type, t.token_type);
        }
        Err(e) => {
            let _ = e.to_string();
            let _ = e.is_transient();
            assert_eq!(e.retry_after(), retry_after);
            match &e {
                TokenError::Server {
                    status: s, error, ..
                } => {
                    assert_ne!(*s, 200, "an error read from a 200 answer");
                    let json = serde_json::to_string(error).unwrap_or_else(|e| panic!("{e}"));
                    let again: auth_broker_proto::ErrorResponse = serde_json::from_str(&json)
                        .unwrap_or_else(|e| panic!("an error does not read back: {e}"));
                    assert_eq!(&again, error);
                }
                TokenError::UnexpectedResponse { body: kept, .. } => {
                    assert!(kept.len() <= 3 * MAX_KEPT_BODY);
                }
                _ => panic!("parse_response returned {e:?}"),
            }
        }
    }
}
