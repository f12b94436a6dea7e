//! The resource side of auth-broker: validate `Authorization: Bearer` tokens in an
//! axum/tower API.
//!
//! A [`Guard`] is built from the issuer URL. It reads the RFC 8414 metadata, then
//! either verifies JWT access tokens (RFC 9068) against the issuer's JWKS, cached and
//! refetched on an unknown `kid` at most once per interval, or asks the RFC 7662
//! introspection endpoint (opaque tokens). Validated tokens are cached until they
//! expire, so a repeat costs a hash lookup. [`GuardLayer`] guards routes with
//! required scopes; [`Authenticated`] gives handlers the claims; refusals answer
//! RFC 6750 (`401 invalid_token`, `403 insufficient_scope`) with the description
//! the broker's `token-info` gives: both judge a token with the one
//! [`Policy`] of `auth_broker_jwt`, so they agree on every [`Fault`].
//!
//! ```no_run
//! use auth_broker_guard::{Authenticated, Guard, GuardLayer};
//! use axum::{Router, routing::get};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = Guard::builder("https://broker.example.com")
//!     .audience("https://invoices.example.com")
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/invoices", get(|who: Authenticated| async move {
//!         format!("invoices for {}", who.client_id)
//!     }))
//!     .route_layer(GuardLayer::new(guard).require_scope("invoices:read"))
//!     .route("/public", get(|| async { "hello" }));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod cache;
mod claims;
mod clock;
mod error;
mod guard;
mod introspect;
mod keys;
mod layer;
mod local;

pub use auth_broker_jwt::dpop::{PresentationFault, ProofFault};
pub use auth_broker_jwt::mtls::{CLIENT_CERT_HEADER, CertificateFault, ClientCertificate};
pub use auth_broker_jwt::{Claim, ClaimFault, Fault, HeaderFault, KeyFault, Policy, TimeFault};
pub use auth_broker_proto::{AccessTokenClaims, Audience};
pub use claims::Claims;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BuildError, GuardError};
pub use guard::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_INTROSPECTION_NEGATIVE_TTL, DEFAULT_INTROSPECTION_POSITIVE_TTL,
    DEFAULT_JWKS_MAX_AGE, DEFAULT_JWKS_REFETCH_INTERVAL, DEFAULT_LEEWAY, Guard, GuardBuilder,
    GuardStats, Mode, RequestView, require_scopes, validate_with_keys,
};
pub use keys::KeySet;
pub use layer::{Authenticated, GuardLayer, GuardService, Rejection};
pub use local::{Judge, Judgement};

pub use auth_broker_proto::ClientSecret;
