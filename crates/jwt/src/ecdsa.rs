//! ES256 signature malleability, and the choice made about it.
//!
//! An ECDSA signature `(r, s)` and its twin `(r, n − s)` (n: the order of P-256)
//! verify for the same key and message; anyone who holds a token can make the twin
//! without the key. So a token has two valid encodings, and anything that keys on
//! the token's bytes (a cache, a replay list) sees two tokens where there is one.
//! aws-lc's signer returns either form, about half the time each, and every JWT
//! library verifies both.
//!
//! What this project does:
//!
//! - **The broker signs low-S only** ([`normalize_es256`]): what it issues from now
//!   on has one encoding (the form Bitcoin and Ethereum require, BIP 62/146).
//! - **Verifiers accept both forms.** Refusing high-S would refuse half the tokens of
//!   a broker not yet upgraded (guards are often upgraded first) and tokens checked
//!   by any other JWT library would still pass, so it would buy nothing.
//! - **The guard's result cache files a token under its low-S form**
//!   ([`low_s_form`]), so the twins share one entry: a twin costs no second
//!   signature check and cannot be told apart. The key is the whole token, signature
//!   included, so a cache entry can only be reached by presenting a valid
//!   signature (or its twin, which verifies equally). Keying by `kid` and `jti`
//!   instead would let anyone who learned a `jti` (from a log, an introspection
//!   answer) get a cached verdict without any signature, so it is not done.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The order n of the P-256 group (SEC 2 §2.4.2), big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// ⌊n / 2⌋: an `s` above it is "high".
const HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// The length of an ES256 JWS signature: `r || s`, 32 bytes each (RFC 7518 §3.4).
const ES256_SIG_LEN: usize = 64;

/// The `s` half of an ES256 signature, when `sig` is one.
fn s_of(sig: &[u8]) -> Option<&[u8]> {
    (sig.len() == ES256_SIG_LEN).then(|| &sig[32..])
}

/// Whether `sig` is an ES256 signature whose `s` is high (⌊n/2⌋ < s < n): the one
/// of the two encodings the broker does not write. Big-endian arrays of one length
/// compare as the numbers they hold.
pub fn es256_is_high_s(sig: &[u8]) -> bool {
    s_of(sig).is_some_and(|s| s > &HALF_N[..] && s < &N[..])
}

/// Replaces `s` by `n − s` in an ES256 signature: the other encoding of the same
/// signature (high to low, or low to high). Does nothing to anything that is not a
/// 64-byte signature with 0 < s < n.
pub fn es256_twin(sig: &mut [u8]) {
    let Some(s) = s_of(sig) else { return };
    if s >= &N[..] || s.iter().all(|b| *b == 0) {
        return;
    }
    let mut borrow = 0u16;
    for i in (32..ES256_SIG_LEN).rev() {
        let subtrahend = u16::from(sig[i]) + borrow;
        let minuend = u16::from(N[i - 32]);
        let (digit, next) = if minuend >= subtrahend {
            (minuend - subtrahend, 0)
        } else {
            (minuend + 256 - subtrahend, 1)
        };
        sig[i] = u8::try_from(digit).unwrap_or(0);
        borrow = next;
    }
}

/// Makes an ES256 signature low-S (see the module documentation): what the broker
/// does to every ES256 signature it makes.
pub fn normalize_es256(sig: &mut [u8]) {
    if es256_is_high_s(sig) {
        es256_twin(sig);
    }
}

/// The same compact JWS with its signature in low-S form, when the token's header
/// says `"alg":"ES256"` and its signature is high-S; `None` otherwise (a low-S
/// token is its own low-S form; another algorithm has no twin). For a cache that
/// files the two encodings of one token together. Only the signature and, when it
/// is high-S, the header are decoded: a low-S token costs one base64 decode of 86
/// characters.
pub fn low_s_form(token: &str) -> Option<String> {
    let (signing_input, sig_b64) = token.rsplit_once('.')?;
    let mut sig = [0u8; ES256_SIG_LEN];
    if URL_SAFE_NO_PAD.decode_slice(sig_b64, &mut sig).ok()? != ES256_SIG_LEN
        || !es256_is_high_s(&sig)
    {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Alg<'a> {
        #[serde(borrow)]
        alg: std::borrow::Cow<'a, str>,
    }
    let header = URL_SAFE_NO_PAD
        .decode(signing_input.split('.').next()?)
        .ok()?;
    if serde_json::from_slice::<Alg<'_>>(&header).ok()?.alg != "ES256" {
        return None;
    }
    es256_twin(&mut sig);
    let mut out = String::with_capacity(token.len());
    out.push_str(signing_input);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };

    fn key() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The twin of a signature verifies too (which is why it matters), the twin of
    /// the twin is the signature, and normalizing leaves exactly one form.
    #[test]
    fn twins_verify_and_normalizing_picks_one() {
        let k = key();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.public_key().as_ref());
        let rng = SystemRandom::new();
        let (mut high, mut low) = (0, 0);
        for i in 0..64u8 {
            let msg = [i; 10];
            let sig = k.sign(&rng, &msg).unwrap_or_else(|e| panic!("{e}"));
            let original = sig.as_ref().to_vec();
            let mut twin = original.clone();
            es256_twin(&mut twin);
            assert_ne!(twin, original);
            assert!(public.verify(&msg, &twin).is_ok(), "the twin verifies");
            assert_ne!(es256_is_high_s(&twin), es256_is_high_s(&original));
            let mut back = twin.clone();
            es256_twin(&mut back);
            assert_eq!(back, original);
            let (mut a, mut b) = (original.clone(), twin);
            normalize_es256(&mut a);
            normalize_es256(&mut b);
            assert_eq!(a, b);
            assert!(!es256_is_high_s(&a));
            assert!(public.verify(&msg, &a).is_ok());
            if es256_is_high_s(&original) {
                high += 1;
            } else {
                low += 1;
            }
        }
        // aws-lc signs with either form: the reason the broker normalizes.
        assert!(high > 0 && low > 0, "{high} high-S, {low} low-S");
    }

    #[test]
    fn only_real_s_values_have_twins() {
        let mut zero = [0u8; 64];
        es256_twin(&mut zero);
        assert_eq!(zero, [0u8; 64]);
        let mut n = [0u8; 64];
        n[32..].copy_from_slice(&N);
        es256_twin(&mut n);
        assert_eq!(n[32..], N);
        assert!(!es256_is_high_s(&n));
        let mut half = [0u8; 64];
        half[32..].copy_from_slice(&HALF_N);
        assert!(!es256_is_high_s(&half), "n/2 itself is low");
        half[63] += 1;
        assert!(es256_is_high_s(&half));
        let mut short = [0xffu8; 63];
        es256_twin(&mut short);
        assert_eq!(short, [0xffu8; 63]);
    }

    #[test]
    fn the_low_s_form_of_a_token() {
        let k = key();
        let rng = SystemRandom::new();
        let es = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#);
        let ed = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","kid":"k","typ":"at+jwt"}"#);
        for i in 0..16u8 {
            let input = format!("{es}.{}", URL_SAFE_NO_PAD.encode([i]));
            let sig = k
                .sign(&rng, input.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            let mut low = sig.as_ref().to_vec();
            normalize_es256(&mut low);
            let mut high = low.clone();
            es256_twin(&mut high);
            let low_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&low));
            let high_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&high));
            assert_eq!(low_s_form(&low_token), None);
            assert_eq!(low_s_form(&high_token), Some(low_token));
            // The same bytes under another algorithm are not an ECDSA signature.
            let other = format!(
                "{ed}.{}.{}",
                URL_SAFE_NO_PAD.encode([i]),
                URL_SAFE_NO_PAD.encode(&high)
            );
            assert_eq!(low_s_form(&other), None);
        }
        for junk in ["", "a.b", "a.b.c", "e30.e30.!!!", "abc"] {
            assert_eq!(low_s_form(junk), None);
        }
    }
}
