//! Client secrets: generation, hashing at rest, constant-time verification.
//!
//! Why SHA-256 and not a password hash: the broker generates every secret itself
//! from 256 bits of OS randomness. A slow password hash (bcrypt, PBKDF2, Argon2)
//! exists to make guessing a *low-entropy, human-chosen* password expensive after the
//! hash leaks; against a 256-bit random value guessing is already hopeless (2^255
//! tries on average), so the slowness would buy nothing and would cost every token
//! request milliseconds of CPU (it is most of Ory Hydra's per-request cost). One
//! SHA-256 is well under a microsecond. Stored hashes carry a `sha256:` prefix so a
//! slow scheme can be added beside it if user-chosen secrets are ever imported.
//!
//! Verification compares digests in constant time, and a request for an unknown client
//! runs the same hash-and-compare against a dummy digest, so neither the answer nor
//! its timing tells whether a client id exists.

use auth_broker_proto::ClientSecret;
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

const PREFIX: &str = "sha256:";
/// Marks generated secrets, so secret scanners (and people) can recognise a leaked one.
pub const SECRET_PREFIX: &str = "abs_";

/// The operating system's random source failed (getrandom returned an error: an
/// exhausted or sandboxed entropy source). Nothing random can be made, so nothing is
/// issued: the request gets `503` and may be retried; the process does not panic.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError(#[source] aws_lc_rs::error::Unspecified);

fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).map_err(RandomError)?;
    Ok(b)
}

/// A new secret: `abs_` and 256 random bits in base64url (47 characters).
pub fn generate_secret() -> Result<ClientSecret, RandomError> {
    Ok(ClientSecret::new(format!(
        "{SECRET_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    )))
}

/// A new client id: 128 random bits in lowercase hex (no leading `-`, safe in any shell).
pub fn generate_client_id() -> Result<String, RandomError> {
    Ok(random_bytes::<16>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A random identifier of `N` bytes, base64url (for `jti` and `kid`).
pub fn random_id<const N: usize>() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<N>()?))
}

fn digest_of(secret: &ClientSecret) -> digest::Digest {
    digest::digest(&digest::SHA256, secret.expose_secret().as_bytes())
}

/// The stored form of a secret.
pub fn hash_secret(secret: &ClientSecret) -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(digest_of(secret)))
}

/// The stored form of an opaque access token: SHA-256, base64url. The token has 256
/// random bits, so (as for client secrets) a fast hash is enough.
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// Whether `secret` matches the stored `hash`, in time independent of where they differ.
/// (The broker itself uses `PresentedSecret`; this is for tests and benchmarks.)
#[cfg(any(test, feature = "testing"))]
pub fn verify_secret(secret: &ClientSecret, hash: &str) -> bool {
    PresentedSecret::new(secret).matches(hash)
}

/// A presented secret's digest, taken once and compared with every stored hash the
/// check needs (a client's current and previous secret), so a second comparison costs
/// a compare, not another hash. No `Debug`: it stands for the secret.
pub struct PresentedSecret(digest::Digest);

impl PresentedSecret {
    /// Hashes the presented secret (SHA-256, as stored).
    pub fn new(secret: &ClientSecret) -> Self {
        Self(digest_of(secret))
    }

    /// Whether it matches the stored `hash`, in time independent of where they differ.
    pub fn matches(&self, hash: &str) -> bool {
        let Some(encoded) = hash.strip_prefix(PREFIX) else {
            return false;
        };
        let mut stored = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(encoded, &mut stored) {
            Ok(32) => self.0.as_ref().ct_eq(&stored).into(),
            _ => false,
        }
    }
}

/// A well-formed stored hash that no secret matches in practice (its preimage is
/// unknown), so the unknown-client path runs the very same code as a wrong secret.
pub const DUMMY_HASH: &str = "sha256:WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo";

/// The same work as [`verify_secret`] for a client that does not exist; always false.
#[cfg(any(test, feature = "testing"))]
pub fn verify_dummy(secret: &ClientSecret) -> bool {
    let _ = verify_secret(secret, DUMMY_HASH);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_verify_and_differ() {
        let a = generate_secret().unwrap_or_else(|e| panic!("{e}"));
        let b = generate_secret().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a, b);
        assert_eq!(a.expose_secret().len(), 47);
        let h = hash_secret(&a);
        assert!(h.starts_with("sha256:"));
        assert!(!h.contains(a.expose_secret()));
        assert!(verify_secret(&a, &h));
        assert!(!verify_secret(&b, &h));
        assert!(!verify_secret(&a, "bcrypt:whatever"));
        assert!(!verify_dummy(&a));
    }

    #[test]
    fn ids_are_hex() {
        let id = generate_client_id().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
