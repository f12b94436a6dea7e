//! `Authorization: Basic` as the token, introspection and revocation endpoints read
//! it (RFC 6749 §2.3.1, RFC 7617).

use auth_broker_proto::basic::{self, BasicCredentials};

/// Parses `data` as a header value. When it parses: the id and secret are not empty,
/// and building a header from either reading (the §2.3.1 form-encoded one and the raw
/// one) parses back to the same id and secret. When it does not: the message names no
/// credential bytes (checked for the error kinds that could echo them).
pub fn run(data: &[u8]) {
    let creds = match BasicCredentials::parse(data) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let id = creds.client_id();
    let secret = creds.client_secret();
    assert!(!id.is_empty(), "an empty client_id parsed");

    // The §2.3.1 reading survives encode -> parse exactly (the decoded reading may be
    // empty only if the raw one was not: `%` and `+` never decode to nothing, so not).
    let again = basic::header_value(id, secret, true);
    let back = BasicCredentials::parse(again.as_bytes())
        .unwrap_or_else(|e| panic!("a header built from parsed credentials does not parse: {e}"));
    assert_eq!(back.client_id(), id, "client_id changed in a round trip");
    assert_eq!(
        back.client_secret().expose_secret(),
        secret.expose_secret(),
        "client_secret changed in a round trip"
    );

    // The raw reading is sent unencoded; it is always one of the readings of the result.
    let raw_id = creds.raw_client_id().unwrap_or(id);
    let raw_secret = creds.raw_client_secret().unwrap_or(secret);
    let again = basic::header_value(raw_id, raw_secret, false);
    let back = BasicCredentials::parse(again.as_bytes())
        .unwrap_or_else(|e| panic!("a header built from the raw credentials does not parse: {e}"));
    assert_eq!(
        back.raw_client_id().unwrap_or(back.client_id()),
        raw_id,
        "raw client_id changed in a round trip"
    );
    assert_eq!(
        back.raw_client_secret()
            .unwrap_or(back.client_secret())
            .expose_secret(),
        raw_secret.expose_secret(),
        "raw client_secret changed in a round trip"
    );
}
