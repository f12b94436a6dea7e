//! `Authorization: Bearer` as the broker's `token-info` and the guard read it
//! (RFC 6750 §2.1).

use auth_broker_proto::bearer;

/// Parses `data` as one header value, and as two values when it holds a NUL (the
/// `Repeated` path). A token that parses is a non-empty RFC 6750 `b64token`, a
/// substring of the header, and parses again the same from `Bearer <token>`; an
/// error message never contains the token-like part of the header, and a bare
/// token longer than a scheme name is `NoScheme`, not echoed as a scheme.
pub fn run(data: &[u8]) {
    if let Some(i) = data.iter().position(|b| *b == 0) {
        let two = [&data[..i], &data[i + 1..]];
        assert_eq!(
            bearer::parse(two.into_iter()),
            Err(bearer::BearerError::Repeated),
            "two Authorization headers were accepted"
        );
    }
    match bearer::parse(std::iter::once(data)) {
        Ok(token) => {
            assert!(!token.is_empty());
            let body = token.trim_end_matches('=');
            assert!(
                !body.is_empty()
                    && body.bytes().all(|b| b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')),
                "not a b64token: {token:?}"
            );
            let again = format!("Bearer {token}");
            assert_eq!(
                bearer::parse(std::iter::once(again.as_bytes())),
                Ok(token),
                "a parsed token does not parse back"
            );
        }
        Err(e) => {
            let msg = e.to_string();
            // A bare token (no space, longer than a scheme name) is never echoed.
            if let Ok(text) = std::str::from_utf8(data) {
                let text = text.trim();
                let b64token = !text.trim_end_matches('=').is_empty()
                    && text.trim_end_matches('=').bytes().all(|b| {
                        b.is_ascii_alphanumeric()
                            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
                    });
                if text.len() > 20 && !text.contains(' ') && b64token {
                    assert_eq!(e, bearer::BearerError::NoScheme, "{text:?}");
                }
            }
            // The scheme is echoed (cut to 20 characters); anything past it is not.
            if let Ok(text) = std::str::from_utf8(data) {
                let text = text.trim();
                if let Some((scheme, rest)) = text.split_once(' ') {
                    let rest = rest.trim();
                    // Token-like: long, with a digit, in an alphabet the fixed
                    // message texts cannot hold 8 bytes of with a digit among them.
                    let token_like = rest.len() >= 8
                        && rest.bytes().any(|b| b.is_ascii_digit())
                        && rest
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
                    // The echoed scheme may hold the same bytes by chance.
                    let echoed: String = scheme.chars().take(20).collect();
                    if token_like && !echoed.contains(rest) {
                        assert!(!msg.contains(rest), "the message repeats the token: {msg}");
                    }
                }
            }
        }
    }
}
