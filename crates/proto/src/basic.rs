//! HTTP Basic client authentication (RFC 6749 §2.3.1, RFC 7617).
//!
//! RFC 6749 §2.3.1 says the client id and secret are form-urlencoded before they are
//! joined with `:` and base64-encoded; many clients (and the seed's own server) skip
//! that step. [`BasicCredentials`] therefore keeps both readings, and the server
//! tries the decoded one first and the raw one only if they differ and the first fails.

use crate::form;
use crate::secret::ClientSecret;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::fmt;

/// Standard base64; padding may be present or not, since clients differ.
const LENIENT_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an `Authorization` header is not usable Basic client authentication. The
/// messages say what to fix and never include the credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BasicError {
    /// Another scheme than `Basic` (the scheme name, cut to 20 printable characters).
    NotBasic { scheme: String },
    /// One long word and no scheme: probably the credentials without `Basic `
    /// (not echoed).
    NoScheme,
    /// `Basic` with nothing after it.
    Empty,
    /// The credentials are not base64.
    BadBase64 { hint: &'static str },
    /// The decoded credentials are not UTF-8.
    NotUtf8,
    /// No `:` between id and secret.
    NoColon,
    /// The client id is empty.
    EmptyId,
    /// The client secret is empty.
    EmptySecret,
}

impl fmt::Display for BasicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBasic { scheme } => write!(
                f,
                "the Authorization header uses the '{scheme}' scheme; the token endpoint takes 'Basic base64(client_id:client_secret)'"
            ),
            Self::NoScheme => f.write_str(
                "the Authorization header has no scheme; the token endpoint takes 'Basic base64(client_id:client_secret)' (with the word 'Basic' and a space first)",
            ),
            Self::Empty => f.write_str(
                "the Authorization header is 'Basic' with no credentials; send 'Basic base64(client_id:client_secret)'",
            ),
            Self::BadBase64 { hint } => write!(
                f,
                "the credentials after 'Basic ' are not valid base64{hint}; send base64(client_id:client_secret)"
            ),
            Self::NotUtf8 => f.write_str(
                "the base64 credentials decode to bytes that are not UTF-8 text; encode 'client_id:client_secret' as UTF-8 before base64",
            ),
            Self::NoColon => f.write_str(
                "the decoded Basic credentials contain no ':' between client_id and client_secret; encode 'client_id:client_secret', not the id or secret alone",
            ),
            Self::EmptyId => f.write_str(
                "the decoded Basic credentials have an empty client_id (nothing before ':')",
            ),
            Self::EmptySecret => f.write_str(
                "the decoded Basic credentials have an empty client_secret (nothing after ':')",
            ),
        }
    }
}

impl std::error::Error for BasicError {}

/// Credentials taken from a Basic header, in both readings.
#[derive(Clone, Debug)]
pub struct BasicCredentials {
    raw_id: String,
    decoded_id: Option<String>,
    raw_secret: ClientSecret,
    decoded_secret: Option<ClientSecret>,
}

impl BasicCredentials {
    /// Parses an `Authorization` header value. The scheme is matched
    /// case-insensitively (RFC 7235 §2.1).
    pub fn parse(header: &[u8]) -> Result<Self, BasicError> {
        let header = trim(header);
        let (scheme, rest) = match header.iter().position(|b| *b == b' ') {
            Some(i) => (&header[..i], trim(&header[i..])),
            None => (header, &header[header.len()..]),
        };
        if !scheme.eq_ignore_ascii_case(b"basic") {
            // A long value with nothing after it is no scheme name but most likely
            // the credentials themselves (a bare secret, or base64 without `Basic `):
            // it is not echoed, not even in part.
            if rest.is_empty() && scheme.len() > 16 {
                return Err(BasicError::NoScheme);
            }
            let scheme: String = String::from_utf8_lossy(scheme)
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(20)
                .collect();
            return Err(BasicError::NotBasic { scheme });
        }
        if rest.is_empty() {
            return Err(BasicError::Empty);
        }
        let bytes = LENIENT_PADDING
            .decode(rest)
            .map_err(|_| BasicError::BadBase64 {
                hint: base64_hint(rest),
            })?;
        let text = String::from_utf8(bytes).map_err(|_| BasicError::NotUtf8)?;
        let (id, secret) = text.split_once(':').ok_or(BasicError::NoColon)?;
        if id.is_empty() {
            return Err(BasicError::EmptyId);
        }
        if secret.is_empty() {
            return Err(BasicError::EmptySecret);
        }
        let decoded_id = form_decoded(id);
        let decoded_secret = form_decoded(secret).map(ClientSecret::new);
        Ok(Self {
            raw_id: id.to_owned(),
            decoded_id,
            raw_secret: ClientSecret::new(secret),
            decoded_secret,
        })
    }

    /// The client id as RFC 6749 §2.3.1 reads it (form-decoded).
    pub fn client_id(&self) -> &str {
        self.decoded_id.as_deref().unwrap_or(&self.raw_id)
    }

    /// The client id as sent, before form-decoding, if that reading differs.
    pub fn raw_client_id(&self) -> Option<&str> {
        self.decoded_id.as_ref().map(|_| self.raw_id.as_str())
    }

    /// The secret as RFC 6749 §2.3.1 reads it (form-decoded).
    pub fn client_secret(&self) -> &ClientSecret {
        self.decoded_secret.as_ref().unwrap_or(&self.raw_secret)
    }

    /// The secret as sent, before form-decoding, if that reading differs.
    pub fn raw_client_secret(&self) -> Option<&ClientSecret> {
        self.decoded_secret.as_ref().map(|_| &self.raw_secret)
    }
}

/// The form-decoded reading of `s`, when it decodes and differs from `s`.
fn form_decoded(s: &str) -> Option<String> {
    if !s.contains(['%', '+']) {
        return None;
    }
    let bytes = form::decode(s.as_bytes(), 0).ok()?;
    String::from_utf8(bytes).ok().filter(|d| d != s)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

fn base64_hint(b: &[u8]) -> &'static str {
    if b.contains(&b':') {
        " (it contains ':', so it looks like 'client_id:client_secret' sent without base64 encoding)"
    } else if b.iter().any(|c| *c == b'-' || *c == b'_') {
        " (it contains '-' or '_', the base64url alphabet; Basic uses standard base64 with '+' and '/')"
    } else if b.contains(&b' ') {
        " (it contains a space; send one base64 string after 'Basic ')"
    } else {
        ""
    }
}

/// Builds an `Authorization: Basic` header value.
///
/// With `form_encode` (the RFC 6749 §2.3.1 way, the default for clients) id and
/// secret are form-urlencoded first; without it they are joined raw, which is what
/// servers that skip §2.3.1 expect.
pub fn header_value(client_id: &str, secret: &ClientSecret, form_encode: bool) -> String {
    let joined = if form_encode {
        format!(
            "{}:{}",
            form::encode(client_id),
            form::encode(secret.expose_secret())
        )
    } else {
        format!("{client_id}:{}", secret.expose_secret())
    };
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(joined)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn parses_raw_and_encoded() {
        let c = BasicCredentials::parse(b64("demo:s3cr3t").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.client_id(), "demo");
        assert_eq!(c.client_secret().expose_secret(), "s3cr3t");
        assert!(c.raw_client_id().is_none());

        // oauth2-rs's edge case: an id of `aaa/;&` and a secret with `/ + = : %`.
        let h = header_value("aaa/;&", &ClientSecret::new("a/b+c=d:e%f"), true);
        let c = BasicCredentials::parse(h.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.client_id(), "aaa/;&");
        assert_eq!(c.client_secret().expose_secret(), "a/b+c=d:e%f");
        assert_eq!(
            c.raw_client_secret().map(|s| s.expose_secret()),
            Some("a%2Fb%2Bc%3Dd%3Ae%25f")
        );

        // The raw form of the same secret is kept for servers' second try.
        let h = header_value("id", &ClientSecret::new("a+b"), false);
        let c = BasicCredentials::parse(h.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.client_secret().expose_secret(), "a b");
        assert_eq!(
            c.raw_client_secret().map(|s| s.expose_secret()),
            Some("a+b")
        );
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        let c = BasicCredentials::parse(b"bAsIc ZGVtbzpzZWNyZXQ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.client_id(), "demo");
    }

    #[test]
    fn each_malformation_has_its_error() {
        assert_eq!(
            BasicCredentials::parse(b"Bearer abc").err(),
            Some(BasicError::NotBasic {
                scheme: "Bearer".into()
            })
        );
        assert_eq!(
            BasicCredentials::parse(b"Basic").err(),
            Some(BasicError::Empty)
        );
        assert_eq!(
            BasicCredentials::parse(b"Basic   ").err(),
            Some(BasicError::Empty)
        );
        assert!(matches!(
            BasicCredentials::parse(b"Basic demo:secret").err(),
            Some(BasicError::BadBase64 { hint }) if hint.contains("without base64")
        ));
        assert_eq!(
            BasicCredentials::parse(b64("nocolon").as_bytes()).err(),
            Some(BasicError::NoColon)
        );
        assert_eq!(
            BasicCredentials::parse(b64(":secret").as_bytes()).err(),
            Some(BasicError::EmptyId)
        );
        assert_eq!(
            BasicCredentials::parse(b64("id:").as_bytes()).err(),
            Some(BasicError::EmptySecret)
        );
        assert_eq!(
            BasicCredentials::parse(b"Basic //79").err(),
            Some(BasicError::NotUtf8)
        );
    }

    #[test]
    fn errors_never_echo_credentials() {
        for h in [
            b64("myid"),
            "Basic myid:mysecret".to_owned(),
            b64(":mysecret"),
            // The credentials without the scheme: a bare secret, bare base64.
            "abs_mysecretmysecretmysecret".to_owned(),
            b64("myid:mysecret")["Basic ".len()..].to_owned(),
        ] {
            if let Err(e) = BasicCredentials::parse(h.as_bytes()) {
                let msg = e.to_string();
                assert!(!msg.contains("mysecret") && !msg.contains("myid"), "{msg}");
            }
        }
    }

    proptest! {
        #[test]
        fn header_round_trips(id in "[^:]{1,20}", secret in ".{1,40}", encode in any::<bool>()) {
            let h = header_value(&id, &ClientSecret::new(secret.clone()), encode);
            let c = BasicCredentials::parse(h.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if encode {
                prop_assert_eq!(c.client_id(), id.as_str());
                prop_assert_eq!(c.client_secret().expose_secret(), secret.as_str());
            } else {
                // The raw reading is always one of the two the server tries.
                let ids = [Some(c.client_id()), c.raw_client_id()];
                prop_assert!(ids.contains(&Some(id.as_str())));
                let secrets = [Some(c.client_secret().expose_secret()), c.raw_client_secret().map(ClientSecret::expose_secret)];
                prop_assert!(secrets.contains(&Some(secret.as_str())));
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BasicCredentials::parse(&bytes);
        }
    }
}
