//! DPoP (RFC 9449) at the broker: the request header, and server nonces (§8).
//!
//! A nonce is the current minute and a MAC of it, `base64url(minute || tag)`, under a
//! key derived from the active signing key's private material (HKDF-SHA256 with a
//! label of its own, so the derived key says nothing about the signing key). Every
//! replica holds that key, so a nonce made by one is good at all of them, with no
//! store round trip and nothing remembered; it is good in its minute and the next
//! (60 to 120 s). After a key rotation the old key's nonces are refused with a fresh
//! one, which a client follows with its one `use_dpop_nonce` retry.

use aws_lc_rs::{hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// The `DPoP` request header, made once rather than parsed from a string on every
/// request.
pub(crate) const DPOP_HEADER: axum::http::HeaderName = axum::http::HeaderName::from_static("dpop");

/// The response header carrying the nonce the next proof must have (§8.1).
pub(crate) const DPOP_NONCE_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("dpop-nonce");

/// A nonce's time step, in seconds: it is accepted in its step and the next.
pub const NONCE_STEP_SECS: i64 = 60;

/// Bytes of MAC kept in a nonce (128 bits: not guessable).
const TAG_BYTES: usize = 16;

/// The nonce key of a signing key, from its private key bytes (PKCS#8).
pub(crate) fn derive_nonce_key(private_key: &[u8]) -> hmac::Key {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"auth-broker DPoP nonce v1").extract(private_key);
    match prk.expand(&[b"dpop-nonce"], hmac::HMAC_SHA256) {
        Ok(okm) => hmac::Key::from(okm),
        // Unreachable: 32 bytes is well within HKDF-SHA256's output limit. A random
        // key still works on this replica (nonces refused elsewhere get a new one).
        Err(_) => {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            hmac::Key::generate(hmac::HMAC_SHA256, &rng)
                .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, private_key))
        }
    }
}

fn tag(key: &hmac::Key, step: i64) -> hmac::Tag {
    hmac::sign(key, &step.to_be_bytes())
}

/// The nonce to hand out at `now`.
pub(crate) fn make_nonce(key: &hmac::Key, now: i64) -> String {
    let step = now.div_euclid(NONCE_STEP_SECS);
    let mut raw = Vec::with_capacity(8 + TAG_BYTES);
    raw.extend_from_slice(&step.to_be_bytes());
    raw.extend_from_slice(&tag(key, step).as_ref()[..TAG_BYTES]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Whether `nonce` was made with `key` in the current step or the one before.
pub(crate) fn nonce_is_fresh(key: &hmac::Key, nonce: &str, now: i64) -> bool {
    let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
        return false;
    };
    let Some((step, mac)) = raw.split_first_chunk::<8>() else {
        return false;
    };
    let step = i64::from_be_bytes(*step);
    let current = now.div_euclid(NONCE_STEP_SECS);
    if mac.len() != TAG_BYTES || !(step == current || step == current - 1) {
        return false;
    }
    tag(key, step).as_ref()[..TAG_BYTES].ct_eq(mac).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_good_for_its_minute_and_the_next_under_its_key_only() {
        let key = derive_nonce_key(b"signing key one");
        let other = derive_nonce_key(b"signing key two");
        let n = make_nonce(&key, 1_000_020);
        assert!(nonce_is_fresh(&key, &n, 1_000_020));
        assert!(nonce_is_fresh(&key, &n, 1_000_079));
        assert!(nonce_is_fresh(&key, &n, 1_000_100));
        assert!(!nonce_is_fresh(&key, &n, 1_000_140), "two steps later");
        assert!(!nonce_is_fresh(&key, &n, 1_000_000), "before it was made");
        assert!(!nonce_is_fresh(&other, &n, 1_000_020), "another key");
        assert_eq!(make_nonce(&key, 1_000_020), make_nonce(&key, 1_000_039));
        for bad in ["", "!!", "AAAA", &n[..n.len() - 2]] {
            assert!(!nonce_is_fresh(&key, bad, 1_000_020), "{bad}");
        }
    }
}
