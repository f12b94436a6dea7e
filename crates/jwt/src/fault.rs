//! The verdict on a token that is refused: one typed fault, with its message
//! written once, here, for every caller (the broker's `token-info` and
//! introspection, the guard). The messages say what is wrong and what to do next;
//! they never repeat the token, and every value taken from it is escaped and cut
//! short ([`Untrusted`]) so a message is safe in a log line and bounded in an
//! answer. Callers turn the message into a header value with
//! `auth_broker_proto::text::for_header`.
//!
//! The shape follows rustls's structured errors: a sub-enum per stage of the
//! judgement (format, header, key, signature, claims, time, audience), so a caller
//! or a test matches on the stage and the fault, never on the message.

use crate::{JwtFormatError, SigningAlg};
use auth_broker_proto::Untrusted;
use std::fmt;

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// Not a compact JWS (RFC 7515 §7.1).
    #[error(transparent)]
    Format(#[from] JwtFormatError),
    /// The protected header is not an access token's (RFC 9068 §2.1, RFC 7515 §4.1).
    #[error(transparent)]
    Header(#[from] HeaderFault),
    /// The key the header names cannot check it.
    #[error(transparent)]
    Key(#[from] KeyFault),
    /// The signature does not verify with the key the header names.
    #[error(
        "the token's signature does not verify: it was altered or truncated after it was issued; fetch a new token and send it unchanged"
    )]
    Signature,
    /// A claim is missing, of the wrong type, or names another issuer.
    #[error(transparent)]
    Claim(#[from] ClaimFault),
    /// Outside its validity in time, beyond the allowed clock skew.
    #[error(transparent)]
    Time(#[from] TimeFault),
    /// For another audience (RFC 7519 §4.1.3).
    #[error(
        "the token is for the audience '{found}', not '{expected}'; ask the broker for a token for '{expected}' (the client's audience setting)"
    )]
    Audience {
        /// The token's `aud`, its members separated by `, `.
        found: Untrusted,
        /// The audience the verifier accepts (the first, when it accepts several).
        expected: Untrusted,
    },
}

/// What is wrong with the protected header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderFault {
    /// `typ` is missing or not an access token's (RFC 9068 §2.1).
    #[error(
        "the token's header has typ {}, not \"{expected}\" (RFC 9068 §2.1): it is not an access token from this issuer",
        Quoted(.found.as_ref())
    )]
    WrongType {
        found: Option<Untrusted>,
        expected: String,
    },
    /// `crit` names extensions (RFC 7515 §4.1.11), and the verifier understands none,
    /// so it must refuse the token.
    #[error(
        "the token's header marks {names} as critical (crit, RFC 7515 §4.1.11): a verifier must refuse a token whose critical extensions it does not understand, and none are understood here; this issuer's tokens have no crit"
    )]
    CriticalExtension {
        /// The names, quoted and separated by `, `.
        names: Untrusted,
    },
    /// `crit` is not a non-empty array of header parameter names (RFC 7515 §4.1.11).
    #[error(
        "the token's header has a crit that is not a non-empty array of header parameter names (RFC 7515 §4.1.11): the token is malformed; this issuer's tokens have no crit"
    )]
    MalformedCrit,
    /// `alg` is not one the verifier accepts: `none`, an HMAC, anything it was not
    /// told to accept (RFC 8725 §3.1).
    #[error(
        "the token's header says alg {alg}, which is not accepted here (only {accepted}, RFC 8725 §3.1): a token from another issuer, or one altered to pass without a valid signature"
    )]
    AlgorithmNotAccepted { alg: Untrusted, accepted: String },
    /// No `kid`: the broker's tokens always name their key.
    #[error("the token's header has no kid; this issuer's tokens always name their key")]
    NoKid,
}

/// Why the key the header names cannot check the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFault {
    /// No key with that `kid` among the issuer's keys.
    #[error(
        "the token is signed by key '{kid}', which the issuer's JWKS does not have: a token from another issuer or environment, or a key removed long after rotation; fetch a new token"
    )]
    Unknown { kid: Untrusted },
    /// The header's `alg` is not the key's (RFC 8725 §3.1: never let the token choose
    /// the algorithm).
    #[error(
        "the token's header says alg {header} but key '{kid}' is {key}: the header was altered"
    )]
    AlgorithmMismatch {
        header: Untrusted,
        kid: Untrusted,
        key: SigningAlg,
    },
}

/// A registered claim (RFC 7519 §4.1, RFC 9068 §2.2, RFC 8693 §4.2-4.3), by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Claim {
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Jti,
    ClientId,
    Scope,
    /// The confirmation of a key-bound token (RFC 7800 §3.1).
    Cnf,
}

impl Claim {
    /// The claim's name in a token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iss => "iss",
            Self::Sub => "sub",
            Self::Aud => "aud",
            Self::Exp => "exp",
            Self::Nbf => "nbf",
            Self::Iat => "iat",
            Self::Jti => "jti",
            Self::ClientId => "client_id",
            Self::Scope => "scope",
            Self::Cnf => "cnf",
        }
    }

    /// What its value must be, in words for a message.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Self::Exp | Self::Nbf | Self::Iat => {
                "a NumericDate (a number of seconds since the epoch, RFC 7519 §2)"
            }
            Self::Aud => "a string or an array of strings (RFC 7519 §4.1.3)",
            Self::Cnf => {
                "an object whose jkt and x5t#S256 are strings (RFC 7800 §3.1, RFC 9449 §6.1, RFC 8705 §3.1)"
            }
            _ => "a string",
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimFault {
    /// A claim the verifier requires is absent (or `null`, or an empty `aud` array).
    #[error("the token has no '{0}' claim, which an access token must carry (RFC 9068 §2.2)")]
    Missing(Claim),
    /// A claim has a value of the wrong JSON type.
    #[error(
        "the token's '{claim}' claim is not {}: the token was not made by this issuer",
        .claim.expected()
    )]
    WrongType { claim: Claim },
    /// `iss` names another issuer (RFC 9068 §4).
    #[error("the token was issued by '{found}', not by the expected issuer ('{expected}')")]
    WrongIssuer { found: Untrusted, expected: String },
}

/// Outside the token's validity in time, beyond the clock skew allowance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeFault {
    /// `exp` plus the leeway has passed (RFC 7519 §4.1.4).
    #[error(
        "the token expired {secs_ago} seconds ago (clock skew allowance {leeway} s); fetch a new one (a client should refresh before expires_in runs out)"
    )]
    Expired { secs_ago: i64, leeway: i64 },
    /// `nbf` minus the leeway is still ahead (RFC 7519 §4.1.5).
    #[error("the token is not valid for another {secs} seconds (nbf); check the clocks")]
    NotYetValid { secs: i64 },
    /// `iat` minus the leeway is still ahead (RFC 7519 §4.1.6).
    #[error("the token claims to be issued {secs} seconds in the future; check the clocks")]
    IssuedInFuture { secs: i64 },
}

/// `"value"`, or `(none)`.
struct Quoted<'a>(Option<&'a Untrusted>);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "\"{v}\""),
            None => f.write_str("(none)"),
        }
    }
}
