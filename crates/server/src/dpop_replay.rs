//! The `DPoP` request header (RFC 9449 §4.1); the replay set of proofs is
//! [`auth_broker_jwt::replay`], shared with the guard.

/// The `DPoP` request header, made once rather than parsed from a string on every
/// request.
pub(crate) const DPOP_HEADER: axum::http::HeaderName = axum::http::HeaderName::from_static("dpop");
