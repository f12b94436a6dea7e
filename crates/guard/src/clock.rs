//! Injected time, so `exp`/`nbf` and cache expiry are tested without sleeping: the
//! one [`Clock`] of `auth_broker_jwt`, which the broker uses too (a test can give a
//! broker and a guard the same [`ManualClock`]).

pub use auth_broker_jwt::clock::{Clock, ManualClock, SystemClock};
