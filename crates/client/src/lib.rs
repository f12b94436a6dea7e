//! The client side of auth-broker: get, cache and refresh OAuth 2.0
//! client-credentials tokens (RFC 6749 §4.4) from any token endpoint, and sign requests
//! with them (`Authorization: Bearer`, RFC 6750 §2.1).
//!
//! The client authenticates with a secret (`client_secret_basic`/`_post`), a private
//! key ([`PrivateKeyJwt`], RFC 7523) or a TLS client certificate ([`ClientIdentity`],
//! RFC 8705); with any of them, tokens can be bound to a DPoP key ([`DpopKey`], RFC
//! 9449), and requests are then signed with `Authorization: DPoP` and a fresh proof.
//!
//! ```no_run
//! use auth_broker_client::{BearerMiddleware, TokenConfig, TokenManager};
//! use auth_broker_proto::ClientSecret;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = TokenConfig::new(
//!     "https://auth.example.com/auth-broker/request-token",
//!     "billing",
//!     ClientSecret::new(std::env::var("AUTH_BROKER_CLIENT_SECRET")?),
//! )
//! .scope("invoices:read");
//! let manager = TokenManager::new(config)?;
//! let http = reqwest_middleware::ClientBuilder::new(auth_broker_client::default_http_client()?)
//!     .with(BearerMiddleware::new(manager))
//!     .build();
//! let invoices = http.get("https://api.example.com/invoices").send().await?;
//! # Ok(()) }
//! ```
//!
//! See [`TokenManager`] for the caching and refresh behaviour and [`RefreshPolicy`]
//! for the timing, with worked examples.
#![forbid(unsafe_code)]

pub mod assertion;
pub mod clock;
pub mod config;
pub mod dpop;
pub mod error;
pub mod fetch;
pub mod jws;
pub mod layer;
pub mod manager;
pub mod middleware;
mod sign;
pub mod tls;

pub use assertion::PrivateKeyJwt;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    CacheKey, ClientAuth, Credential, DEFAULT_LIFETIME, MAX_LIFETIME, RefreshPolicy, RetryPolicy,
    TokenConfig,
};
pub use dpop::DpopKey;
pub use error::TokenError;
pub use fetch::TokenScheme;
pub use jws::{JwsAlg, KeyError, SigningKey};
pub use layer::{BearerLayer, BearerService, ReplayBody};
pub use manager::{Token, TokenManager, TokenManagers};
pub use middleware::{BearerMiddleware, Unauthorized};
pub use tls::{
    CertificateProblem, ClientCertificateProblem, ClientIdentity, IdentityError,
    certificate_problem, client_certificate_problem,
};

/// What a second `401` (after a refresh and replay) means and what to do.
pub const UNAUTHORIZED_HINT: &str = "the API refused a freshly fetched token as well; run `auth-broker doctor --api URL` to see whether the token (audience, scope, issuer) or the Authorization header is at fault";

/// Makes aws-lc-rs the process's rustls crypto provider, unless one is set already.
/// [`default_http_client`] calls it; call it yourself before building your own
/// `reqwest::Client` for `https://` URLs.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// Builds `builder` after [`install_crypto_provider`].
pub fn install_crypto_provider_then(
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, TokenError> {
    install_crypto_provider();
    builder
        .build()
        .map_err(|e| TokenError::Config(format!("cannot build the HTTP client: {e}")))
}

/// `builder` set up for token requests: no redirects followed (see
/// [`TokenError::Redirect`]), then built like [`install_crypto_provider_then`]. Give
/// [`TokenManager::with_parts`] a client built here.
pub fn token_http_client(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, TokenError> {
    install_crypto_provider_then(builder.redirect(reqwest::redirect::Policy::none()))
}

/// A `reqwest::Client` with rustls (aws-lc-rs) trusting the system's root
/// certificates (`/etc/ssl/certs` and the like, `SSL_CERT_FILE`/`SSL_CERT_DIR`).
///
/// System roots rather than a bundled Mozilla list, so a company CA that the machine
/// trusts is trusted here too and CA updates come with the OS. They come through
/// reqwest's `rustls` feature (rustls-platform-verifier: on Linux the system's roots,
/// elsewhere the OS verifier) rather than a rustls `ClientConfig` built here and
/// handed over with `use_preconfigured_tls`, so reqwest keeps configuring ALPN and
/// the rest itself. More CAs (`--ca-file`) go in with
/// `reqwest::ClientBuilder::tls_certs_merge`.
pub fn default_http_client() -> Result<reqwest::Client, TokenError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .build()
        .map_err(|e| TokenError::Config(format!("cannot build the HTTP client: {e}")))
}
