//! The claims of a validated token, and the checks on them shared by both modes.

use crate::error::{TokenError, short};
use serde_json::Value;

/// What a validated access token says (RFC 9068 §2.2, RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub iss: String,
    /// The client the token was issued to, acting on its own behalf (RFC 9068 §2.2).
    pub sub: String,
    pub client_id: String,
    /// `aud` as a list; RFC 7519 §4.1.3 allows a string or an array.
    pub aud: Vec<String>,
    /// Unix seconds; `i64::MAX` for an introspected token without `exp`.
    pub exp: i64,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub jti: Option<String>,
    /// The granted scopes (`scope` split on spaces; empty when absent).
    pub scopes: Vec<String>,
    /// Every member as received: the JWT payload or the introspection response.
    pub raw: Value,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The scopes as the `scope` claim writes them.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// The settings the claim checks need.
#[derive(Debug, Clone)]
pub(crate) struct Expect {
    pub issuer: String,
    pub audience: String,
    pub leeway: i64,
}

fn str_claim(v: &Value, name: &'static str) -> Result<Option<String>, TokenError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::MissingClaim(name)),
    }
}

fn int_claim(v: &Value, name: &'static str) -> Result<Option<i64>, TokenError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        // NumericDate may carry a fraction (RFC 7519 §2); whole seconds suffice here.
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(TokenError::MissingClaim(name)),
        Some(_) => Err(TokenError::MissingClaim(name)),
    }
}

/// Checks `iss`, `exp`, `nbf`, `iat` and `aud` in the broker's order, with the
/// leeway on every time comparison, and returns the claims and the window of
/// clock seconds in which they stay valid.
///
/// Times are any `i64` a signed token may carry (RFC 7519 §2 NumericDate has no
/// range), so the arithmetic saturates: `nbf: -9223372036854775808` once overflowed
/// `nbf - leeway` (a panic in debug builds, found by the `guard_token` fuzz seeds).
///
/// `jwt`: a self-contained token must carry `iss` and `exp`; an introspection
/// response (RFC 7662 §2.2) may leave them out.
pub(crate) fn check(
    raw: Value,
    expect: &Expect,
    now: i64,
    jwt: bool,
) -> Result<(Claims, i64, i64), TokenError> {
    let iss = str_claim(&raw, "iss")?;
    match &iss {
        None if jwt => return Err(TokenError::MissingClaim("iss")),
        Some(found) if *found != expect.issuer => {
            return Err(TokenError::WrongIssuer {
                found: short(found),
                expected: expect.issuer.clone(),
            });
        }
        _ => {}
    }
    let exp = match int_claim(&raw, "exp")? {
        Some(exp) => exp,
        None if jwt => return Err(TokenError::MissingClaim("exp")),
        None => i64::MAX,
    };
    if exp.saturating_add(expect.leeway) <= now {
        return Err(TokenError::Expired {
            secs_ago: now.saturating_sub(exp),
            leeway: expect.leeway,
        });
    }
    let nbf = int_claim(&raw, "nbf")?;
    if let Some(nbf) = nbf
        && nbf.saturating_sub(expect.leeway) > now
    {
        return Err(TokenError::NotYetValid {
            secs: nbf.saturating_sub(now),
        });
    }
    let iat = int_claim(&raw, "iat")?;
    if let Some(iat) = iat
        && iat.saturating_sub(expect.leeway) > now
    {
        return Err(TokenError::IssuedInFuture {
            secs: iat.saturating_sub(now),
        });
    }
    let aud: Vec<String> = match raw.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    if aud.is_empty() {
        return Err(TokenError::MissingClaim("aud"));
    }
    if !aud.contains(&expect.audience) {
        return Err(TokenError::WrongAudience {
            found: short(&aud.join(", ")),
            expected: expect.audience.clone(),
        });
    }
    let client_id = str_claim(&raw, "client_id")?.unwrap_or_default();
    let sub = str_claim(&raw, "sub")?.unwrap_or_else(|| client_id.clone());
    let scopes = str_claim(&raw, "scope")?
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let from = [nbf, iat]
        .into_iter()
        .flatten()
        .max()
        .map_or(i64::MIN, |t| t.saturating_sub(expect.leeway));
    let until = exp.saturating_add(expect.leeway);
    let claims = Claims {
        iss: iss.unwrap_or_else(|| expect.issuer.clone()),
        sub,
        client_id,
        aud,
        exp,
        iat,
        nbf,
        jti: str_claim(&raw, "jti")?,
        scopes,
        raw,
    };
    Ok((claims, from, until))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expect() -> Expect {
        Expect {
            issuer: "https://idp".into(),
            audience: "https://api".into(),
            leeway: 60,
        }
    }

    #[test]
    fn each_claim_fault_has_its_error() {
        let ok = json!({"iss":"https://idp","aud":"https://api","exp":1000,"iat":0,"client_id":"c","scope":"a b"});
        let (c, from, until) =
            check(ok.clone(), &expect(), 500, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.scopes, ["a", "b"]);
        assert_eq!(c.sub, "c");
        assert_eq!((from, until), (-60, 1060));
        assert_eq!(
            check(ok.clone(), &expect(), 1061, true).err(),
            Some(TokenError::Expired {
                secs_ago: 61,
                leeway: 60
            })
        );
        assert!(check(ok.clone(), &expect(), 1059, true).is_ok());
        assert_eq!(
            check(ok.clone(), &expect(), -61, true).err(),
            Some(TokenError::IssuedInFuture { secs: 61 })
        );
        let mut other = ok.clone();
        other["aud"] = json!(["x", "y"]);
        assert_eq!(
            check(other, &expect(), 500, true).err(),
            Some(TokenError::WrongAudience {
                found: "x, y".into(),
                expected: "https://api".into()
            })
        );
        let mut other = ok.clone();
        other["iss"] = json!("https://evil");
        assert!(matches!(
            check(other, &expect(), 500, true),
            Err(TokenError::WrongIssuer { .. })
        ));
        let mut other = ok.clone();
        other["nbf"] = json!(700);
        assert_eq!(
            check(other, &expect(), 500, true).err(),
            Some(TokenError::NotYetValid { secs: 200 })
        );
        // Extreme NumericDates (RFC 7519 §2 sets no range) must not overflow.
        let mut other = ok.clone();
        other["nbf"] = json!(i64::MIN);
        other["iat"] = json!(i64::MIN);
        assert!(check(other, &expect(), 500, true).is_ok());
        let mut other = ok.clone();
        other["exp"] = json!(i64::MIN);
        assert_eq!(
            check(other, &expect(), 500, true).err(),
            Some(TokenError::Expired {
                secs_ago: i64::MAX,
                leeway: 60
            })
        );
        let mut other = ok.clone();
        other["nbf"] = json!(i64::MAX);
        assert_eq!(
            check(other, &expect(), -500, true).err(),
            Some(TokenError::NotYetValid { secs: i64::MAX })
        );
        let bare = json!({"aud":"https://api"});
        assert_eq!(
            check(bare.clone(), &expect(), 0, true).err(),
            Some(TokenError::MissingClaim("iss"))
        );
        assert!(check(bare, &expect(), 0, false).is_ok());
    }
}
