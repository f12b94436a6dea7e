//! Scope strings (RFC 6749 §3.3).

/// Whether `token` is a valid scope-token: `1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Splits a scope parameter into its tokens, dropping repeats and keeping order.
/// Returns the first invalid token on error.
pub fn parse(scope: &str) -> Result<Vec<&str>, &str> {
    let mut out: Vec<&str> = Vec::new();
    for t in scope.split(' ').filter(|t| !t.is_empty()) {
        if !is_valid_token(t) {
            return Err(t);
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        assert_eq!(parse("a b  a c"), Ok(vec!["a", "b", "c"]));
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("a \"b\""), Err("\"b\""));
        assert!(is_valid_token("read:users"));
        assert!(!is_valid_token("a\\b"));
    }
}
