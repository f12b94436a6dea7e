//! Telling a refused server certificate, or a refused client certificate, apart from
//! other transport failures, so callers can say what to fix instead of printing a
//! rustls error chain; and the client certificate of mutual TLS (RFC 8705).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::error::Error;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Why the server's certificate was refused (RFC 5280 §6 path validation, RFC 6125
/// name check), in the terms a user acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// Not signed by a trusted CA: a private CA or a self-signed certificate.
    Untrusted,
    /// Expired, or not valid yet.
    Expired,
    /// Issued for another host name or address.
    WrongName,
    /// Anything else rustls refused, as rustls says it.
    Other(String),
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Untrusted => f.write_str(
                "certificate not trusted: it is not signed by a CA in the system roots (a private CA or a self-signed certificate?)",
            ),
            Self::Expired => f.write_str("certificate expired or not yet valid"),
            Self::WrongName => f.write_str("certificate issued for another host name"),
            Self::Other(s) => write!(f, "certificate refused: {s}"),
        }
    }
}

/// The certificate problem behind `err`, if a refused server certificate is what
/// made it fail. Walks the `source()` chain, into `io::Error`s by `get_ref` (hyper
/// and tokio-rustls wrap the rustls error in one or two of them, whose `source()`
/// skips it), into a [`crate::TokenError::Transport`]'s cause and into the error a
/// `reqwest-middleware` middleware returned.
pub fn certificate_problem(err: &(dyn Error + 'static)) -> Option<CertificateProblem> {
    match rustls_error(err)? {
        rustls::Error::InvalidCertificate(c) => Some(classify(c)),
        _ => None,
    }
}

/// The rustls error behind `err`, if one is: walks the `source()` chain, into
/// `io::Error`s by `get_ref` (hyper and tokio-rustls wrap the rustls error in one or two
/// of them, whose `source()` skips it), into a [`crate::TokenError::Transport`]'s cause
/// and into the error a `reqwest-middleware` middleware returned.
fn rustls_error<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = if let Some(crate::TokenError::Transport { cause, .. }) =
            e.downcast_ref::<crate::TokenError>()
        {
            // Its cause is in its message, not its `source()`.
            Some(cause.as_ref() as &(dyn Error + 'static))
        } else if let Some(reqwest_middleware::Error::Middleware(m)) =
            e.downcast_ref::<reqwest_middleware::Error>()
        {
            // The middleware's own error (a `TokenError`), whose `source()` skips it.
            Some(m.as_ref() as &(dyn Error + 'static))
        } else {
            match e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner as &(dyn Error + 'static)),
                None => e.source(),
            }
        };
    }
    None
}

/// Why the server ended the TLS handshake over the client's certificate (RFC 8446
/// §4.4.2.4, §6.2), in the terms a user acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientCertificateProblem {
    /// The server requires a client certificate and got none (TLS 1.3
    /// `certificate_required`).
    Required,
    /// The server refused the certificate presented (`bad_certificate`, `unknown_ca`,
    /// `certificate_expired`, ...: the alert as rustls names it).
    Refused(String),
    /// `handshake_failure`: how TLS 1.2 servers say either of the above (or that no
    /// cipher suite was shared).
    HandshakeFailure,
}

impl std::fmt::Display for ClientCertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Required => f.write_str(
                "the server requires a client certificate (mutual TLS) and none was presented",
            ),
            Self::Refused(alert) => write!(
                f,
                "the server refused the client certificate presented (TLS alert {alert})"
            ),
            Self::HandshakeFailure => f.write_str(
                "the server ended the TLS handshake (handshake_failure): with TLS 1.2 this is how a server that wants a client certificate, or refuses the one presented, says so",
            ),
        }
    }
}

/// The client-certificate problem behind `err`, if a TLS alert about it is what made it
/// fail (see [`certificate_problem`] for the server's certificate).
pub fn client_certificate_problem(err: &(dyn Error + 'static)) -> Option<ClientCertificateProblem> {
    use rustls::AlertDescription as A;
    match rustls_error(err)? {
        rustls::Error::AlertReceived(alert) => match alert {
            A::CertificateRequired => Some(ClientCertificateProblem::Required),
            A::HandshakeFailure => Some(ClientCertificateProblem::HandshakeFailure),
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied => Some(ClientCertificateProblem::Refused(format!("{alert:?}"))),
            _ => None,
        },
        _ => None,
    }
}

fn classify(c: &rustls::CertificateError) -> CertificateProblem {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer | C::UnknownRevocationStatus => CertificateProblem::Untrusted,
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            CertificateProblem::Expired
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => CertificateProblem::WrongName,
        other => CertificateProblem::Other(format!("{other:?}")),
    }
}

/// A client certificate and its private key, presented at the TLS layer for mutual TLS
/// (RFC 8705 §2): client authentication by `tls_client_auth` or
/// `self_signed_tls_client_auth`, and certificate-bound tokens (§3) that the API then
/// wants presented with the same certificate.
#[derive(Clone)]
pub struct ClientIdentity {
    identity: reqwest::Identity,
    x5t_s256: String,
}

/// The certificate's thumbprint only; never the key.
impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("x5t#S256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

/// Why a client certificate or its key cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A file could not be read.
    #[error("cannot read the {what} {}", path.display())]
    Read {
        /// "client certificate" or "client certificate's key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error(
        "the client certificate file {} holds no certificate: expected PEM blocks '-----BEGIN CERTIFICATE-----' (the client's first, then intermediates)",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error(
        "the client certificate's key file {} holds no private key: expected a PEM block 'PRIVATE KEY' (PKCS#8), 'EC PRIVATE KEY' or 'RSA PRIVATE KEY'",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is not the certificate's, or cannot sign.
    #[error("the key {} cannot be used with the certificate {}", key.display(), cert.display())]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason (`KeyMismatch`: not the certificate's key).
        #[source]
        source: rustls::Error,
    },
    /// reqwest refused the pair.
    #[error("the HTTP client cannot use the client certificate")]
    Http(#[source] reqwest::Error),
}

impl ClientIdentity {
    /// Reads the certificate chain (PEM, the client's certificate first) and its private
    /// key (PEM: PKCS#8, SEC1 or PKCS#1), and checks that they belong together.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, IdentityError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path)
                .map(Zeroizing::new)
                .map_err(|source| IdentityError::Read {
                    what,
                    path: path.to_owned(),
                    source,
                })
        };
        let cert_pem = read("client certificate", cert)?;
        let key_pem = read("client certificate's key", key)?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        let Some(leaf) = certs.first() else {
            return Err(IdentityError::NoCertificate {
                path: cert.to_owned(),
            });
        };
        let x5t_s256 = crate::jws::sha256_b64(leaf.as_ref());
        let private =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| IdentityError::NoKey {
                path: key.to_owned(),
            })?;
        rustls::sign::CertifiedKey::from_der(
            certs,
            private,
            &rustls::crypto::aws_lc_rs::default_provider(),
        )
        .map_err(|source| IdentityError::Unusable {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
        let mut both = Zeroizing::new(Vec::with_capacity(cert_pem.len() + key_pem.len() + 1));
        both.extend_from_slice(&key_pem);
        both.push(b'\n');
        both.extend_from_slice(&cert_pem);
        let identity = reqwest::Identity::from_pem(&both).map_err(IdentityError::Http)?;
        Ok(Self { identity, x5t_s256 })
    }

    /// `builder` presenting this certificate to servers that ask for one.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder.identity(self.identity.clone())
    }

    /// The certificate's SHA-256 thumbprint, base64url: the `x5t#S256` a
    /// certificate-bound token's `cnf` names (RFC 8705 §3.1).
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }
}
