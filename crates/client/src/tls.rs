//! Telling a refused server certificate apart from other transport failures, so
//! callers can say what to fix instead of printing a rustls error chain.

use std::error::Error;

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
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(rustls::Error::InvalidCertificate(c)) = e.downcast_ref::<rustls::Error>() {
            return Some(classify(c));
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
