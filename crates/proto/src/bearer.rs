//! The `Authorization: Bearer` header (RFC 6750 §2.1), with a precise error for each
//! way integrators get it wrong.

use std::fmt;

/// What is wrong with an `Authorization` header that should carry a bearer token.
/// Each message says what to do; none repeats the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header.
    Missing,
    /// More than one `Authorization` header.
    Repeated,
    /// Bytes that are not visible ASCII.
    NotAscii,
    /// Another scheme (at most 20 characters; anything longer is taken for a
    /// token sent without a scheme, and not echoed).
    WrongScheme { scheme: String },
    /// The token was sent without the `Bearer ` prefix.
    NoScheme,
    /// `Bearer` with nothing after it.
    Empty,
    /// The token is wrapped in quotes.
    Quoted,
    /// `Bearer Bearer ...`.
    Twice,
    /// The token has a space or a line break inside.
    Whitespace,
    /// Characters outside the b64token alphabet.
    BadCharacters,
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no Authorization header; send 'Authorization: Bearer <access_token>'"),
            Self::Repeated => f.write_str("more than one Authorization header; send one"),
            Self::NotAscii => f.write_str("the Authorization header has bytes that are not visible ASCII"),
            Self::WrongScheme { scheme } => {
                let hint = if scheme.eq_ignore_ascii_case("basic") {
                    " (Basic is for the token endpoint; APIs take the access token it returned)"
                } else {
                    ""
                };
                write!(f, "the Authorization header uses the '{scheme}' scheme{hint}; send 'Authorization: Bearer <access_token>'")
            }
            Self::NoScheme => f.write_str(
                "the Authorization header has the token without the 'Bearer ' prefix; send 'Authorization: Bearer <access_token>'",
            ),
            Self::Empty => f.write_str("'Bearer' with no token after it; send 'Bearer <access_token>'"),
            Self::Quoted => f.write_str(
                "the token is wrapped in quotes; send it bare: 'Authorization: Bearer eyJ...' (quotes often come from copying a JSON string)",
            ),
            Self::Twice => f.write_str("'Bearer' appears twice; send 'Authorization: Bearer <access_token>' once"),
            Self::Whitespace => f.write_str(
                "the token contains whitespace: it was split (by a line break or a space) when it was copied; send it as one unbroken string",
            ),
            Self::BadCharacters => f.write_str(
                "the token has characters a bearer token cannot have (RFC 6750 §2.1 allows A-Z a-z 0-9 - . _ ~ + / and trailing =); it was likely mangled in copying",
            ),
        }
    }
}

impl std::error::Error for BearerError {}

/// The longest scheme name echoed in [`BearerError::WrongScheme`]; registered
/// schemes (RFC 9110 §16.4.1) are far shorter.
const MAX_SCHEME_LEN: usize = 20;

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The scheme an access token came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer` (RFC 6750 §2.1).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): the token is bound to a key, and a proof comes with it.
    Dpop,
}

/// Takes the token out of the `Authorization` header values of a request. The scheme
/// is matched case-insensitively (RFC 7235 §2.1) and may be followed by several spaces.
pub fn parse<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<&'a str, BearerError> {
    split(values, false).map(|(_, token)| token)
}

/// Like [`parse`], but `DPoP <token>` (RFC 9449 §7.1) is taken too, and the scheme
/// is returned with the token.
pub fn parse_with_dpop<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<(Scheme, &'a str), BearerError> {
    split(values, true)
}

fn split<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
    dpop: bool,
) -> Result<(Scheme, &'a str), BearerError> {
    let value = values.next().ok_or(BearerError::Missing)?;
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
        .ok_or(BearerError::NotAscii)?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let matched = if scheme.eq_ignore_ascii_case("bearer") {
        Some(Scheme::Bearer)
    } else if dpop && scheme.eq_ignore_ascii_case("dpop") {
        Some(Scheme::Dpop)
    } else {
        None
    };
    let Some(matched) = matched else {
        // A bare token: a JWT, or anything longer than a scheme name (an opaque
        // `abo_...` token, perhaps with a stray character copied along). It is not
        // echoed back as a scheme, which would repeat its first characters.
        if (rest.is_empty() && scheme.starts_with("ey") && scheme.contains('.'))
            || scheme.len() > MAX_SCHEME_LEN
        {
            return Err(BearerError::NoScheme);
        }
        return Err(BearerError::WrongScheme {
            scheme: scheme.to_owned(),
        });
    };
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(BearerError::Empty);
    }
    if token.starts_with(['"', '\'']) || token.ends_with(['"', '\'']) {
        return Err(BearerError::Quoted);
    }
    if let Some((first, _)) = token.split_once([' ', '\t']) {
        if first.eq_ignore_ascii_case(scheme) {
            return Err(BearerError::Twice);
        }
        return Err(BearerError::Whitespace);
    }
    if !is_b64token(token) {
        return Err(BearerError::BadCharacters);
    }
    Ok((matched, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(v: &str) -> Result<&str, BearerError> {
        parse(std::iter::once(v.as_bytes()))
    }

    #[test]
    fn each_fault_has_its_error() {
        assert_eq!(one("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(one("bearer   abc"), Ok("abc"));
        assert_eq!(parse(std::iter::empty()), Err(BearerError::Missing));
        assert_eq!(
            parse([b"Bearer a".as_slice(), b"Bearer b"].into_iter()),
            Err(BearerError::Repeated)
        );
        assert_eq!(
            one("Basic abc"),
            Err(BearerError::WrongScheme {
                scheme: "Basic".into()
            })
        );
        assert_eq!(one("eyJhbGciOi.x.y"), Err(BearerError::NoScheme));
        // An opaque token sent bare is not echoed back as a scheme name.
        assert_eq!(
            one("abo_4fJ2kLm9QxZ8rT1vW3yB6nP0sD5gH7jK"),
            Err(BearerError::NoScheme)
        );
        // Nor with a stray character copied along, nor with something after it:
        // no scheme name is longer than 20 characters, so such a value is never
        // echoed as one.
        assert_eq!(
            one("abo_4fJ2kLm9QxZ8rT1vW3yB6nP0sD5gH7jK,"),
            Err(BearerError::NoScheme)
        );
        assert_eq!(one("Digest-with-a-long-name x"), Err(BearerError::NoScheme));
        assert_eq!(
            one("Twenty-characters-ok x"),
            Err(BearerError::WrongScheme {
                scheme: "Twenty-characters-ok".into()
            })
        );
        assert_eq!(one("Bearer"), Err(BearerError::Empty));
        assert_eq!(one("Bearer \"abc\""), Err(BearerError::Quoted));
        assert_eq!(one("Bearer Bearer abc"), Err(BearerError::Twice));
        assert_eq!(one("Bearer abc def"), Err(BearerError::Whitespace));
        assert_eq!(one("Bearer a*b"), Err(BearerError::BadCharacters));
        assert_eq!(one("Bearer abc=="), Ok("abc=="));
        assert_eq!(one("Bearer é"), Err(BearerError::NotAscii));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Err(e) = parse(std::iter::once(bytes.as_slice())) {
                let _ = e.to_string();
            }
        }

        /// Whatever surrounds a token (a scheme or none, quotes, a second
        /// `Bearer`, a line break, a bad character), a refusal never repeats any of
        /// it: an error message goes into logs and answers, and a token in a log is
        /// a usable credential (RFC 6750 §5.3). Only a scheme name (cut to 20
        /// characters) is echoed, so a token of 21 or more characters sent bare must
        /// not be taken for one: neither its start nor its end may appear.
        #[test]
        fn never_echoes_the_token(
            scheme in prop_oneof![Just(""), Just("Bearer "), Just("bearer  "), Just("Basic "), Just("Token "), Just("Bearer Bearer "), Just("Bearer \""), Just("abo_")],
            token in "[A-Za-z0-9._~+/-]{21,120}",
            tail in prop_oneof![Just(""), Just("\""), Just(" x"), Just("\n"), Just("*"), Just("é"), Just("=")],
        ) {
            let header = format!("{scheme}{token}{tail}");
            if let Err(e) = parse(std::iter::once(header.as_bytes())) {
                let message = e.to_string();
                for piece in [&token[..12], &token[token.len() - 12..]] {
                    prop_assert!(!message.contains(piece), "{header:?} gave {message:?}");
                }
            }
        }

        #[test]
        fn any_b64token_round_trips(t in "[A-Za-z0-9._~+/-]{1,80}={0,2}") {
            let header = format!("Bearer {t}");
            prop_assert_eq!(one(&header), Ok(t.as_str()));
        }
    }
}
