//! Secret newtypes whose `Debug` never shows the secret and whose memory is
//! overwritten with zeros when they are dropped (`zeroize`).

use serde::{Deserialize, Serialize};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

macro_rules! secret_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself.
            ///
            /// Security: the value must not reach a log, an error message or any output
            /// that is not meant for it; `Debug` and `Display` are redacted for this reason.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        /// Overwrites the secret's bytes before the memory is freed, so it does not
        /// linger in freed heap pages (core dumps, swap).
        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }
        impl zeroize::ZeroizeOnDrop for $name {}

        /// Constant-time equality, so a comparison never tells how many bytes matched.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
            }
        }
        impl Eq for $name {}
    };
}

secret_type!(
    /// A client secret (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// A bearer access token (RFC 6750). Anyone who holds it can use it.
    AccessToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = ClientSecret::new("hunter2");
        assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
        let t = AccessToken::new("eyJ.x.y");
        assert!(!format!("{t:?}").contains("eyJ"));
    }

    #[test]
    fn zeroizes_on_drop() {
        fn assert_zod<T: zeroize::ZeroizeOnDrop>() {}
        assert_zod::<ClientSecret>();
        assert_zod::<AccessToken>();
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(ClientSecret::new("a"), ClientSecret::new("a"));
        assert_ne!(ClientSecret::new("a"), ClientSecret::new("ab"));
    }
}
