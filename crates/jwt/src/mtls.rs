//! Certificate-bound access tokens (RFC 8705 §3): a token issued over a mutual TLS
//! connection carries the SHA-256 thumbprint of the client's certificate as
//! `cnf.x5t#S256`, and is good only over a connection that presents that certificate.
//!
//! The certificate comes from the TLS connection the server terminates, or, behind a
//! TLS-terminating proxy, from the RFC 9440 `Client-Cert` header the proxy sets
//! (trusted only when the deployment says so: anyone can send the header).

use auth_broker_proto::Untrusted;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::fmt;
use std::sync::Arc;

/// The header a TLS-terminating proxy forwards the client's certificate in (RFC 9440
/// §2.2): a structured-field byte sequence, `:` base64 of the DER `:`.
pub const CLIENT_CERT_HEADER: &str = "client-cert";

/// The largest certificate taken from a header (a chain of ordinary certificates is a
/// few KiB; this bounds the decode).
const MAX_CERT_BYTES: usize = 16 * 1024;

/// The end-entity certificate a client presented (DER), with its `x5t#S256`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: Arc<[u8]>,
    thumbprint: String,
}

impl ClientCertificate {
    pub fn new(der: impl Into<Arc<[u8]>>) -> Self {
        let der = der.into();
        let thumbprint = x5t_s256(&der);
        Self { der, thumbprint }
    }

    /// The certificate from an RFC 9440 `Client-Cert` header value (`:BASE64:`).
    pub fn from_header(value: &[u8]) -> Result<Self, String> {
        let inner = value
            .strip_prefix(b":")
            .and_then(|v| v.strip_suffix(b":"))
            .ok_or("the Client-Cert header is not an RFC 9440 byte sequence (':' base64 ':')")?;
        if inner.len() > MAX_CERT_BYTES * 4 / 3 + 4 {
            return Err("the Client-Cert header is too long".into());
        }
        let der = STANDARD
            .decode(inner)
            .map_err(|_| "the Client-Cert header is not base64 between the colons")?;
        if der.is_empty() {
            return Err("the Client-Cert header is empty".into());
        }
        Ok(Self::new(der))
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// `x5t#S256`: base64url of the SHA-256 of the DER (RFC 8705 §3.1).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// base64url (no padding) of the SHA-256 of a certificate's DER (RFC 8705 §3.1).
pub fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

/// Why a certificate-bound token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateFault {
    #[error(
        "this token is bound to a TLS client certificate (cnf.x5t#S256, RFC 8705 §3): send it over a mutual TLS connection that presents that certificate; this request came without one"
    )]
    NoCertificate,
    #[error(
        "this token is bound to another TLS client certificate (RFC 8705 §3): it wants the certificate whose SHA-256 thumbprint is {token}, and this connection presented {presented}; use the certificate the token was issued for, or fetch a new token with this one"
    )]
    Mismatch { token: Untrusted, presented: String },
}

/// RFC 8705 §3: a token bound to `token_x5t` (its `cnf.x5t#S256`) goes only over a
/// connection that presents that certificate.
pub fn check_binding(
    token_x5t: &str,
    presented: Option<&ClientCertificate>,
) -> Result<(), CertificateFault> {
    let cert = presented.ok_or(CertificateFault::NoCertificate)?;
    // Both are public values (a hash of a public certificate): no constant time needed.
    if cert.thumbprint() == token_x5t {
        Ok(())
    } else {
        Err(CertificateFault::Mismatch {
            token: Untrusted::new(token_x5t),
            presented: cert.thumbprint().to_owned(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_is_base64url_sha256_of_the_der() {
        // RFC 4648 test vector: SHA-256("abc").
        assert_eq!(
            x5t_s256(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn the_header_is_an_rfc_9440_byte_sequence() {
        let c = ClientCertificate::from_header(b":YWJj:").unwrap();
        assert_eq!(c.der(), b"abc");
        assert_eq!(c.thumbprint(), x5t_s256(b"abc"));
        for bad in [&b"YWJj"[..], b":YWJj", b"::", b":!!:", b""] {
            assert!(ClientCertificate::from_header(bad).is_err(), "{bad:?}");
        }
        let long = format!(":{}:", "A".repeat(30_000));
        assert!(ClientCertificate::from_header(long.as_bytes()).is_err());
    }

    #[test]
    fn the_binding_names_both_thumbprints() {
        let c = ClientCertificate::new(b"abc".to_vec());
        assert!(check_binding(c.thumbprint(), Some(&c)).is_ok());
        assert_eq!(
            check_binding("x", None),
            Err(CertificateFault::NoCertificate)
        );
        let e = check_binding("other", Some(&c)).unwrap_err().to_string();
        assert!(e.contains("other") && e.contains(c.thumbprint()), "{e}");
    }
}
