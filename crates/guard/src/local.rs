//! A guard inside the authorization server itself.
//!
//! The broker guards its own admin API with this crate, as any API guards its
//! routes: the same `Authorization` parsing (RFC 6750 §2.1), the same judgement
//! ([`Policy`]), the same scope check and the same challenges (RFC 6750 §3). What
//! differs is where the verdict comes from: not a JWKS fetched over the network or
//! an introspection request, but the issuer's own [`Judge`], which has its keys in
//! memory and knows what no JWT can say (a revocation, a client disabled since).

use crate::claims::Claims;
use crate::error::GuardError;
use auth_broker_jwt::Policy;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// What a [`Judge`] answers: a boxed future, so the trait stays object safe.
pub type Judgement<'a> = Pin<Box<dyn Future<Output = Result<Claims, GuardError>> + Send + 'a>>;

/// The issuer's own verdict on a token, for a guard built with
/// [`GuardBuilder::build_local`](crate::GuardBuilder::build_local).
///
/// It must judge with `policy` (the guard's issuer, audience and leeway), and may
/// refuse more: [`GuardError::Refused`] with the issuer's reason, or
/// [`GuardError::Unavailable`] when it cannot decide now.
pub trait Judge: Send + Sync + fmt::Debug + 'static {
    fn judge<'a>(&'a self, token: &'a str, policy: &'a Policy) -> Judgement<'a>;
}
