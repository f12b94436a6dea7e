//! The claims of an access token (RFC 9068 §2.2, RFC 7519 §4.1): what the broker
//! signs, what the judgement reads back, what a guarded handler sees, and what the
//! OpenAPI document describes. One type, so `aud` is one-or-many everywhere.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// `aud` (RFC 7519 §4.1.3): one audience as a string, or several as an array of
/// strings. The broker writes one; other issuers, and RFC 7662 responses, may write
/// an array, and a verifier must accept both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Each audience.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Self::One(a) => (Some(a.as_str()), &[][..]),
            Self::Many(a) => (None, a.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    /// Whether `audience` is one of them.
    pub fn contains(&self, audience: &str) -> bool {
        self.iter().any(|a| a == audience)
    }

    /// No audience at all (an empty array).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl From<&str> for Audience {
    fn from(a: &str) -> Self {
        Self::One(a.to_owned())
    }
}

impl From<String> for Audience {
    fn from(a: String) -> Self {
        Self::One(a)
    }
}

/// The audiences separated by `, `, as messages name them.
impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(a)?;
        }
        Ok(())
    }
}

/// A string or an array of strings, and a message that says so for anything else
/// (serde's untagged derive would only say "did not match any variant").
impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings (RFC 7519 §4.1.3)")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Audience, E> {
                Ok(Audience::One(s.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Audience, E> {
                Ok(Audience::One(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Audience, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(a) = seq.next_element::<String>()? {
                    all.push(a);
                }
                Ok(Audience::Many(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// RFC 7519 §2 NumericDate: seconds since the epoch, which may carry a fraction and
/// has no range. Whole seconds are kept (a fraction is dropped, toward zero); a
/// value beyond `i64` saturates. One rule, for the judgement reading a JWT payload
/// and for serde reading an RFC 7662 response.
pub fn numeric_date_secs(n: &serde_json::Number) -> i64 {
    match n.as_i64() {
        Some(i) => i,
        // A u64 beyond i64::MAX, or a float: `as` saturates (and maps NaN to 0,
        // which JSON cannot carry anyway).
        None => n.as_f64().map_or(i64::MAX, |f| f as i64),
    }
}

/// For `skip_serializing_if`: an absent member is left out, never written `null`.
pub(crate) fn none<T>(member: &Option<T>) -> bool {
    member.is_none()
}

/// serde helpers for NumericDate members, in seconds (see [`numeric_date_secs`]).
pub mod secs {
    use serde::{Deserialize, Deserializer};

    /// A required NumericDate.
    pub fn req<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        serde_json::Number::deserialize(d).map(|n| super::numeric_date_secs(&n))
    }

    /// An optional NumericDate (absent or `null`: `None`).
    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)
            .map(|n| n.map(|n| super::numeric_date_secs(&n)))
    }
}

/// The claims of a JWT access token (RFC 9068 §2.2). This broker writes all of
/// them but `nbf`, and `scope` only when something was granted. Which of them a
/// token must carry is the verifier's choice (by default `iss`, `exp` and `aud`).
// The broker writes the members in this order; reading back, `sub` and `client_id`
// default to empty (the judgement makes `sub` default to `client_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessTokenClaims {
    /// The issuer: the broker's `--issuer` URL.
    pub iss: String,
    /// The client the token was issued to, acting on its own behalf (RFC 9068 §2.2).
    #[serde(default)]
    pub sub: String,
    /// The client id (RFC 8693 §4.3); the same as `sub` for this broker's tokens.
    #[serde(default)]
    pub client_id: String,
    /// The audience: the client's audience setting, by default the issuer.
    pub aud: Audience,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "none", deserialize_with = "secs::opt")]
    pub iat: Option<i64>,
    /// Expires at, seconds since the epoch.
    #[serde(deserialize_with = "secs::req")]
    pub exp: i64,
    /// Not before, seconds since the epoch (the broker does not write it).
    #[serde(default, skip_serializing_if = "none", deserialize_with = "secs::opt")]
    pub nbf: Option<i64>,
    /// The token's unique id, which revocation records (RFC 7009).
    #[serde(default, skip_serializing_if = "none")]
    pub jti: Option<String>,
    /// The granted scopes, space separated (RFC 8693 §4.2); absent when none.
    #[serde(default, skip_serializing_if = "none")]
    pub scope: Option<String>,
    /// The key the token is bound to (RFC 7800 §3.1): a DPoP key (RFC 9449 §6.1) or
    /// a client certificate (RFC 8705 §3.1). Absent for a bearer token.
    #[serde(default, skip_serializing_if = "none")]
    pub cnf: Option<Confirmation>,
}

/// `cnf` (RFC 7800 §3.1): what a sender must prove to use the token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Confirmation {
    /// The JWK SHA-256 thumbprint (RFC 7638) of the DPoP key (RFC 9449 §6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// The SHA-256 thumbprint of the client certificate, base64url (RFC 8705 §3.1).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// A token bound to neither (an empty `cnf`, which binds nothing).
    pub fn is_empty(&self) -> bool {
        self.jkt.is_none() && self.x5t_s256.is_none()
    }
}

impl AccessTokenClaims {
    /// The granted scopes, one by one (empty when `scope` is absent).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audience_is_one_or_many_on_the_wire() {
        let one: Audience =
            serde_json::from_value(json!("https://api")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one, Audience::One("https://api".into()));
        assert_eq!(serde_json::to_value(&one).ok(), Some(json!("https://api")));
        let many: Audience =
            serde_json::from_value(json!(["a", "b"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_value(&many).ok(), Some(json!(["a", "b"])));
        assert!(many.contains("b") && !many.contains("c"));
        assert_eq!(many.to_string(), "a, b");
        assert!(Audience::Many(vec![]).is_empty());
        let e = serde_json::from_value::<Audience>(json!(5))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "invalid type: integer `5`, expected a string or an array of strings (RFC 7519 §4.1.3)"
            )
        );
        assert!(serde_json::from_value::<Audience>(json!(["a", 1])).is_err());
    }

    /// The broker's tokens are byte-for-byte what they were when `aud` was a plain
    /// string field: the same members in the same order.
    #[test]
    fn serializes_as_the_broker_has_always_signed() {
        let c = AccessTokenClaims {
            iss: "https://b".into(),
            sub: "c".into(),
            client_id: "c".into(),
            aud: "https://b".into(),
            iat: Some(1),
            exp: 3601,
            nbf: None,
            jti: Some("j".into()),
            scope: None,
            cnf: None,
        };
        assert_eq!(
            serde_json::to_string(&c).ok().as_deref(),
            Some(
                r#"{"iss":"https://b","sub":"c","client_id":"c","aud":"https://b","iat":1,"exp":3601,"jti":"j"}"#
            )
        );
        let back: AccessTokenClaims =
            serde_json::from_str(&serde_json::to_string(&c).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, c);
        assert_eq!(c.scopes().count(), 0);
        let scoped = AccessTokenClaims {
            scope: Some(" a  b ".into()),
            ..c
        };
        assert_eq!(scoped.scopes().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn numeric_dates_keep_whole_seconds_and_saturate() {
        let n = |v: serde_json::Value| match v {
            serde_json::Value::Number(n) => numeric_date_secs(&n),
            _ => panic!("not a number"),
        };
        assert_eq!(n(json!(1_700_000_000)), 1_700_000_000);
        assert_eq!(n(json!(1_700_000_000.9)), 1_700_000_000);
        assert_eq!(n(json!(-1.5)), -1);
        assert_eq!(n(json!(u64::MAX)), i64::MAX);
        assert_eq!(n(json!(1e300)), i64::MAX);
        assert_eq!(n(json!(-1e300)), i64::MIN);
    }
}
