//! Mutual TLS client authentication (RFC 8705 §2): what a client certificate says,
//! and whether it is the one a client registered.

use auth_broker_jwt::mtls::ClientCertificate;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// The certificate chain a client presented in the TLS handshake (its certificate
/// first), as a request extension, with its certificate's `x5t#S256` worked out once
/// per connection rather than by each request that needs it.
#[derive(Clone, Debug)]
pub struct PeerChain {
    certificates: Arc<[CertificateDer<'static>]>,
    leaf: ClientCertificate,
}

impl PeerChain {
    /// `None` for an empty chain (no certificate presented).
    pub fn new(certificates: Arc<[CertificateDer<'static>]>) -> Option<Self> {
        let leaf = ClientCertificate::new(certificates.first()?.as_ref());
        Some(Self { certificates, leaf })
    }

    /// The client's own certificate.
    pub fn leaf(&self) -> &ClientCertificate {
        &self.leaf
    }

    /// The whole chain, the client's certificate first.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }
}

/// One attribute of a distinguished name: its type (`CN`, `O`, or a dotted OID) in
/// upper case, and its value.
type Attribute = (String, String);

/// The RFC 4514 short names of the attribute types certificates use.
const SHORT_NAMES: [(&str, &str); 11] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "EMAILADDRESS"),
];

/// The subject of a certificate, in the order of its encoding (most significant
/// first); `Err` when the certificate cannot be parsed.
pub(crate) fn subject(der: &[u8]) -> Result<Vec<Attribute>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the client certificate cannot be parsed ({e})"))?;
    let mut out = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let name = SHORT_NAMES
                .iter()
                .find(|(o, _)| *o == oid)
                .map_or(oid.clone(), |(_, n)| (*n).to_owned());
            let value = attr
                .as_str()
                .map_err(|_| format!("the certificate's subject attribute {name} is not text"))?;
            out.push((name, value.to_owned()));
        }
    }
    Ok(out)
}

/// A subject as an RFC 4514 string (least significant first: `CN=..,O=..`), for
/// messages.
pub(crate) fn dn_string(subject: &[Attribute]) -> String {
    subject
        .iter()
        .rev()
        .map(|(t, v)| format!("{t}={}", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == v.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Parses an RFC 4514 string (`CN=client,O=Example`) into attributes, least
/// significant first as written; multi-valued RDNs (`+`) count as separate
/// attributes. `Err` says what is malformed.
pub(crate) fn parse_dn(text: &str) -> Result<Vec<Attribute>, String> {
    let mut out = Vec::new();
    let mut part = String::new();
    let mut parts = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => {
                    part.push('\\');
                    part.push(n);
                }
                None => return Err("it ends with a lone '\\'".into()),
            },
            ',' | ';' | '+' => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    for p in parts {
        let (t, v) = p
            .split_once('=')
            .ok_or_else(|| format!("'{}' is not TYPE=value", p.trim()))?;
        let t = t.trim().to_ascii_uppercase();
        let t = match t.as_str() {
            "E" | "EMAIL" => "EMAILADDRESS".to_owned(),
            _ => t,
        };
        if t.is_empty() {
            return Err(format!("'{}' has no attribute type", p.trim()));
        }
        let mut value = String::new();
        let mut vs = v.trim().chars();
        while let Some(c) = vs.next() {
            if c == '\\' {
                if let Some(n) = vs.next() {
                    value.push(n);
                }
            } else {
                value.push(c);
            }
        }
        out.push((t, value));
    }
    Ok(out)
}

fn normalized(a: &Attribute) -> (String, String) {
    (
        a.0.clone(),
        a.1.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    )
}

/// Whether a certificate's subject (as [`subject`] reads it) is the registered DN
/// (RFC 8705 §2.1.2): the same attributes with the same values, compared as
/// directory strings are (case and runs of spaces ignored), written in either order.
pub(crate) fn dn_matches(subject: &[Attribute], registered: &[Attribute]) -> bool {
    let s: Vec<_> = subject.iter().map(normalized).collect();
    let r: Vec<_> = registered.iter().map(normalized).collect();
    s.len() == r.len() && (s.iter().eq(r.iter()) || s.iter().rev().eq(r.iter()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn attrs(v: &[(&str, &str)]) -> Vec<Attribute> {
        v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    }

    #[test]
    fn dns_match_in_either_order_ignoring_case_and_spaces() {
        let cert = attrs(&[
            ("C", "DE"),
            ("O", "Example  Corp"),
            ("CN", "client.example"),
        ]);
        for ok in [
            "CN=client.example,O=Example Corp,C=DE",
            "cn=Client.Example, o=example corp, c=de",
            "C=DE;O=Example Corp;CN=client.example",
        ] {
            assert!(dn_matches(&cert, &parse_dn(ok).unwrap()), "{ok}");
        }
        for no in [
            "CN=client.example,O=Example Corp",
            "CN=other,O=Example Corp,C=DE",
            "CN=client.example,O=Example Corp,C=DE,OU=x",
        ] {
            assert!(!dn_matches(&cert, &parse_dn(no).unwrap()), "{no}");
        }
    }

    #[test]
    fn escapes_survive_the_round_trip() {
        let cert = attrs(&[("O", "A, B + C"), ("CN", " lead")]);
        let text = dn_string(&cert);
        assert_eq!(text, r"CN=\ lead,O=A\, B \+ C");
        assert_eq!(
            parse_dn(&text).unwrap(),
            attrs(&[("CN", " lead"), ("O", "A, B + C")])
        );
        assert!(parse_dn("CN").is_err());
        assert!(parse_dn("=x").is_err());
        assert!(parse_dn("CN=x\\").is_err());
    }
}
