//! `application/x-www-form-urlencoded` request bodies, as the token, introspection
//! and revocation endpoints read them (RFC 6749 Appendix B, §3.2).

use auth_broker_proto::form::{self, Form};

/// Parses `data` strictly. A body that parses re-serializes to one that parses to
/// the same form (names, values and order), with no name twice; the names'
/// `Debug` never shows a value. A body that does not parse names a byte offset
/// inside the body.
pub fn run(data: &[u8]) {
    match Form::parse(data) {
        Ok(parsed) => {
            let names: Vec<&str> = parsed.names().collect();
            for (i, n) in names.iter().enumerate() {
                assert!(!names[..i].contains(n), "the name {n:?} was accepted twice");
            }
            let pairs: Vec<(&str, &str)> = names
                .iter()
                .map(|n| (*n, parsed.get(n).unwrap_or_default()))
                .collect();
            let body = form::serialize(pairs.iter().copied());
            let again = Form::parse(body.as_bytes())
                .unwrap_or_else(|e| panic!("a re-serialized form does not parse: {e}"));
            assert_eq!(again, parsed, "a form changed in a round trip");
            for (n, v) in &pairs {
                assert_eq!(parsed.get_nonempty(n), (!v.is_empty()).then_some(*v));
            }
        }
        Err(form::FormError::BadPercentEscape { offset }) => {
            assert!(offset < data.len(), "offset {offset} is past the body");
            assert_eq!(data[offset], b'%', "offset {offset} is not at a '%'");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
