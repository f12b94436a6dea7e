//! Wire types shared by the auth-broker server, the guard and the client.
//!
//! Everything here is what crosses the network: the RFC 6749 §5.1 token response,
//! the §5.2 error response, the RFC 8414 metadata document, JWKS, the RFC 9068
//! access-token claims, the RFC 7662 introspection response, and the two
//! parsers of outside input that both sides need (HTTP Basic client
//! authentication per RFC 6749 §2.3.1 and strict `application/x-www-form-urlencoded`).
//! Keeping them in one crate means a client can never drift from the server it talks to.
//! [`text`] is how any outside value reaches a message, a log line or a header.
#![forbid(unsafe_code)]

pub mod admin;
pub mod basic;
pub mod bearer;
pub mod claims;
pub mod error;
pub mod form;
pub mod introspection;
pub mod metadata;
pub mod scope;
pub mod secret;
pub mod text;
pub mod token;

pub use basic::{BasicCredentials, BasicError};
pub use bearer::BearerError;
pub use claims::{AccessTokenClaims, Audience, Confirmation};
pub use error::{ErrorCode, ErrorResponse};
pub use form::{Form, FormError};
pub use introspection::IntrospectionResponse;
pub use metadata::{AuthorizationServerMetadata, Jwk, Jwks};
pub use secret::{AccessToken, ClientSecret};
pub use text::{Untrusted, escaped};
pub use token::TokenResponse;

/// The media type of a token request body (RFC 6749 §4.4.2, Appendix B).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// The one grant this project issues (RFC 6749 §4.4).
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
