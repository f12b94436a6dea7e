//! TLS termination: the certificate and key from PEM files, and their reload.
//!
//! The broker hands out bearer tokens and takes client secrets, both of which must
//! only travel encrypted (RFC 6749 §2.3.1 and §3.2 require TLS on the token endpoint;
//! RFC 6750 §5.3). The server terminates TLS itself with rustls on aws-lc-rs, the
//! workspace's one crypto backend.
//!
//! The certificate lives behind a small [`ResolvesServerCert`] that every new
//! handshake asks for the current [`CertifiedKey`]. [`TlsHandle::reload`] swaps it:
//! handshakes after the swap present the new certificate, while connections already
//! established keep their session (they never ask again), so a certificate renewal
//! drops nothing. A reload that fails leaves the old certificate in place.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::UnixTime;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

/// Where the certificate chain and its private key are read from (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain: the server's certificate first, then intermediates.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub key: PathBuf,
}

/// Why the certificate or key cannot be used. Each names the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate file {path}: {reason}")]
    CertRead { path: PathBuf, reason: pem::Error },
    #[error(
        "the TLS certificate file {path} holds no certificate: expected PEM blocks '-----BEGIN CERTIFICATE-----'"
    )]
    NoCert { path: PathBuf },
    #[error("cannot read the TLS key file {path}: {reason}")]
    KeyRead { path: PathBuf, reason: pem::Error },
    #[error(
        "the TLS key file {path} holds no private key: expected a PEM block 'BEGIN PRIVATE KEY' (PKCS#8), 'BEGIN RSA PRIVATE KEY' or 'BEGIN EC PRIVATE KEY'"
    )]
    NoKey { path: PathBuf },
    #[error(
        "the TLS key {key} does not belong to the certificate {cert} (or is of an unsupported type): {reason}"
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: rustls::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Setup(rustls::Error),
    #[error("cannot read the client CA file {path}: {reason}")]
    CaRead { path: PathBuf, reason: pem::Error },
    #[error(
        "the client CA file {path} holds no usable CA certificate (PEM blocks '-----BEGIN CERTIFICATE-----'): {reason}"
    )]
    NoCa { path: PathBuf, reason: String },
}

/// The CA whose certificates authenticate `tls_client_auth` clients (RFC 8705 §2.1),
/// from `serve --tls-client-ca`.
#[derive(Clone)]
pub struct ClientCa {
    path: PathBuf,
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCa")
            .field("path", &self.path)
            .finish()
    }
}

impl ClientCa {
    /// Reads the CA certificates (PEM) of `path`.
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        let err = |reason| TlsError::CaRead {
            path: path.to_owned(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(err)? {
            roots.add(cert.map_err(err)?).map_err(|e| TlsError::NoCa {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::NoCa {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            path: path.to_owned(),
            verifier,
        })
    }

    /// Whether `chain` (the client's certificate first, then intermediates) leads to
    /// this CA and is valid now (RFC 5280 path validation, client-auth usage); `Err`
    /// says why not.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// What the TLS layer asks of a client certificate: only that the client holds its
/// key (the handshake signature). Whose certificate it is, and whether a CA issued
/// it, is the token endpoint's question, per client: `tls_client_auth` wants the
/// CA's, `self_signed_tls_client_auth` the one the client registered (RFC 8705 §2).
/// Optional, so clients without certificates connect as before; and no CA names are
/// sent as hints, so clients offer self-signed certificates too (§2.2).
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The provider every TLS setting of the server is built on.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads and checks the certificate chain and key.
pub fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason| TlsError::CertRead {
        path: files.cert.clone(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(cert_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_err)?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: files.cert.clone(),
        });
    }
    let key = match PrivateKeyDer::from_pem_file(&files.key) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: files.key.clone(),
            });
        }
        Err(reason) => {
            return Err(TlsError::KeyRead {
                path: files.key.clone(),
                reason,
            });
        }
    };
    // `from_der` parses the key and compares its public half with the certificate's
    // (rustls `CertifiedKey::keys_match`), so a key from another pair fails here, at
    // start or reload, and not in every handshake afterwards.
    CertifiedKey::from_der(chain, key, provider).map_err(|reason| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
    })
}

/// The current certificate, swapped by [`TlsHandle::reload`].
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// A handle on the running server's certificate: reload it from its files.
/// Cheap to clone; every clone reloads the same server.
#[derive(Clone)]
pub struct TlsHandle {
    files: Arc<TlsFiles>,
    resolver: Arc<Resolver>,
    provider: Arc<CryptoProvider>,
}

/// What a successful (re)load installed, for the log.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// SHA-256 of the server's certificate (DER), as `openssl x509 -fingerprint -sha256` shows it.
    pub fingerprint: String,
    /// Certificates in the chain, the server's own included.
    pub chain_len: usize,
}

impl TlsHandle {
    /// Reads the files again; from the next handshake on, the new certificate is
    /// presented. Established connections are not touched. On error the previous
    /// certificate stays.
    pub fn reload(&self) -> Result<Loaded, TlsError> {
        let key = load(&self.files, &self.provider)?;
        let loaded = describe(&key);
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(loaded)
    }

    /// The certificate now presented.
    pub fn current(&self) -> Loaded {
        describe(
            &self
                .resolver
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The files the certificate is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

impl std::fmt::Debug for TlsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsHandle")
            .field("files", &self.files)
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

fn describe(key: &CertifiedKey) -> Loaded {
    let fingerprint = key
        .cert
        .first()
        .map(|c| {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, c.as_ref());
            d.as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    Loaded {
        fingerprint,
        chain_len: key.cert.len(),
    }
}

/// The server side of TLS: an acceptor for the connection loop and the reload handle.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub handle: TlsHandle,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the files and builds the server configuration: TLS 1.2 and 1.3
    /// (rustls' safe defaults), ALPN `http/1.1` only since that is the one protocol
    /// the connection loop speaks (RFC 7301 §3.2: a client offering only `h2` is
    /// refused instead of being answered in the wrong protocol). With `client_certs`
    /// (a client CA is configured) clients may present a certificate (`AnyClientCert`: any certificate whose key the client holds).
    pub fn new(files: &TlsFiles, client_certs: bool) -> Result<Self, TlsError> {
        let provider = provider();
        let key = load(files, &provider)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(Arc::new(key)),
        });
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?;
        let builder = if client_certs {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert {
                provider: provider.clone(),
            }))
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handle: TlsHandle {
                files: Arc::new(files.clone()),
                resolver,
                provider,
            },
        })
    }
}
