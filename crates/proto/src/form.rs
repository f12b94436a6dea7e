//! Strict `application/x-www-form-urlencoded` (RFC 6749 Appendix B).
//!
//! Common form parsers are lenient: they pass a broken `%zz` escape through and replace
//! invalid UTF-8. A token endpoint should instead tell the caller their body is broken,
//! so this parser refuses both, and refuses a parameter sent twice (RFC 6749 §3.2:
//! "Request and response parameters MUST NOT be included more than once").

use std::fmt;

/// Why a form body was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormError {
    /// A `%` not followed by two hex digits, at this byte offset.
    BadPercentEscape { offset: usize },
    /// The decoded bytes of a name or value are not UTF-8.
    NotUtf8 { name: String },
    /// A parameter appears more than once.
    Repeated { name: String },
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPercentEscape { offset } => write!(
                f,
                "the form body is not valid application/x-www-form-urlencoded: a '%' at byte {offset} is not followed by two hex digits"
            ),
            Self::NotUtf8 { name } => write!(
                f,
                "the form parameter '{name}' does not decode to UTF-8 text"
            ),
            Self::Repeated { name } => write!(
                f,
                "the parameter '{name}' is included more than once (RFC 6749 §3.2); send it once"
            ),
        }
    }
}

impl std::error::Error for FormError {}

/// A parsed form body: the name/value pairs in order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

/// Values may hold a `client_secret`, so `Debug` shows names only.
impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Form {
    /// Parses a body strictly. Empty pieces (`a=1&&b=2`) are skipped as the WHATWG
    /// algorithm does; a piece without `=` is a name with an empty value.
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        Self::parse_keeping(body, |_| true)
    }

    /// Parses a body strictly but keeps only the parameters named in `recognized`:
    /// an endpoint "MUST ignore unrecognized request parameters" (RFC 6749 §3.2), so
    /// only a recognized one sent twice is refused. The whole body must still be
    /// well-formed (escapes, UTF-8).
    pub fn parse_recognized(body: &[u8], recognized: &[&str]) -> Result<Self, FormError> {
        Self::parse_keeping(body, |name| recognized.contains(&name))
    }

    fn parse_keeping(body: &[u8], keep: impl Fn(&str) -> bool) -> Result<Self, FormError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut offset = 0;
        for piece in body.split(|b| *b == b'&') {
            let start = offset;
            offset += piece.len() + 1;
            if piece.is_empty() {
                continue;
            }
            let (name, value) = match piece.iter().position(|b| *b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &piece[piece.len()..]),
            };
            let name = decode(name, start)?;
            let name = String::from_utf8(name).map_err(|e| FormError::NotUtf8 {
                name: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            })?;
            let value_offset = start + piece.len() - value.len();
            let value = String::from_utf8(decode(value, value_offset)?)
                .map_err(|_| FormError::NotUtf8 { name: name.clone() })?;
            if !keep(&name) {
                continue;
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(FormError::Repeated { name });
            }
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// The value of a parameter, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a parameter, treating an empty value as absent (RFC 6749 §3.1:
    /// "Parameters sent without a value MUST be treated as if they were omitted").
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// The parameter names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(n, _)| n.as_str())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one name or value: `+` is a space, `%XX` a byte.
pub fn decode(input: &[u8], offset: usize) -> Result<Vec<u8>, FormError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = input.get(i + 1).copied().and_then(hex);
                let lo = input.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(FormError::BadPercentEscape { offset: offset + i }),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

/// Encodes a string as `application/x-www-form-urlencoded` (the byte serializer of
/// the WHATWG URL standard, which RFC 6749 §2.3.1 asks for inside Basic credentials).
pub fn encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    out
}

/// Builds a form body from pairs, encoding each name and value.
pub fn serialize<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (n, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode(n));
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unrecognized_parameters_are_ignored_even_repeated() {
        let known = ["grant_type", "scope"];
        let f = Form::parse_recognized(b"x=1&grant_type=client_credentials&x=2&y", &known)
            .unwrap_or_default();
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.names().collect::<Vec<_>>(), ["grant_type"]);
        assert_eq!(
            Form::parse_recognized(b"scope=a&x=1&scope=b", &known),
            Err(FormError::Repeated {
                name: "scope".into()
            })
        );
        assert_eq!(
            Form::parse_recognized(b"x=%zz", &known),
            Err(FormError::BadPercentEscape { offset: 2 })
        );
    }

    #[test]
    fn parses_the_contract_body() {
        let f = Form::parse(b"grant_type=client_credentials&scope=a%20b+c").unwrap_or_default();
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.get("scope"), Some("a b c"));
        assert_eq!(f.get("audience"), None);
    }

    #[test]
    fn refuses_broken_escapes_repeats_and_bad_utf8() {
        assert_eq!(
            Form::parse(b"a=1&b=%zz"),
            Err(FormError::BadPercentEscape { offset: 6 })
        );
        assert_eq!(
            Form::parse(b"a=%4"),
            Err(FormError::BadPercentEscape { offset: 2 })
        );
        assert_eq!(
            Form::parse(b"grant_type=x&grant_type=y"),
            Err(FormError::Repeated {
                name: "grant_type".into()
            })
        );
        assert!(matches!(
            Form::parse(b"a=%ff%fe"),
            Err(FormError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn debug_hides_values() {
        let f = Form::parse(b"client_secret=hunter2").unwrap_or_default();
        assert!(!format!("{f:?}").contains("hunter2"));
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(pairs in proptest::collection::btree_map("[^\u{0}]{1,12}", ".{0,24}", 0..6)) {
            let body = serialize(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let form = Form::parse(body.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for (k, v) in &pairs {
                prop_assert_eq!(form.get(k), Some(v.as_str()));
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Form::parse(&bytes);
        }
    }
}
